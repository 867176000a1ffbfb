//! Speaking a turn's words: each sentence synthesised by the bot's voice and streamed to the call
//! actor as it arrives, the local voice taking over a sentence a cloud voice failed; and the small
//! messages a turn task sends about its progress (stage, streaming begun).

use super::Engine;
use super::turn::{CallInfo, Stage, ToCall};
use crate::speech::TextToSpeech;
use crate::speech::voices::FALLBACK_VOICE;
use callbot_core::domain::VoiceProvider;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Tells the actor the turn moved on to `s`; false when the call is gone.
pub async fn stage(tx: &mpsc::Sender<ToCall>, turn: u32, s: Stage) -> bool {
    tx.send(ToCall::Stage { turn, stage: s }).await.is_ok()
}

/// Begins the turn's reply as a streaming one (nothing decided yet: its sentences follow as
/// `Sentence`, its action as `Act`); false when the call is gone.
pub async fn begin_streaming(tx: &mpsc::Sender<ToCall>, turn: u32) -> bool {
    tx.send(ToCall::Streaming { turn }).await.is_ok()
}

/// Synthesises the reply sentence by sentence, then reports the turn finished.
pub async fn speak(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    sentences: &[String],
    tx: &mpsc::Sender<ToCall>,
) {
    for (i, s) in sentences.iter().enumerate() {
        if !speak_one(engine, info, turn, i, s, tx).await {
            return;
        }
    }
    let _ = tx.send(ToCall::Finished { turn }).await;
}

/// Synthesises sentence `i` of the reply and streams it to the actor as it arrives; false when
/// the call is gone. A cloud voice that fails (an error answer, no audio within the deadline, a
/// stream cut) hands the sentence to the local voice, so a provider outage never means silence.
pub async fn speak_one(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    i: usize,
    s: &str,
    tx: &mpsc::Sender<ToCall>,
) -> bool {
    let voices = &engine.voices;
    let provider = info.voice.provider();
    let cloud = provider != VoiceProvider::Local;
    let failure = match voices.engine(provider) {
        Some(tts) => {
            let deadline = if cloud {
                voices.timeout
            } else {
                LOCAL_TTS_DEADLINE
            };
            match play(tts, s, info.voice.name(), deadline, turn, i, tx).await {
                Played::Done => None,
                Played::Gone => return false,
                Played::Failed(e) => Some(e),
            }
        }
        // Accepted by an API that declares the provider, but this service has no key for it.
        None => Some(crate::speech::SpeechError::Unavailable(format!(
            "{} is not configured in this service",
            provider.as_str()
        ))),
    };
    if let Some(e) = failure {
        if cloud {
            tracing::warn!(call_sid = %info.call_sid, turn, sentence = i, provider = provider.as_str(), error = %e, "voice provider failed; the local voice speaks the sentence");
            let fallback = ToCall::TtsFallback {
                turn,
                sentence: i,
                provider: provider.as_str(),
                error: e.to_string(),
            };
            if tx.send(fallback).await.is_err() {
                return false;
            }
            let local = voices.local.clone();
            match play(&local, s, FALLBACK_VOICE, LOCAL_TTS_DEADLINE, turn, i, tx).await {
                Played::Done => {}
                Played::Gone => return false,
                Played::Failed(e) => {
                    if !failed(tx, turn, i, e).await {
                        return false;
                    }
                }
            }
        } else if !failed(tx, turn, i, e).await {
            return false;
        }
    }
    tx.send(ToCall::SentenceDone { turn, sentence: i })
        .await
        .is_ok()
}

/// Deadline for the local synthesiser (a subprocess: normally 10-30 ms a phrase).
const LOCAL_TTS_DEADLINE: Duration = Duration::from_secs(10);

enum Played {
    Done,
    Gone,
    Failed(crate::speech::SpeechError),
}

async fn failed(
    tx: &mpsc::Sender<ToCall>,
    turn: u32,
    i: usize,
    e: crate::speech::SpeechError,
) -> bool {
    let msg = ToCall::SpeechFailed {
        turn,
        sentence: i,
        error: e.to_string(),
    };
    tx.send(msg).await.is_ok()
}

/// Streams one synthesis to the actor: the first bytes and every later gap within `deadline`.
async fn play(
    tts: &Arc<dyn TextToSpeech>,
    text: &str,
    voice: &str,
    deadline: Duration,
    turn: u32,
    sentence: usize,
    tx: &mpsc::Sender<ToCall>,
) -> Played {
    use crate::speech::SpeechError;
    use futures_util::StreamExt;
    let started = Instant::now();
    let provider = tts.name();
    let mut stream = match tokio::time::timeout(deadline, tts.stream(text, voice)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Played::Failed(e),
        Err(_) => return Played::Failed(SpeechError::Timeout),
    };
    loop {
        match tokio::time::timeout(deadline, stream.next()).await {
            Err(_) => return Played::Failed(SpeechError::Timeout),
            Ok(None) => return Played::Done,
            Ok(Some(Err(e))) => return Played::Failed(e),
            Ok(Some(Ok(chunk))) if chunk.is_empty() => {}
            Ok(Some(Ok(ulaw))) => {
                let msg = ToCall::Audio {
                    turn,
                    sentence,
                    ulaw,
                    tts: started.elapsed(),
                    provider,
                };
                if tx.send(msg).await.is_err() {
                    return Played::Gone;
                }
            }
        }
    }
}
