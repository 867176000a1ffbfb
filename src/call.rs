//! `callbot call`: places a simulated call to a bot of a local `callbot serve`, taking the path
//! Twilio takes — the number's signed VoiceUrl webhook, the TwiML answer, the signed media-stream
//! handshake, 20 ms μ-law frames, status callbacks — and prints what happens.

use anyhow::Context as _;
use callbot_core::settings::{Settings, TelephonySettings};
use callbot_core::wiring;
use callbot_twilio_sim::carrier::{self, Answer, CallContext, Event, Script, Step};
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Base URL of the running server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// A bot id (`bot_…`) or its phone number.
    pub target: String,
    /// The caller's number.
    pub from: String,
    /// Keys to press after the greeting, e.g. `12#`.
    pub dtmf: Option<String>,
    /// How long the caller stays on the line before hanging up.
    pub seconds: u64,
    /// What the caller says, one utterance per entry, each after the bot has finished talking.
    pub say: Vec<String>,
    /// An API key of the bot's tenant: with it, the call's transcript is printed at the end.
    pub api_key: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct NumberList {
    incoming_phone_numbers: Vec<NumberItem>,
}

#[derive(Debug, serde::Deserialize)]
struct NumberItem {
    phone_number: String,
    friendly_name: String,
    voice_url: Option<String>,
    status_callback: Option<String>,
}

/// Runs one simulated call and writes a line per event to `out`. Returns the final call status.
pub async fn run(
    settings: &Settings,
    opts: &CallOptions,
    out: &mut impl Write,
) -> anyhow::Result<String> {
    if !matches!(settings.telephony, TelephonySettings::Local { .. }) {
        anyhow::bail!(
            "`callbot call` simulates the phone network of local mode; with Twilio configured, call the bot's number from a phone"
        );
    }
    let token =
        wiring::local_sim_token(&settings.data_dir).context("reading the simulator token")?;
    let account = wiring::local_sim_account_sid(&token);
    let http = reqwest::Client::new();
    let list: NumberList = http
        .get(format!(
            "{}{}/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
            opts.server.trim_end_matches('/'),
            wiring::SIM_TWILIO_PATH
        ))
        .basic_auth(&account, Some(&token))
        .send()
        .await
        .with_context(|| format!("reaching the server at {} (is `callbot serve` running with the same CALLBOT_DATA_DIR?)", opts.server))?
        .error_for_status()
        .context("listing the simulator's numbers")?
        .json()
        .await?;
    let number = list
        .incoming_phone_numbers
        .into_iter()
        .find(|n| n.phone_number == opts.target || n.friendly_name == opts.target)
        .with_context(|| format!("no bot or number {:?} on this server", opts.target))?;
    let voice_url = number
        .voice_url
        .with_context(|| format!("{} has no voice URL", number.phone_number))?;
    writeln!(
        out,
        "calling {} ({}) from {}",
        number.phone_number, number.friendly_name, opts.from
    )?;

    let wait = || Step::WaitForBot {
        quiet: Duration::from_millis(600),
        max: Duration::from_secs(15),
    };
    let mut steps = vec![Step::Silence(Duration::from_millis(200)), wait()];
    let espeak = match &settings.calls.speech {
        callbot_core::settings::SpeechSettings::Local { espeak, .. } => espeak.clone(),
        callbot_core::settings::SpeechSettings::Instant
        | callbot_core::settings::SpeechSettings::InstantLoaded { .. } => "espeak-ng".to_owned(),
    };
    let tts = callbot_stream::speech::espeak::Espeak::new(espeak);
    for line in &opts.say {
        use callbot_stream::speech::TextToSpeech as _;
        let speech = tts
            .synthesize(line, "en-us")
            .await
            .with_context(|| format!("synthesising the caller's line {line:?} with espeak-ng"))?;
        writeln!(
            out,
            "caller will say: {line:?} ({} ms of audio)",
            speech.ulaw.len() / 8
        )?;
        steps.push(Step::Audio(speech.ulaw));
        steps.push(wait());
    }
    for d in opts.dtmf.as_deref().unwrap_or("").chars() {
        steps.push(Step::Dtmf(d));
        steps.push(Step::Silence(Duration::from_millis(200)));
    }
    if opts.dtmf.is_some() {
        steps.push(wait());
    }
    steps.push(Step::Silence(Duration::from_secs(opts.seconds)));
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let ctx = CallContext {
        sid: callbot_core::domain::CallSid::generate().to_string(),
        account_sid: account,
        from: opts.from.clone(),
        to: number.phone_number.clone(),
        direction: "inbound".into(),
        auth_token: token,
        http,
        status_callback: number.status_callback,
        status_events: vec!["completed".into()],
        events: tx,
        bot_audio: None,
        probe: None,
        media_times: None,
    };
    writeln!(out, "call sid {}", ctx.sid)?;
    let ctx_sid = ctx.sid.clone();
    let (_control_tx, control_rx) = tokio::sync::mpsc::channel(1);
    let call = tokio::spawn(carrier::run_call(
        ctx,
        Answer::Url(voice_url.clone()),
        Script {
            steps,
            hangup_when_done: true,
        },
        control_rx,
        0,
    ));
    let sid = ctx_sid.clone();
    let mut bot_bytes = 0usize;
    let mut speaking = false;
    while let Some(e) = events.recv().await {
        let line = match e {
            Event::Answered { twiml } => format!("POST {voice_url} -> TwiML {twiml}"),
            Event::AnswerFailed { status } => format!("the answer URL failed (HTTP {status})"),
            Event::Said(text) => format!("bot (TwiML <Say>): {text}"),
            Event::StreamStarted { url, .. } => {
                format!("media stream connected to {url} (handshake and token accepted)")
            }
            Event::StreamRefused { status } => format!("media stream refused (HTTP {status})"),
            Event::BotAudio { bytes } => {
                bot_bytes += bytes;
                if speaking {
                    continue;
                }
                speaking = true;
                "bot is speaking".to_owned()
            }
            Event::MarkEchoed(_) => continue,
            Event::Cleared { dropped_bytes } => {
                speaking = false;
                format!("caller interrupted: bot audio cleared ({dropped_bytes} bytes dropped)")
            }
            Event::ProtocolError(e) => format!("protocol error from the server: {e}"),
            Event::DtmfSent(d) => format!("caller pressed {d}"),
            Event::CallerSpeaking => {
                speaking = false;
                format!("caller speaking ({} ms of bot audio so far)", bot_bytes / 8)
            }
            Event::StreamClosed => "the server closed the media stream".into(),
            Event::Underrun(gap) => format!(
                "playout ran dry for {} ms in the middle of the bot's speech",
                gap.as_millis()
            ),
            Event::Dialed(n) => format!("transferred to {n}"),
            Event::MachineDetected {
                answered_by,
                http_status,
            } => format!(
                "machine detection: answered by {answered_by} (callback HTTP {http_status})"
            ),
            Event::StatusCallback {
                status,
                http_status,
            } => format!("status callback {status} -> HTTP {http_status}"),
            Event::Ended {
                status,
                duration_secs,
            } => format!("call ended: {status} after {duration_secs} s"),
        };
        writeln!(out, "{line}")?;
    }
    let status = call.await.context("the call task failed")?;
    if let Some(key) = &opts.api_key {
        print_transcript(&opts.server, key, &sid, out).await?;
    }
    Ok(status)
}

/// Prints the stored turns of the call (they are written as each turn completes).
async fn print_transcript(
    server: &str,
    key: &str,
    sid: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let url = format!("{}/calls/{sid}", server.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let mut view = serde_json::Value::Null;
    // The engine stores the last turn and the recording as the stream closes.
    for _ in 0..20 {
        view = http
            .get(&url)
            .header("x-api-key", key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if view["recording_url"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    writeln!(out, "transcript:")?;
    for t in view["turns"].as_array().into_iter().flatten() {
        let user = t["user_text"].as_str().unwrap_or("");
        let dtmf = t["dtmf"].as_str().unwrap_or("");
        if !user.is_empty() || !dtmf.is_empty() {
            writeln!(
                out,
                "  caller: {user}{}",
                if dtmf.is_empty() {
                    String::new()
                } else {
                    format!(" [keys {dtmf}]")
                }
            )?;
        }
        let bot = t["bot_text"].as_str().unwrap_or("");
        if !bot.is_empty() {
            let cut = if t["interrupted"].as_bool() == Some(true) {
                " [interrupted]"
            } else {
                ""
            };
            writeln!(out, "  bot:    {bot}{cut}")?;
        }
        let tm = &t["timings"];
        if let Some(f) = tm["first_frame_ms"]
            .as_u64()
            .filter(|_| !user.is_empty() || !dtmf.is_empty())
        {
            // The model's share: its first sentence in LLM mode, the whole suggestion otherwise.
            let llm = &tm["llm"];
            let llm = match (llm["first_sentence_ms"].as_u64(), llm["total_ms"].as_u64()) {
                (Some(ms), _) => format!("llm {ms} ms (first sentence), "),
                (None, Some(ms)) => format!("llm {ms} ms, "),
                _ => String::new(),
            };
            writeln!(
                out,
                "          (reply audio {f} ms after the caller stopped: stt {} ms, {llm}webhook {} ms, tts {} ms; action {})",
                tm["stt_ms"].as_u64().unwrap_or(0),
                tm["webhook_ms"].as_u64().unwrap_or(0),
                tm["tts_first_byte_ms"].as_u64().unwrap_or(0),
                t["action"].as_str().unwrap_or("")
            )?;
        }
    }
    if let Some(r) = view["recording_url"].as_str() {
        writeln!(out, "recording: {r}")?;
    }
    Ok(())
}
