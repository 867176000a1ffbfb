//! One test call over the call WebSocket (`/call`, the X-API-Key header): invite the bot, wait
//! for its greeting, then for each caller line send it (as text, or as spoken audio paced at
//! 20 ms frames) and wait until the bot has answered and gone quiet; hang up; read the call's
//! record for the tools its model called.

use super::Target;
use super::judge::{Call, Line};
use super::scenario::{Caller, Ending, Mode, Persona, Scenario};
use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// The bot has answered once it has been quiet this long after speaking: longer than the gap
/// between "One moment." (said after 1.2 s without an answer) and the next filler 2.8 s later,
/// so a filler is never taken for the whole answer.
const QUIET: Duration = Duration::from_millis(3000);
/// The longest the bot may take to start answering before the scenario fails.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// The longest a reply may play without an event before the runner stops waiting for its end.
const LONGEST_REPLY: Duration = Duration::from_secs(120);
/// μ-law silence, one 20 ms frame.
const SILENT_FRAME: [u8; 160] = [0xFF; 160];

pub async fn call(target: &Target, bot: &str, s: &Scenario, mode: Mode) -> anyhow::Result<Call> {
    let mut ws_url = target.base.join("call")?;
    let scheme = if target.base.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    ws_url
        .set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("cannot use {} for a WebSocket", target.base))?;
    let mut req = ws_url.as_str().into_client_request()?;
    req.headers_mut()
        .insert("x-api-key", target.api_key.expose_secret().parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .with_context(|| format!("connecting to {ws_url}"))?;
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    let (ev_tx, ev_rx) = mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if let Message::Text(t) = m
                && let Ok(v) = serde_json::from_str::<Value>(&t)
                && ev_tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let invite = json!({"command": "invite", "option": {"callee": bot, "codec": "pcmu", "caller": "callbot-test"}});
    out_tx.send(Message::text(invite.to_string())).await?;
    let mut line = Events { rx: ev_rx };
    let sid = line.answer().await?;
    let voice = (mode == Mode::Phone).then(|| Voice::start(out_tx.clone()));
    let mut c = Call {
        sid: sid.clone(),
        ..Call::default()
    };
    let result = converse(target, s, &mut line, &out_tx, voice.as_ref(), &mut c).await;
    if c.ending.is_none() {
        let bye = json!({"command": "hangup", "reason": "test_finished", "initiator": "caller"});
        let _ = out_tx.send(Message::text(bye.to_string())).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), line.hangup()).await;
    }
    drop(voice);
    drop(out_tx);
    let _ = writer.await;
    reader.abort();
    result?;
    let (tools, transferred) = record(target, &sid).await?;
    c.tools = tools;
    if transferred {
        c.ending = Some(Ending::Transfer);
    }
    Ok(c)
}

/// The conversation: the greeting, then the caller's lines and the bot's answers.
async fn converse(
    target: &Target,
    s: &Scenario,
    line: &mut Events,
    out: &mpsc::Sender<Message>,
    voice: Option<&Voice>,
    c: &mut Call,
) -> anyhow::Result<()> {
    let greeting = line.reply(Instant::now()).await?;
    c.ending = greeting.ended;
    push_bot(c, greeting, None);
    let turns = match &s.caller {
        Caller::Lines(l) => l.len(),
        Caller::Persona(p) => p.max_turns,
    };
    let mut persona_done = false;
    for i in 0..turns {
        if c.ending.is_some() || persona_done {
            break;
        }
        let said = match &s.caller {
            Caller::Lines(l) => l[i].clone(),
            Caller::Persona(p) => match persona_line(target, p, &c.transcript).await? {
                Some((l, done)) => {
                    persona_done = done;
                    l
                }
                None => break,
            },
        };
        c.transcript.push(Line {
            role: "caller".into(),
            text: said.clone(),
            heard: None,
            latency_ms: None,
        });
        let sent = match voice {
            Some(v) => v.say(&said).await?,
            None => {
                let cmd = json!({"command": "text", "text": said});
                out.send(Message::text(cmd.to_string())).await?;
                Instant::now()
            }
        };
        let reply = line.reply(sent).await?;
        c.ending = reply.ended;
        if voice.is_some()
            && let Some(l) = c.transcript.last_mut()
        {
            l.heard = Some(reply.heard.join(" "));
        }
        let latency = reply
            .started
            .map(|t| t.duration_since(sent).as_millis() as u64);
        push_bot(c, reply, latency);
    }
    Ok(())
}

fn push_bot(c: &mut Call, r: Reply, latency_ms: Option<u64>) {
    if r.texts.is_empty() && r.started.is_none() {
        return;
    }
    c.transcript.push(Line {
        role: "bot".into(),
        text: r.texts.join(" "),
        heard: None,
        latency_ms,
    });
}

/// What the bot did after a caller turn.
struct Reply {
    texts: Vec<String>,
    /// What the platform recognised of the caller meanwhile.
    heard: Vec<String>,
    started: Option<Instant>,
    ended: Option<Ending>,
}

/// The call's events as they come.
struct Events {
    rx: mpsc::UnboundedReceiver<Value>,
}

impl Events {
    async fn next(&mut self, until: Instant) -> Option<Value> {
        tokio::time::timeout_at(until, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The `answer` event's call SID; the `error` or `hangup` that came instead.
    async fn answer(&mut self) -> anyhow::Result<String> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let Some(e) = self.next(until).await else {
                bail!("the call was not answered within 10 s");
            };
            match e["event"].as_str() {
                Some("answer") => return Ok(e["callSid"].as_str().unwrap_or_default().to_owned()),
                Some("error") | Some("hangup") => bail!("the call did not start: {e}"),
                _ => {}
            }
        }
    }

    /// Waits until the bot has spoken and been quiet for `QUIET` (or the call ended).
    async fn reply(&mut self, since: Instant) -> anyhow::Result<Reply> {
        let mut r = Reply {
            texts: Vec::new(),
            heard: Vec::new(),
            started: None,
            ended: None,
        };
        let mut playing = 0usize;
        let mut quiet_since: Option<Instant> = None;
        loop {
            // Not started: it must start in time. Quiet after speaking: done after QUIET.
            // Speaking: a long reply plays on (its end is a `trackEnd`).
            let until = match (r.started, quiet_since) {
                (None, _) => since + ANSWER_WITHIN,
                (Some(_), Some(q)) if playing == 0 => q + QUIET,
                (Some(_), _) => Instant::now() + LONGEST_REPLY,
            };
            let Some(e) = self.next(until).await else {
                if r.started.is_none() {
                    bail!(
                        "the bot did not answer within {} s",
                        ANSWER_WITHIN.as_secs()
                    );
                }
                return Ok(r);
            };
            match e["event"].as_str() {
                Some("trackStart") => {
                    r.started.get_or_insert_with(Instant::now);
                    playing += 1;
                }
                Some("trackEnd") => {
                    playing = playing.saturating_sub(1);
                    quiet_since = Some(Instant::now());
                }
                Some("asrFinal") => {
                    r.heard
                        .push(e["text"].as_str().unwrap_or_default().to_owned());
                }
                Some("transcription") if e["role"] == "bot" => {
                    r.texts
                        .push(e["text"].as_str().unwrap_or_default().to_owned());
                }
                Some("hangup") => {
                    r.ended = Some(match e["reason"].as_str() {
                        Some("transferred") => Ending::Transfer,
                        Some("bot_hangup") => Ending::Hangup,
                        _ => Ending::Open,
                    });
                    return Ok(r);
                }
                _ => {}
            }
        }
    }

    async fn hangup(&mut self) {
        while let Some(e) = self.rx.recv().await {
            if e["event"] == "hangup" {
                return;
            }
        }
    }
}

/// The caller's voice on the phone path: lines spoken by espeak-ng, sent as 20 ms μ-law frames
/// in real time, silence in between (a line keeps flowing, as a phone line does).
struct Voice {
    lines: mpsc::Sender<(Vec<u8>, tokio::sync::oneshot::Sender<Instant>)>,
    pacer: tokio::task::JoinHandle<()>,
}

impl Drop for Voice {
    fn drop(&mut self) {
        self.pacer.abort();
    }
}

impl Voice {
    fn start(out: mpsc::Sender<Message>) -> Self {
        let (lines, mut rx) = mpsc::channel::<(Vec<u8>, tokio::sync::oneshot::Sender<Instant>)>(1);
        let pacer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut current: Option<(Vec<u8>, usize, tokio::sync::oneshot::Sender<Instant>)> = None;
            loop {
                tick.tick().await;
                if current.is_none() {
                    current = rx.try_recv().ok().map(|(audio, done)| (audio, 0, done));
                }
                let frame = match &mut current {
                    Some((audio, at, _)) if *at < audio.len() => {
                        let end = (*at + 160).min(audio.len());
                        let mut f = audio[*at..end].to_vec();
                        f.resize(160, 0xFF);
                        *at = end;
                        f
                    }
                    _ => SILENT_FRAME.to_vec(),
                };
                if out.send(Message::binary(frame)).await.is_err() {
                    return;
                }
                if let Some((audio, at, _)) = &current
                    && *at >= audio.len()
                    && let Some((_, _, done)) = current.take()
                {
                    let _ = done.send(Instant::now());
                }
            }
        });
        Self { lines, pacer }
    }

    /// Speaks `text`; returns when its last frame was sent.
    async fn say(&self, text: &str) -> anyhow::Result<Instant> {
        use callbot_stream::speech::TextToSpeech as _;
        let audio = callbot_stream::speech::espeak::Espeak::new("espeak-ng")
            .synthesize(text, "en-us")
            .await
            .context("speaking the caller's line with espeak-ng")?
            .ulaw;
        let (done, sent) = tokio::sync::oneshot::channel();
        self.lines.send((audio, done)).await?;
        Ok(sent.await?)
    }
}

/// The persona's next line, from the platform's model (`/llm/v1`), and whether it is their last
/// (they said DONE); `None` when the model had nothing to say.
async fn persona_line(
    target: &Target,
    p: &Persona,
    transcript: &[Line],
) -> anyhow::Result<Option<(String, bool)>> {
    let system = format!(
        "You are a person phoning a business. Who you are: {}. What you want: {}. \
         Say one short sentence at a time, as spoken on the phone. When you have what you \
         wanted, say goodbye and add DONE.",
        p.persona, p.goal
    );
    let mut messages = vec![json!({"role": "system", "content": system})];
    for l in transcript {
        let role = if l.role == "bot" { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": l.text}));
    }
    let http = reqwest::Client::new();
    let model = match &p.model {
        Some(m) => m.clone(),
        None => first_model(&http, target).await?,
    };
    let body = json!({"model": model, "messages": messages, "max_tokens": 60, "temperature": 0});
    let v: Value = http
        .post(target.base.join("llm/v1/chat/completions")?)
        .header("x-api-key", target.api_key.expose_secret())
        .json(&body)
        .send()
        .await
        .context("asking the model for the persona's line")?
        .error_for_status()
        .context("the model for the persona's line")?
        .json()
        .await?;
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let done = text.contains("DONE");
    let line = text.replace("DONE", "").trim().to_owned();
    Ok((!line.is_empty()).then_some((line, done)))
}

/// The first model the platform's gateway lists.
async fn first_model(http: &reqwest::Client, target: &Target) -> anyhow::Result<String> {
    let v: Value = http
        .get(target.base.join("llm/v1/models")?)
        .header("x-api-key", target.api_key.expose_secret())
        .send()
        .await
        .context("listing the platform's models for the persona")?
        .error_for_status()
        .context("the platform's models (is a language model configured?)")?
        .json()
        .await?;
    v["data"][0]["id"]
        .as_str()
        .map(str::to_owned)
        .context("the platform lists no model to play the persona")
}

/// The tools the call's model called, and whether a turn transferred the call, from its record
/// (written as the call ends: read until it is there).
async fn record(target: &Target, sid: &str) -> anyhow::Result<(Vec<(String, Value)>, bool)> {
    let http = reqwest::Client::new();
    let url = target.base.join(&format!("calls/{sid}"))?;
    for _ in 0..50 {
        let r = http
            .get(url.clone())
            .header("x-api-key", target.api_key.expose_secret())
            .send()
            .await?;
        if r.status().is_success() {
            let v: Value = r.json().await?;
            if v["status"] == "completed" {
                let turns = v["turns"].as_array().cloned().unwrap_or_default();
                let tools = turns
                    .iter()
                    .flat_map(|t| {
                        t["timings"]["llm"]["tools"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                    })
                    .map(|t| {
                        (
                            t["name"].as_str().unwrap_or_default().to_owned(),
                            t["arguments"].clone(),
                        )
                    })
                    .collect();
                let transferred = turns.iter().any(|t| t["action"] == "transfer");
                return Ok((tools, transferred));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the call's record {sid} was not complete within 10 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> (mpsc::UnboundedSender<Value>, Events) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Events { rx })
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_reply_is_waited_for_until_it_ends_and_the_line_is_quiet() {
        let (tx, mut ev) = events();
        let since = Instant::now();
        let feed = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            tx.send(json!({"event": "trackStart"})).unwrap();
            tx.send(json!({"event": "transcription", "role": "bot", "text": "A long answer."}))
                .unwrap();
            // Forty seconds of speech without an event (past the 30 s a reply has to start).
            tokio::time::sleep(Duration::from_secs(40)).await;
            tx.send(json!({"event": "trackEnd"})).unwrap();
            tx
        });
        let r = ev.reply(since).await.unwrap();
        let waited = since.elapsed();
        assert!(
            waited >= Duration::from_millis(40_400) + QUIET,
            "returned after {waited:?}, before the reply ended"
        );
        assert_eq!(r.texts, ["A long answer."]);
        assert_eq!(
            r.started.map(|s| s.duration_since(since)),
            Some(Duration::from_millis(400))
        );
        drop(feed.await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bot_that_never_answers_fails_the_scenario_and_a_hangup_ends_the_wait() {
        let (tx, mut ev) = events();
        let err = ev.reply(Instant::now()).await.err().unwrap();
        assert!(err.to_string().contains("did not answer"), "{err}");
        tx.send(json!({"event": "trackStart"})).unwrap();
        tx.send(json!({"event": "hangup", "reason": "bot_hangup"}))
            .unwrap();
        let r = ev.reply(Instant::now()).await.unwrap();
        assert_eq!(r.ended, Some(Ending::Hangup));
    }
}
