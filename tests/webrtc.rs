//! `wss /call/webrtc` with a scripted WebRTC peer from another implementation (Python's aiortc):
//! the SDP offer in `invite`, our answer offering PCMU only, ICE and DTLS-SRTP over loopback, the
//! peer's microphone (a WAV file) recognised and answered by the engine, the bot's audio received
//! by the peer; a peer that vanishes (ICE fails) ends the call cleanly; a client's candidates at
//! internal addresses are refused where the operator has not allowed them.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_stream::audio::{g711, wav};
use callbot_stream::speech::instant::voiced_tone;
use common::callws;
use common::hook::{self, Answer};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The microphone: `lead` of silence, 900 ms of voice, then silence to `total`.
fn mic_wav(path: &std::path::Path, lead: Duration, total: Duration) {
    let mut pcm = vec![0i16; (lead.as_millis() * 8) as usize];
    pcm.extend(voiced_tone(900).iter().map(|&b| g711::decode_sample(b)));
    pcm.resize((total.as_millis() * 8) as usize, 0);
    std::fs::write(path, wav::write_mono(&pcm, 8000)).unwrap();
}

struct Peer {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Peer {
    fn start(
        python: &str,
        mic: &std::path::Path,
        rec: &std::path::Path,
        secs: u32,
    ) -> (Self, String) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/rtc_peer.py");
        let mut child = Command::new(python)
            .args([
                script,
                mic.to_str().unwrap(),
                rec.to_str().unwrap(),
                &secs.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let offer = Self::line(&mut out)["offer"].as_str().unwrap().to_owned();
        (Self { child, out }, offer)
    }

    fn line(out: &mut BufReader<std::process::ChildStdout>) -> Value {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer said {line:?}: {e}"))
    }

    fn answer(&mut self, sdp: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({"answer": sdp})).unwrap();
    }

    /// The peer's report once its time is up.
    async fn report(mut self) -> Value {
        tokio::task::spawn_blocking(move || {
            let v = Self::line(&mut self.out);
            let _ = self.child.wait();
            v
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webrtc_call_from_an_independent_peer() {
    let Some(python) = common::python() else {
        return;
    };
    let app = common::spawn_app_with(|s| {
        s.calls.end_silence = Duration::from_millis(400);
        s.rtc.ports = Some((41000, 41099));
    })
    .await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "Noted, thank you."}))).await;
    let body = json!({"goal": "Take reservations", "webhook": hook.url, "voice": "local:en-us",
        "first_message": "Hello."});
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    let bot = b["id"].as_str().unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let (mic, rec) = (dir.path().join("mic.wav"), dir.path().join("heard.wav"));
    mic_wav(&mic, Duration::from_millis(2500), Duration::from_secs(12));
    let (mut peer, offer) = Peer::start(&python, &mic, &rec, 9);
    let ticket = callws::ticket(&app, &app.api_key, "call").await;
    let mut c = callws::open(&app, &format!("/call/webrtc?ticket={ticket}"), None)
        .await
        .unwrap();
    let answer = c
        .invite(json!({"callee": bot, "offer": offer, "caller": "aiortc"}))
        .await;
    let sdp = answer["sdp"].as_str().unwrap().to_owned();
    assert!(sdp.contains("PCMU/8000"), "{sdp}");
    // (Codec lines only: a random ICE ufrag may spell "opus".)
    assert!(
        sdp.lines()
            .filter(|l| l.starts_with("a=rtpmap:") || l.starts_with("m=audio"))
            .all(|l| !l.to_lowercase().contains("opus")),
        "PCMU only: {sdp}"
    );
    let candidates: Vec<&str> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(
        candidates.iter().any(|l| l
            .split_whitespace()
            .nth(5)
            .is_some_and(|p| p.starts_with("410"))
            && l.contains("typ host")),
        "a host candidate in RTC_PORTS: {sdp}"
    );
    assert!(
        candidates
            .iter()
            .all(|l| !l.contains(" 127.0.0.1 ") && !l.contains(" ::1 ")),
        "never loopback: {sdp}"
    );
    let sid = answer["callSid"].as_str().unwrap().to_owned();
    peer.answer(&sdp);
    // The greeting plays over RTP; the peer's words are heard and answered.
    c.wait("trackEnd", |e| e["trackId"] == "reply-0").await;
    let fin = c.wait("asrFinal", |_| true).await;
    let ms: u64 = fin["text"].as_str().unwrap()["utterance of ".len()..]
        .trim_end_matches(" ms")
        .parse()
        .unwrap();
    assert!(
        (700..1500).contains(&ms),
        "the peer's 900 ms of voice: {fin}"
    );
    c.wait("trackEnd", |e| e["trackId"] == "reply-1").await;
    let report = peer.report().await;
    assert_eq!(report["state"], "connected", "{report}");
    // The peer received the greeting (360 ms) and the reply (1,020 ms); nothing is sent while
    // the bot is silent.
    let got = report["received_ms"].as_u64().unwrap();
    assert!((1_100..=1_600).contains(&got), "{report}");
    let (heard, _) = wav::read_mono(&std::fs::read(&rec).unwrap()).unwrap();
    let loud = heard
        .chunks(160)
        .filter(|f| f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0 > 1e6);
    assert!(loud.count() > 50, "the bot's audio reached the peer");
    // The peer closed: ICE goes, the call ends as a hang-up by the caller.
    let h = c.wait("hangup", |_| true).await;
    assert_eq!(h["reason"], "caller_hangup", "{h}");
    let call = common::finished_call(&app, &sid).await;
    assert_eq!(call["channel"], "webrtc");
    assert_eq!(call["from"], "aiortc");
    assert_eq!(call["turns"][1]["bot_text"], "Noted, thank you.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn internal_candidates_are_refused_unless_the_operator_allows_them() {
    let app = common::spawn_app_with(|s| {
        s.rtc.allow_private = false;
        s.rtc.public_ip = Some("198.51.100.20".parse().unwrap());
    })
    .await;
    let hook = hook::start(|_| Answer::Json(json!({"say": "Noted."}))).await;
    let body = json!({"goal": "Take reservations", "voice": "local:en-us", "first_message": "Hello.",
        "webhook": hook.url});
    let (status, b) = app.create_bot(&app.api_key, body).await;
    assert_eq!(status, 201, "{b}");
    hook.set_secret(b["webhook_secret"].as_str().unwrap());
    let bot = b["id"].as_str().unwrap().to_owned();
    // An offer from our own offering side, with a metadata-service candidate added.
    let offer = callbot_stream::rtc::Offer::new().await.unwrap();
    assert!(offer.sdp.contains("a=candidate:"), "{}", offer.sdp);
    let sdp = offer.sdp.replacen(
        "a=candidate:",
        "a=candidate:9 1 udp 2130706431 169.254.169.254 80 typ host\r\na=candidate:",
        1,
    );
    let mut c = callws::open(&app, "/call/webrtc", Some(&app.api_key))
        .await
        .unwrap();
    let answer = c.invite(json!({"callee": bot, "offer": sdp})).await;
    let answer_sdp = answer["sdp"].as_str().unwrap();
    assert!(
        answer_sdp
            .lines()
            .any(|l| l.contains(" 198.51.100.20 ") && l.contains("typ srflx")),
        "the public address is offered: {answer_sdp}"
    );
    assert!(!answer_sdp.contains(" 127.0.0.1 "), "{answer_sdp}");
    for addr in ["10.0.0.7", "127.0.0.1", "169.254.169.254", "fd00::7"] {
        c.send(json!({"command": "candidate",
            "candidates": [format!("candidate:1 1 udp 2130706431 {addr} 3478 typ host")]}))
            .await;
        let e = c
            .wait("error", |e| {
                e["error"].as_str().unwrap_or("").contains(addr)
            })
            .await;
        assert_eq!(e["code"], 403, "{e}");
    }
}
