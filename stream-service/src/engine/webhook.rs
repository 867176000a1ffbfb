//! The business webhook, one call per caller turn: a signed JSON POST with an
//! idempotency key, a deadline, one retry inside the deadline on connection errors and 5xx, and a
//! typed outcome — a reply, or the reason the fallback line must be spoken instead.

use callbot_core::domain::{PhoneNumber, WebhookPolicy};
pub use callbot_core::webhook_post::{Failure, post_signed};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryEntry {
    pub role: &'static str,
    pub content: String,
}

impl HistoryEntry {
    /// What the caller said and pressed, as the history and the language model record it
    /// (`"Table for two [pressed 42]"`). One form for both, so the model's cached prompt matches
    /// the next turn's history.
    pub fn caller_words(text: &str, dtmf: &str) -> String {
        match (text.is_empty(), dtmf.is_empty()) {
            (_, true) => text.to_owned(),
            (true, false) => format!("[pressed {dtmf}]"),
            (false, false) => format!("{text} [pressed {dtmf}]"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnRequest<'a> {
    /// `turn`: a caller turn (in LLM mode a notice after the reply, whose answer is ignored).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub bot_id: &'a str,
    pub call_sid: &'a str,
    pub turn: u32,
    pub user_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtmf: Option<&'a str>,
    /// What the LLM proposes to say; `null` when there is none (off, failed or late).
    pub llm_suggestion: Option<&'a str>,
    /// In LLM mode: what the bot said (the webhook cannot change it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<&'a str>,
    pub history: &'a [HistoryEntry],
    pub from: &'a str,
    pub to: &'a str,
    /// RFC 3339.
    pub timestamp: String,
    /// The bot's goal for this call (outbound `prompt` overrides it) and its context, with
    /// their placeholders filled.
    pub goal: &'a str,
    pub context: &'a str,
    /// The call's variables over the bot's defaults, and the built-ins (`caller_number`,
    /// `bot_number`, `date`, `time`, `weekday` as at the call's start).
    pub variables: &'a callbot_core::domain::Variables,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Action {
    #[default]
    Continue,
    Hangup,
    Transfer(PhoneNumber),
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Continue => "continue",
            Action::Hangup => "hangup",
            Action::Transfer(_) => "transfer",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `None`: say the LLM suggestion (a `continue` without words).
    pub say: Option<String>,
    pub action: Action,
}

#[derive(Debug, Deserialize)]
struct RawReply {
    say: Option<String>,
    action: Option<String>,
    transfer_to: Option<String>,
}

pub(crate) fn parse_reply(body: &[u8]) -> Result<Reply, Failure> {
    let raw: RawReply = serde_json::from_slice(body).map_err(|_| Failure::BadJson)?;
    let say = raw
        .say
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let action = match raw.action.as_deref() {
        None | Some("continue") => Action::Continue,
        Some("hangup") => Action::Hangup,
        Some("transfer") => {
            let to = raw.transfer_to.as_deref().ok_or(Failure::BadAction)?;
            Action::Transfer(PhoneNumber::parse(to).map_err(|_| Failure::BadAction)?)
        }
        Some(_) => return Err(Failure::BadAction),
    };
    // A hangup or transfer may come without words; a continue without words asks for the LLM
    // suggestion (the pipeline reports `missing_say` when there is none).
    Ok(Reply { say, action })
}

/// Sends one turn within `deadline` (one retry inside it on connection errors and 5xx).
pub async fn send(
    http: &reqwest::Client,
    url: &url::Url,
    secret: &[u8],
    policy: WebhookPolicy,
    request: &TurnRequest<'_>,
    deadline: Duration,
) -> Result<Reply, Failure> {
    let idem = format!("{}:{}", request.call_sid, request.turn);
    let body = post_signed(http, url, secret, policy, request, &idem, deadline).await?;
    parse_reply(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbot_core::outbound;
    use callbot_core::webhook_post::MAX_ANSWER;
    use std::net::IpAddr;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A DNS server answering every name with the same addresses.
    struct Fixed(Vec<IpAddr>);

    impl outbound::Lookup for Fixed {
        fn lookup(
            &self,
            _host: String,
        ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            let answer = self.0.clone();
            Box::pin(async move { Ok(answer) })
        }
    }

    /// A webhook on loopback that answers `body` to every request, counting them.
    async fn hook(body: Vec<u8>) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = s.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        (port, hits)
    }

    fn turn() -> TurnRequest<'static> {
        static NONE: callbot_core::domain::Variables = callbot_core::domain::Variables::EMPTY;
        TurnRequest {
            kind: "turn",
            bot_id: "bot_1",
            call_sid: "CA00000000000000000000000000000001",
            turn: 1,
            user_text: "hello",
            dtmf: None,
            llm_suggestion: None,
            reply: None,
            history: &[],
            from: "+15550001111",
            to: "+15550002222",
            timestamp: String::new(),
            goal: "",
            context: "",
            variables: &NONE,
        }
    }

    const STRICT: WebhookPolicy = WebhookPolicy {
        allow_private: false,
    };

    #[tokio::test]
    async fn internal_answers_are_refused_when_the_turn_is_sent() {
        let (port, hits) = hook(br#"{"say":"hi"}"#.to_vec()).await;
        for ip in [
            "127.0.0.1",
            "169.254.169.254",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
        ] {
            let http = outbound::client(STRICT, Arc::new(Fixed(vec![ip.parse().unwrap()])));
            let url: url::Url = format!("https://hooks.example.com:{port}/turn")
                .parse()
                .unwrap();
            let got = send(&http, &url, b"s", STRICT, &turn(), Duration::from_secs(2)).await;
            assert_eq!(got, Err(Failure::RefusedTarget), "{ip}");
        }
        // An IP literal that slipped past the save-time check (the policy changed since).
        let http = outbound::client(STRICT, Arc::new(outbound::SystemLookup));
        let url: url::Url = format!("http://127.0.0.1:{port}/turn").parse().unwrap();
        let got = send(&http, &url, b"s", STRICT, &turn(), Duration::from_secs(2)).await;
        assert_eq!(got, Err(Failure::RefusedTarget));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn answers_are_capped_and_read_when_allowed() {
        let open = WebhookPolicy {
            allow_private: true,
        };
        let http = outbound::client(open, Arc::new(outbound::SystemLookup));
        let (port, _) = hook(br#"{"say":"Hello there"}"#.to_vec()).await;
        let url: url::Url = format!("http://127.0.0.1:{port}/turn").parse().unwrap();
        let got = send(&http, &url, b"s", open, &turn(), Duration::from_secs(2)).await;
        assert_eq!(got.unwrap().say.as_deref(), Some("Hello there"));
        let mut huge = br#"{"say":""#.to_vec();
        huge.resize(MAX_ANSWER + 10, b'a');
        let (port, _) = hook(huge).await;
        let url: url::Url = format!("http://127.0.0.1:{port}/turn").parse().unwrap();
        let got = send(&http, &url, b"s", open, &turn(), Duration::from_secs(2)).await;
        assert_eq!(got, Err(Failure::TooLarge));
    }

    #[test]
    fn replies_are_parsed_strictly() {
        assert_eq!(
            parse_reply(br#"{"say":"Hi"}"#),
            Ok(Reply {
                say: Some("Hi".into()),
                action: Action::Continue
            })
        );
        assert_eq!(
            parse_reply(br#"{"action":"continue","say":null}"#),
            Ok(Reply {
                say: None,
                action: Action::Continue
            })
        );
        assert_eq!(
            parse_reply(br#"{"say":"Bye","action":"hangup"}"#)
                .unwrap()
                .action,
            Action::Hangup
        );
        assert_eq!(
            parse_reply(br#"{"say":"","action":"transfer","transfer_to":"+15551234567"}"#)
                .unwrap()
                .action,
            Action::Transfer(PhoneNumber::parse("+15551234567").unwrap())
        );
        assert_eq!(
            parse_reply(br#"{"action":"transfer"}"#),
            Err(Failure::BadAction)
        );
        assert_eq!(
            parse_reply(br#"{"say":"x","action":"dance"}"#),
            Err(Failure::BadAction)
        );
        assert_eq!(parse_reply(br#"{"say":"  "}"#).unwrap().say, None);
        assert_eq!(parse_reply(b"<html>"), Err(Failure::BadJson));
        assert_eq!(parse_reply(br#"{"say":5}"#), Err(Failure::BadJson));
    }
}
