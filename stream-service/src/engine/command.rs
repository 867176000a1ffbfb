//! The RustPBX call commands (`{"command": ...}` text frames on `/call` and `/call/webrtc`),
//! parsed at the edge into typed values: unknown commands, missing fields, wrong types and
//! out-of-range values become a [`CommandError`] (sent back as an `error` event; the call goes on).

use serde::Deserialize;

/// Longest text a `tts` or `history` command may carry.
pub const MAX_TEXT: usize = 4_000;

/// `invite.option` (RustPBX's CallOption): the fields this platform reads. Others are accepted
/// and ignored only where RustPBX clients send them by default (`denoise`, `vad`, `recorder`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallOption {
    /// Who is calling (shown as the call's `from`); defaults to `client:<channel>`.
    pub caller: Option<String>,
    /// The bot: its id or its phone number.
    pub callee: Option<String>,
    /// SDP offer (`/call/webrtc`).
    pub offer: Option<String>,
    /// `pcmu` (default) or `pcm` (16-bit, 16 kHz) for audio in the WebSocket.
    pub codec: Option<String>,
    #[serde(default)]
    pub denoise: Option<bool>,
    #[serde(default)]
    pub vad: Option<serde_json::Value>,
    #[serde(default)]
    pub recorder: Option<serde_json::Value>,
    /// This leg is an outbound call the client placed: listen for an answering machine (its
    /// greeting and beep) and apply the bot's `voicemail` policy. Default false.
    #[serde(default)]
    pub machine_detection: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReferOptions {
    /// Seconds to ring the target.
    pub timeout: Option<u32>,
}

#[derive(Deserialize)]
struct InviteBody {
    #[serde(default)]
    option: CallOption,
}

#[derive(Deserialize)]
struct CandidateBody {
    candidates: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TtsBody {
    text: String,
    #[serde(default)]
    #[allow(dead_code)]
    speaker: Option<String>,
    play_id: Option<String>,
    #[serde(default)]
    auto_hangup: bool,
    #[serde(default)]
    streaming: bool,
    #[serde(default)]
    end_of_stream: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlayBody {
    url: String,
    #[serde(default)]
    auto_hangup: bool,
}

#[derive(Deserialize)]
struct HangupBody {
    reason: Option<String>,
    initiator: Option<String>,
}

#[derive(Deserialize)]
struct ReferBody {
    target: String,
    #[serde(default)]
    options: ReferOptions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrackBody {
    track_id: String,
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

#[derive(Deserialize)]
struct HistoryBody {
    speaker: String,
    text: String,
}

/// Who a `history` entry is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    User,
    Bot,
}

/// A command that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Invite(Box<CallOption>),
    Candidate(Vec<String>),
    Tts {
        text: String,
        play_id: Option<String>,
        auto_hangup: bool,
        /// Text arriving in pieces: spoken as sentences complete, the rest at `end_of_stream`.
        streaming: bool,
        end_of_stream: bool,
    },
    Play {
        url: url::Url,
        auto_hangup: bool,
    },
    Interrupt,
    Hangup {
        reason: Option<String>,
        initiator: Option<String>,
    },
    Refer {
        target: callbot_core::domain::PhoneNumber,
        timeout: Option<u32>,
    },
    Mute(String),
    Unmute(String),
    History {
        speaker: Speaker,
        text: String,
    },
    /// callbot's own: the caller's words as text, taken as heard (no recognition) and answered
    /// as a caller turn: text-only test calls.
    CallerText(String),
    /// Known to RustPBX, not offered here (`accept`, `reject`, `pause`, `resume`).
    Unsupported(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// `invalid_json`, `unknown_command`, `invalid_command`.
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> CommandError {
    CommandError {
        code: "invalid_command",
        message: message.into(),
    }
}

fn text_ok(what: &str, text: &str, empty_ok: bool) -> Result<(), CommandError> {
    if (!empty_ok && text.trim().is_empty()) || text.chars().count() > MAX_TEXT {
        return Err(invalid(format!("{what} must be 1-{MAX_TEXT} characters")));
    }
    Ok(())
}

/// Parses one text frame.
pub fn parse(raw: &str) -> Result<Command, CommandError> {
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| CommandError {
        code: "invalid_json",
        message: format!("not a JSON command: {e}"),
    })?;
    let name = match value.get("command") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("`command` must be a string")),
        None => return Err(invalid("missing field `command`")),
    };
    fn body<T: serde::de::DeserializeOwned>(
        name: &str,
        value: serde_json::Value,
    ) -> Result<T, CommandError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!(" (at `{path}`)")
            };
            invalid(format!("{name}: {}{at}", e.inner()))
        })
    }
    Ok(match name.as_str() {
        "invite" => Command::Invite(Box::new(body::<InviteBody>(&name, value)?.option)),
        "candidate" => Command::Candidate(body::<CandidateBody>(&name, value)?.candidates),
        "tts" => {
            let b: TtsBody = body(&name, value)?;
            text_ok("tts.text", &b.text, b.streaming)?;
            Command::Tts {
                text: b.text,
                play_id: b.play_id,
                auto_hangup: b.auto_hangup,
                streaming: b.streaming,
                end_of_stream: b.end_of_stream,
            }
        }
        "play" => {
            let b: PlayBody = body(&name, value)?;
            let url = url::Url::parse(&b.url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| invalid("play.url must be an http(s) URL"))?;
            Command::Play {
                url,
                auto_hangup: b.auto_hangup,
            }
        }
        "interrupt" => Command::Interrupt,
        "hangup" => {
            let b: HangupBody = body(&name, value)?;
            Command::Hangup {
                reason: b.reason,
                initiator: b.initiator,
            }
        }
        "refer" => {
            let b: ReferBody = body(&name, value)?;
            let number = b.target.strip_prefix("tel:").unwrap_or(&b.target).trim();
            let target = callbot_core::domain::PhoneNumber::parse(number).map_err(|_| {
                invalid("refer.target must be a phone number in E.164 form (+15551234567)")
            })?;
            Command::Refer {
                target,
                timeout: b.options.timeout,
            }
        }
        "mute" => Command::Mute(body::<TrackBody>(&name, value)?.track_id),
        "unmute" => Command::Unmute(body::<TrackBody>(&name, value)?.track_id),
        "history" => {
            let b: HistoryBody = body(&name, value)?;
            text_ok("history.text", &b.text, false)?;
            let speaker = match b.speaker.as_str() {
                "user" | "caller" | "human" => Speaker::User,
                "bot" | "assistant" | "agent" => Speaker::Bot,
                _ => return Err(invalid("history.speaker must be \"user\" or \"bot\"")),
            };
            Command::History {
                speaker,
                text: b.text,
            }
        }
        "text" => {
            let b: TextBody = body(&name, value)?;
            text_ok("text.text", &b.text, false)?;
            Command::CallerText(b.text)
        }
        "accept" => Command::Unsupported("accept"),
        "reject" => Command::Unsupported("reject"),
        "pause" => Command::Unsupported("pause"),
        "resume" => Command::Unsupported("resume"),
        other => {
            return Err(CommandError {
                code: "unknown_command",
                message: format!("unknown command {other:?}"),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_rustpbx_field_names() {
        assert_eq!(
            parse(r#"{"command":"tts","text":"Hi there","playId":"p1","autoHangup":true}"#),
            Ok(Command::Tts {
                text: "Hi there".into(),
                play_id: Some("p1".into()),
                auto_hangup: true,
                streaming: false,
                end_of_stream: false,
            })
        );
        let Ok(Command::Invite(o)) = parse(
            r#"{"command":"invite","option":{"callee":"+15550100001","codec":"pcm","extra":1}}"#,
        ) else {
            panic!("invite")
        };
        assert_eq!(o.callee.as_deref(), Some("+15550100001"));
        assert_eq!(parse(r#"{"command":"interrupt"}"#), Ok(Command::Interrupt));
        assert_eq!(
            parse(r#"{"command":"mute","trackId":"caller"}"#),
            Ok(Command::Mute("caller".into()))
        );
        assert!(matches!(
            parse(r#"{"command":"refer","target":"tel:+15550100002","options":{"timeout":20}}"#),
            Ok(Command::Refer {
                timeout: Some(20),
                ..
            })
        ));
        assert_eq!(
            parse(r#"{"command":"pause"}"#),
            Ok(Command::Unsupported("pause"))
        );
        assert_eq!(
            parse(r#"{"command":"text","text":"A table for two."}"#),
            Ok(Command::CallerText("A table for two.".into()))
        );
    }

    #[test]
    fn caller_text_must_have_words() {
        for bad in [r#"{"command":"text"}"#, r#"{"command":"text","text":" "}"#] {
            assert_eq!(parse(bad).unwrap_err().code, "invalid_command", "{bad}");
        }
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let code = |raw: &str| parse(raw).unwrap_err().code;
        assert_eq!(code("not json"), "invalid_json");
        assert_eq!(code(r#"{"command":"dance"}"#), "unknown_command");
        assert_eq!(code(r#"{"text":"hi"}"#), "invalid_command");
        assert_eq!(code(r#"{"command":7}"#), "invalid_command");
        let e = parse(r#"{"command":"tts"}"#).unwrap_err();
        assert!(e.message.contains("text"), "{e}");
        let e = parse(r#"{"command":"tts","text":42}"#).unwrap_err();
        assert_eq!(e.code, "invalid_command");
        assert!(e.message.contains("text"), "{e}");
        assert_eq!(code(r#"{"command":"tts","text":"  "}"#), "invalid_command");
        assert_eq!(
            code(r#"{"command":"play","url":"file:///etc/passwd"}"#),
            "invalid_command"
        );
        assert_eq!(
            code(r#"{"command":"refer","target":"sip:bob@example.com"}"#),
            "invalid_command"
        );
        assert_eq!(
            code(r#"{"command":"history","speaker":"x","text":"t"}"#),
            "invalid_command"
        );
        let long = format!(
            r#"{{"command":"tts","text":"{}"}}"#,
            "a".repeat(MAX_TEXT + 1)
        );
        assert_eq!(code(&long), "invalid_command");
    }
}
