//! `callbot call`: places a simulated call to a bot of a local `callbot serve`, taking the path
//! Twilio takes — the number's signed VoiceUrl webhook, the TwiML answer, the signed media-stream
//! handshake, 20 ms μ-law frames, status callbacks — and prints what happens.

use anyhow::Context as _;
use callbot_core::settings::{Settings, TelephonySettings};
use callbot_core::wiring;
use callbot_twilio_sim::carrier::{self, Answer, CallContext, Event, Script, Step};
use std::io::Write;
use std::sync::{Arc, Mutex};
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
    if !matches!(settings.telephony, TelephonySettings::Local) {
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

    let mut steps = vec![Step::Silence(Duration::from_secs(1))];
    for d in opts.dtmf.as_deref().unwrap_or("").chars() {
        steps.push(Step::Dtmf(d));
        steps.push(Step::Silence(Duration::from_millis(200)));
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
        bot_audio: Arc::new(Mutex::new(Vec::new())),
    };
    writeln!(out, "call sid {}", ctx.sid)?;
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
    let mut bot_bytes = 0usize;
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
                continue;
            }
            Event::MarkEchoed(name) => {
                format!("bot audio played up to mark {name:?} ({bot_bytes} bytes so far)")
            }
            Event::Cleared { dropped_bytes } => {
                format!("bot audio cleared ({dropped_bytes} bytes dropped)")
            }
            Event::ProtocolError(e) => format!("protocol error from the server: {e}"),
            Event::DtmfSent(d) => format!("caller pressed {d}"),
            Event::StreamClosed => "the server closed the media stream".into(),
            Event::Dialed(n) => format!("transferred to {n}"),
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
    call.await.context("the call task failed")
}
