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

#[tokio::test]
async fn on_s3_long_recordings_go_up_in_parts_and_a_crash_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let Some(settings) = common::dynamodb_settings(dir.path()) else {
        return;
    };
    let bucket = format!(
        "callbot-rec-{}",
        callbot_core::domain::CallSid::generate().as_str()[2..14].to_lowercase()
    );
    let spool = dir.path().join("spool");
    let s3 = S3Recordings::connect(&settings.aws, &bucket, spool.clone()).await;
    s3.ensure_bucket().await.unwrap();

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
