//! Recordings written as the call runs: a live call's WAV on disk is valid and growing while the
//! call goes on (what a crash would leave), and complete when it ends; on S3 (the local stand-in)
//! long recordings go up as a multipart upload of 5 MiB parts with the final header, and a
//! recording a crashed process left in its spool is uploaded at the next start.

#![allow(clippy::unwrap_used)]
mod common;

use callbot_core::recordings::{
    LocalRecordings, PART_BYTES, Recordings, S3Recordings, recording_key,
};
use callbot_core::settings::RecordingsSettings;
use callbot_twilio_sim::carrier::Step;
use common::{new_bot, spawn_app};
use std::time::Duration;

fn wav_len(bytes: &[u8]) -> u32 {
    hound::WavReader::new(std::io::Cursor::new(bytes))
        .unwrap()
        .duration()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_call_recording_is_on_disk_and_valid_while_the_call_runs() {
    let app = spawn_app().await;
    let (_, number) = new_bot(&app).await;
    let call = common::dial(
        &app,
        &number,
        vec![common::wait_bot(), Step::Silence(Duration::from_secs(8))],
    );
    let key = recording_key("acme", &call.sid);
    let local = LocalRecordings {
        dir: match &app.state.settings.recordings {
            RecordingsSettings::Local { dir } => dir.clone(),
            other => panic!("{other:?}"),
        },
    };
    let part = local.in_progress(&key).unwrap();
    // Mid-call: the file holds at least the first flush, and its header matches its length.
    let mid = common::eventually(|| async {
        let bytes = std::fs::read(&part).ok()?;
        let frames = wav_len(&bytes);
        (frames >= 8000 * 2).then_some(frames)
    })
    .await;
    assert!(
        !app.state.recordings.exists(&key).await.unwrap(),
        "served only once complete"
    );
    let later = common::eventually(|| async {
        let bytes = std::fs::read(&part).ok()?;
        let frames = wav_len(&bytes);
        (frames > mid).then_some(frames)
    })
    .await;
    assert_eq!((later - mid) % (8000 * 2), 0, "flushed in 2 s steps");
    let v = common::finished_call(&app, &call.sid).await;
    let bytes = app.state.recordings.get(&key).await.unwrap().unwrap();
    let (l, r, rate) = callbot_stream::audio::wav::read_stereo(&bytes).unwrap();
    assert_eq!(rate, 8000);
    assert_eq!(l.len(), r.len());
    let seconds = v["duration"].as_u64().unwrap_or(0);
    assert!(
        (l.len() as u64 / 8000).abs_diff(seconds) <= 1,
        "{} samples for a {seconds} s call",
        l.len()
    );
    assert!(
        r.iter().any(|&s| s != 0),
        "the bot's greeting is on its track"
    );
}

fn pcm(frames: usize, seed: i16) -> Vec<u8> {
    (0..frames)
        .flat_map(|i| {
            let s = (i as i16).wrapping_mul(7).wrapping_add(seed);
            [s.to_le_bytes(), s.wrapping_neg().to_le_bytes()]
        })
        .flatten()
        .collect()
}

/// A fresh bucket on the stand-in (through `settings`' endpoint) and a spool under `dir`.
async fn new_bucket(
    settings: &callbot_core::settings::Settings,
    dir: &std::path::Path,
) -> (S3Recordings, String, std::path::PathBuf) {
    let bucket = format!(
        "callbot-rec-{}",
        callbot_core::domain::CallSid::generate().as_str()[2..14].to_lowercase()
    );
    let spool = dir.join("spool");
    let s3 = S3Recordings::connect(&settings.aws, &bucket, spool.clone()).await;
    s3.ensure_bucket().await.unwrap();
    (s3, bucket, spool)
}

#[tokio::test]
async fn on_s3_long_recordings_go_up_in_parts_and_a_crash_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let Some(settings) = common::dynamodb_settings(dir.path()) else {
        return;
    };
    let (s3, bucket, spool) = new_bucket(&settings, dir.path()).await;

    // 11 MiB and a bit, in 64 KB chunks (two seconds each, as the engine hands them out): two
    // full parts uploaded during the call, the rest at the end.
    let mut expected = Vec::new();
    let mut w = s3.begin("acme/CAlong.wav").await.unwrap();
    let mut chunk = 0i16;
    while (expected.len() as u64) < 2 * PART_BYTES + 300_000 {
        let c = pcm(16_000, chunk);
        w.append(&c).await.unwrap();
        expected.extend_from_slice(&c);
        chunk += 1;
    }
    assert!(
        !s3.exists("acme/CAlong.wav").await.unwrap(),
        "the object appears only when the recording is finished"
    );
    w.finish().await.unwrap();
    let got = s3.get("acme/CAlong.wav").await.unwrap().unwrap();
    assert_eq!(got.len(), 44 + expected.len());
    assert_eq!(
        &got[..44],
        &callbot_core::recordings::wav_header(expected.len() as u32)[..],
        "the final header"
    );
    assert!(got[44..] == expected[..], "every sample, in order");
    assert!(
        !spool.join("acme/CAlong.wav").exists(),
        "the spool is cleared"
    );

    // A short one is one object.
    let mut w = s3.begin("acme/CAshort.wav").await.unwrap();
    w.append(&pcm(8000, 1)).await.unwrap();
    w.finish().await.unwrap();
    assert_eq!(
        wav_len(&s3.get("acme/CAshort.wav").await.unwrap().unwrap()),
        8000
    );

    // A crash: the writer is never finished. The next start uploads what was spooled.
    let mut w = s3.begin("acme/CAcrash.wav").await.unwrap();
    w.append(&pcm(16_000, 2)).await.unwrap();
    w.append(&pcm(16_000, 3)).await.unwrap();
    drop(w);
    let restarted = S3Recordings::connect(&settings.aws, &bucket, spool.clone()).await;
    assert_eq!(
        restarted.recover(Duration::from_secs(30)).await.unwrap(),
        0,
        "written just now: maybe another process's live call"
    );
    assert_eq!(restarted.recover(Duration::ZERO).await.unwrap(), 1);
    let got = restarted.get("acme/CAcrash.wav").await.unwrap().unwrap();
    assert_eq!(wav_len(&got), 32_000);
    assert_eq!(
        restarted.recover(Duration::ZERO).await.unwrap(),
        0,
        "nothing twice"
    );
}

/// A proxy in front of the S3 stand-in that refuses `UploadPart` requests (403 `AccessDenied` in
/// S3's XML shape, which the SDK does not retry) while `failing` is set; the rest passes through.
async fn failing_s3(
    upstream: String,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::IntoResponse;
    let client = reqwest::Client::new();
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (client, upstream, failing) = (client.clone(), upstream.clone(), failing.clone());
        async move {
            let query = uri.query().unwrap_or("");
            let upload_part = method == Method::PUT
                && query.contains("partNumber=")
                && query.contains("uploadId=");
            if upload_part && failing.load(std::sync::atomic::Ordering::SeqCst) {
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>standin</RequestId></Error>";
                return (
                    StatusCode::FORBIDDEN,
                    [("content-type", "application/xml")],
                    xml,
                )
                    .into_response();
            }
            let url = format!(
                "{}{}",
                upstream.trim_end_matches('/'),
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            );
            let mut req = client.request(method, url).body(body);
            for (k, v) in &headers {
                // Hop-by-hop headers stay here; the body is forwarded whole.
                if !matches!(
                    k.as_str(),
                    "host" | "content-length" | "transfer-encoding" | "connection" | "expect"
                ) {
                    req = req.header(k, v);
                }
            }
            match req.send().await {
                Ok(r) => {
                    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                    let mut out = HeaderMap::new();
                    for (k, v) in r.headers() {
                        if k != "content-length" && k != "transfer-encoding" {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    let body = r.bytes().await.unwrap_or_default();
                    (status, out, body).into_response()
                }
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
    };
    // Parts are 5 MiB: no body limit here.
    let app = axum::Router::new()
        .fallback(handler)
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Parts S3 refuses neither duplicate audio nor lose it: the engine's writer goes on, the parts
/// go up once S3 takes them again, and a recording whose end could not be uploaded stays in the
/// spool and is uploaded, whole, at the next start.
#[tokio::test]
async fn on_s3_refused_parts_are_retried_from_the_spool_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut settings) = common::dynamodb_settings(dir.path()) else {
        return;
    };
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let upstream = settings.aws.endpoint_url.clone().unwrap();
    settings.aws.endpoint_url = Some(failing_s3(upstream, failing.clone()).await);
    let (s3, _, spool) = new_bucket(&settings, dir.path()).await;
    let s3: std::sync::Arc<dyn Recordings> = std::sync::Arc::new(s3);

    // Through the engine's writer, in 64 KB chunks: refused while the first two parts fill,
    // then taken.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let writer = tokio::spawn(callbot_stream::engine::recorder::write(
        s3.clone(),
        "acme/CAflaky.wav".into(),
        rx,
    ));
    let mut expected = Vec::new();
    let mut chunk = 0i16;
    while (expected.len() as u64) < 3 * PART_BYTES + 100_000 {
        if expected.len() as u64 > 2 * PART_BYTES {
            failing.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        let c = pcm(16_000, chunk);
        expected.extend_from_slice(&c);
        tx.send(c).await.unwrap();
        chunk += 1;
    }
    drop(tx);
    writer.await.unwrap();
    let got = s3.get("acme/CAflaky.wav").await.unwrap().unwrap();
    assert_eq!(
        got.len(),
        44 + expected.len(),
        "no duplicated and no lost audio"
    );
    assert!(got[44..] == expected[..], "every sample once, in order");

    // Refused to the end: the recording is not finished, its spool stays, and the next start
    // uploads it whole.
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let writer = tokio::spawn(callbot_stream::engine::recorder::write(
        s3.clone(),
        "acme/CAdown.wav".into(),
        rx,
    ));
    let mut expected = Vec::new();
    for i in 0..(PART_BYTES as usize / 64_000 + 10) {
        let c = pcm(16_000, i as i16);
        expected.extend_from_slice(&c);
        tx.send(c).await.unwrap();
    }
    drop(tx);
    writer.await.unwrap();
    assert!(!s3.exists("acme/CAdown.wav").await.unwrap());
    assert!(
        spool.join("acme/CAdown.wav").exists(),
        "the tail is kept locally"
    );
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(s3.recover(Duration::ZERO).await.unwrap(), 1);
    let got = s3.get("acme/CAdown.wav").await.unwrap().unwrap();
    assert_eq!(wav_len(&got) as usize, expected.len() / 4);
    assert!(got[44..] == expected[..]);
}
