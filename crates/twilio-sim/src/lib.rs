//! callbot-twilio-sim: a Twilio simulator. Its REST API (`rest`) speaks Twilio's 2010-04-01 wire
//! format — basic auth, form bodies, JSON answers, Twilio's error shape — for phone numbers and
//! calls, and refuses wrong requests the way Twilio does. Its carrier (`carrier`) places the calls:
//! it fetches answer URLs, runs TwiML, drives media streams and posts status callbacks, all signed.
//!
//! `callbot serve` mounts it in local mode; tests use it as Twilio; `callbot call` uses the carrier.

pub mod amd;
pub mod carrier;
pub mod probe;
pub mod rest;
pub mod twiml;
mod wire;

use carrier::{Answer, CallContext, Control, Event, Script};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// RFC 2822 time, as Twilio writes timestamps.
pub fn rfc2822_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

/// A number the account owns (`IncomingPhoneNumbers` resource).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OwnedNumber {
    pub sid: String,
    pub phone_number: String,
    pub friendly_name: String,
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub date_created: String,
}

/// A call the simulator placed or received.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallInfo {
    pub sid: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub direction: String,
    pub date_created: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub duration: Option<String>,
}

/// A REST operation that a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Search,
    Buy,
    Release,
    CreateCall,
    UpdateCall,
}

/// An injected failure: the next request of `op` answers `status` with Twilio error `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub op: Op,
    pub status: u16,
    pub code: u32,
}

#[derive(Debug)]
struct CallEntry {
    info: CallInfo,
    control: Option<mpsc::Sender<Control>>,
}

#[derive(Debug)]
struct Inner {
    account_sid: String,
    auth_token: String,
    http: reqwest::Client,
    state_file: Option<PathBuf>,
    numbers: Mutex<BTreeMap<String, OwnedNumber>>,
    calls: Mutex<HashMap<String, CallEntry>>,
    faults: Mutex<Vec<Fault>>,
    /// `METHOD path` of every authenticated REST request, for tests.
    log: Mutex<Vec<String>>,
    /// API keys (`SK…`, secret) accepted besides the account's own credentials.
    api_keys: Mutex<Vec<(String, String)>>,
    /// Scripts for the callees of outbound calls, by number; others stay silent.
    callee_scripts: Mutex<HashMap<String, Script>>,
    /// What machine detection finds at each callee (others are people).
    callees: Mutex<HashMap<String, amd::Callee>>,
}

/// The simulator. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sim(Arc<Inner>);

/// A live simulated call: its events in order, the bot audio it heard, and its final status.
#[derive(Debug)]
pub struct CallHandle {
    pub sid: String,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub bot_audio: Arc<Mutex<Vec<u8>>>,
    pub done: tokio::task::JoinHandle<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sim {
    /// A simulator for one account. With `state_file`, owned numbers survive restarts.
    pub fn new(account_sid: &str, auth_token: &str, state_file: Option<PathBuf>) -> Self {
        let numbers = state_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Sim(Arc::new(Inner {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            http: reqwest::Client::new(),
            state_file,
            numbers: Mutex::new(numbers),
            calls: Mutex::new(HashMap::new()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            callee_scripts: Mutex::new(HashMap::new()),
            callees: Mutex::new(HashMap::new()),
            api_keys: Mutex::new(Vec::new()),
        }))
    }

    pub fn account_sid(&self) -> &str {
        &self.0.account_sid
    }

    /// Accepts an API key (sid `SK…` and secret) for REST authentication.
    pub fn add_api_key(&self, sid: &str, secret: &str) {
        lock(&self.0.api_keys).push((sid.to_owned(), secret.to_owned()));
    }

    /// Makes the next request of `fault.op` fail.
    pub fn inject(&self, fault: Fault) {
        lock(&self.0.faults).push(fault);
    }

    fn take_fault(&self, op: Op) -> Option<Fault> {
        let mut faults = lock(&self.0.faults);
        let i = faults.iter().position(|f| f.op == op)?;
        Some(faults.remove(i))
    }

    pub fn numbers(&self) -> Vec<OwnedNumber> {
        lock(&self.0.numbers).values().cloned().collect()
    }

    pub fn number(&self, phone: &str) -> Option<OwnedNumber> {
        lock(&self.0.numbers)
            .values()
            .find(|n| n.phone_number == phone)
            .cloned()
    }

    pub fn call(&self, sid: &str) -> Option<CallInfo> {
        lock(&self.0.calls).get(sid).map(|c| c.info.clone())
    }

    /// The numbers called by the calls not yet ended (queued, ringing or in progress), one entry
    /// per call.
    pub fn live_callees(&self) -> Vec<String> {
        lock(&self.0.calls)
            .values()
            .filter(|c| matches!(c.info.status.as_str(), "queued" | "ringing" | "in-progress"))
            .map(|c| c.info.to.clone())
            .collect()
    }

    /// `METHOD path` of the REST requests served so far.
    pub fn request_log(&self) -> Vec<String> {
        lock(&self.0.log).clone()
    }

    /// What the callee at `number` does when an outbound call reaches it.
    pub fn set_callee_script(&self, number: &str, script: Script) {
        lock(&self.0.callee_scripts).insert(number.to_owned(), script);
    }

    /// What machine detection finds when an outbound call reaches `number` (default: a person).
    pub fn set_callee_kind(&self, number: &str, callee: amd::Callee) {
        lock(&self.0.callees).insert(number.to_owned(), callee);
    }

    fn callee_kind(&self, number: &str) -> amd::Callee {
        lock(&self.0.callees)
            .get(number)
            .copied()
            .unwrap_or(amd::Callee::Person)
    }

    fn save_numbers(&self) {
        if let Some(path) = &self.0.state_file {
            let json = serde_json::to_vec_pretty(&*lock(&self.0.numbers)).unwrap_or_default();
            if let Err(e) = std::fs::write(path, json) {
                tracing::warn!(path = %path.display(), error = %e, "could not save simulator numbers");
            }
        }
    }

    fn context(
        &self,
        sid: &str,
        from: &str,
        to: &str,
        direction: &str,
        status_callback: Option<String>,
        status_events: Vec<String>,
    ) -> (CallContext, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = CallContext {
            sid: sid.to_owned(),
            account_sid: self.0.account_sid.clone(),
            from: from.to_owned(),
            to: to.to_owned(),
            direction: direction.to_owned(),
            auth_token: self.0.auth_token.clone(),
            http: self.0.http.clone(),
            status_callback,
            status_events,
            events: tx,
            bot_audio: Some(Arc::new(Mutex::new(Vec::new()))),
            media_times: None,
            probe: None,
        };
        (ctx, rx)
    }

    /// A caller at `from` dials the owned number `to`: Twilio POSTs the number's VoiceUrl and
    /// runs the call; `script` is what the caller does on the media stream.
    pub fn dial(&self, from: &str, to: &str, script: Script) -> anyhow::Result<CallHandle> {
        let number = self
            .number(to)
            .ok_or_else(|| anyhow::anyhow!("{to} is not a number of this account"))?;
        let voice_url = number
            .voice_url
            .ok_or_else(|| anyhow::anyhow!("{to} has no VoiceUrl"))?;
        let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
        // A number's StatusCallback gets the `completed` event only.
        let (ctx, events) = self.context(
            &sid,
            from,
            to,
            "inbound",
            number.status_callback.clone(),
            vec!["completed".into()],
        );
        Ok(self.start(
            ctx,
            events,
            Answer::Url(voice_url),
            script,
            "in-progress",
            0,
        ))
    }

    fn start(
        &self,
        ctx: CallContext,
        events: mpsc::UnboundedReceiver<Event>,
        answer: Answer,
        script: Script,
        status: &str,
        seq: u32,
    ) -> CallHandle {
        let (control_tx, control_rx) = mpsc::channel(4);
        self.insert_call(&ctx, status, true, Some(control_tx));
        let sim = self.clone();
        let sid = ctx.sid.clone();
        let bot_audio = ctx.bot_audio.clone().unwrap_or_default();
        let ring = status == "queued";
        let done = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut seq = seq;
            if ring {
                ctx.status_callback("initiated", "queued", seq, None).await;
                ctx.status_callback("ringing", "ringing", seq + 1, None)
                    .await;
                seq += 2;
                sim.set_status(&ctx.sid, "in-progress", None);
            }
            let status = carrier::run_call(ctx.clone(), answer, script, control_rx, seq).await;
            sim.set_status(&ctx.sid, &status, Some(started.elapsed().as_secs()));
            status
        });
        CallHandle {
            sid,
            events,
            bot_audio,
            done,
        }
    }

    /// Records a new call (`started`: its start time is now) and what controls it while live.
    fn insert_call(
        &self,
        ctx: &CallContext,
        status: &str,
        started: bool,
        control: Option<mpsc::Sender<Control>>,
    ) {
        let now = rfc2822_now();
        let info = CallInfo {
            sid: ctx.sid.clone(),
            from: ctx.from.clone(),
            to: ctx.to.clone(),
            status: status.to_owned(),
            direction: ctx.direction.clone(),
            date_created: now.clone(),
            start_time: started.then_some(now),
            end_time: None,
            duration: None,
        };
        lock(&self.0.calls).insert(ctx.sid.clone(), CallEntry { info, control });
    }

    /// A call nobody answers: it rings for `ring`, then ends with `status` (`busy`,
    /// `no-answer`), with the status callbacks Twilio sends for it.
    fn start_unanswered(
        &self,
        ctx: CallContext,
        events: mpsc::UnboundedReceiver<Event>,
        status: &'static str,
        ring: std::time::Duration,
    ) -> CallHandle {
        self.insert_call(&ctx, "queued", false, None);
        let (sim, sid) = (self.clone(), ctx.sid.clone());
        let done = tokio::spawn(async move {
            ctx.status_callback("initiated", "queued", 0, None).await;
            sim.set_status(&ctx.sid, "ringing", None);
            ctx.status_callback("ringing", "ringing", 1, None).await;
            tokio::time::sleep(ring).await;
            sim.set_status(&ctx.sid, status, Some(0));
            ctx.status_callback("completed", status, 2, Some(0)).await;
            ctx.emit(Event::Ended {
                status: status.to_owned(),
                duration_secs: 0,
            });
            status.to_owned()
        });
        CallHandle {
            sid,
            events,
            bot_audio: Arc::default(),
            done,
        }
    }

    fn set_status(&self, sid: &str, status: &str, duration: Option<u64>) {
        if let Some(c) = lock(&self.0.calls).get_mut(sid) {
            c.info.status = status.to_owned();
            if let Some(d) = duration {
                c.info.duration = Some(d.to_string());
                c.info.end_time = Some(rfc2822_now());
                c.control = None;
            }
        }
    }

    /// Sends a command to a live call; false when the call is not live.
    fn control(&self, sid: &str, cmd: Control) -> bool {
        let tx = lock(&self.0.calls).get(sid).and_then(|c| c.control.clone());
        match tx {
            Some(tx) => tx.try_send(cmd).is_ok(),
            None => false,
        }
    }
}

/// Collects a call's events until it ends (or `timeout` passes).
pub async fn events_until_end(handle: &mut CallHandle, timeout: std::time::Duration) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, handle.events.recv()).await {
        let end = matches!(e, Event::Ended { .. });
        seen.push(e);
        if end {
            break;
        }
    }
    seen
}
