//! The `play` command: an audio file fetched over HTTP(S) and played into the call. The URL is
//! held to the webhook rule (no private or loopback targets unless the operator allows them,
//! checked when it is resolved), the body to 16 MB and 30 s to arrive; the file must be a 16-bit
//! PCM WAV (any rate, the first channel), resampled to the line's 8 kHz.

use super::Engine;
use super::turn::{CallInfo, ToCall};
use super::webhook::Action;
use crate::audio;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const MAX_FILE: usize = 16 * 1024 * 1024;
const FETCH_DEADLINE: Duration = Duration::from_secs(30);

/// Fetches and decodes the file (μ-law 8 kHz), or says why not.
pub async fn fetch(engine: &Engine, info: &CallInfo, url: &url::Url) -> Result<Vec<u8>, String> {
    callbot_core::domain::WebhookUrl::parse(url.as_str(), info.policy)
        .map_err(|e| format!("play URL refused: {e}"))?;
    let refused = || "play URL refused: it resolves to a private or loopback address".to_string();
    if !callbot_core::outbound::literal_allowed(url, info.policy) {
        return Err(refused());
    }
    let body = tokio::time::timeout(FETCH_DEADLINE, async {
        let mut resp = engine
            .outbound(info.policy)
            .get(url.clone())
            .send()
            .await
            .map_err(|e| {
                if callbot_core::outbound::is_refused(&e) {
                    refused()
                } else {
                    format!("fetching the file failed: {}", e.without_url())
                }
            })?;
        if !resp.status().is_success() {
            return Err(format!("fetching the file answered {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading the file failed: {}", e.without_url()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_FILE {
                return Err(format!("the file is larger than {MAX_FILE} bytes"));
            }
        }
        Ok(body)
    })
    .await
    .map_err(|_| {
        format!(
            "the file did not arrive within {} s",
            FETCH_DEADLINE.as_secs()
        )
    })??;
    // Parsing and resampling up to 16 MB is CPU work: off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        let (pcm, rate) = audio::wav::read_mono(&body)
            .map_err(|e| format!("not a playable file (16-bit PCM WAV): {e}"))?;
        if pcm.is_empty() || !(4_000..=192_000).contains(&rate) {
            return Err("the WAV file has no audio or an unusable sample rate".into());
        }
        Ok(audio::to_phone(&pcm, rate))
    })
    .await
    .map_err(|_| "decoding failed".to_string())?
}

/// The file's audio goes to the call a second at a time, so a long file never holds the call's
/// loop for long.
const PLAY_CHUNK: usize = 8_000;

/// Runs a `play` turn: the file's audio as the reply (no words: nothing enters the history),
/// then `then`. A file that cannot be played is reported as an `error` event and skipped.
pub async fn run(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    url: &url::Url,
    then: Action,
    tx: &mpsc::Sender<ToCall>,
) {
    let started = Instant::now();
    match fetch(engine, info, url).await {
        Ok(ulaw) => {
            let reply = ToCall::Reply {
                turn,
                say: String::new(),
                action: then,
                fallback: None,
                webhook: None,
                sentences: vec![String::new()],
            };
            if tx.send(reply).await.is_err() {
                return;
            }
            let tts = started.elapsed();
            for chunk in ulaw.chunks(PLAY_CHUNK) {
                let audio = ToCall::Audio {
                    turn,
                    sentence: 0,
                    ulaw: chunk.to_vec().into(),
                    tts,
                    provider: "play",
                };
                if tx.send(audio).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(ToCall::SentenceDone { turn, sentence: 0 }).await;
        }
        Err(error) => {
            tracing::warn!(call_sid = %info.call_sid, %error, "play failed");
            let _ = tx
                .send(ToCall::SpeechFailed {
                    turn,
                    sentence: 0,
                    error,
                })
                .await;
        }
    }
    let _ = tx.send(ToCall::Finished { turn }).await;
}
