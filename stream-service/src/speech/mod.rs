//! Speech engines behind two small traits, so that offline engines (whisper.cpp, espeak-ng), cloud
//! adapters and instant stand-ins plug into the call engine alike.

pub mod backchannel;
pub mod cue;
pub mod deepgram;
pub mod elevenlabs;
pub mod endpoint;
pub mod espeak;
#[cfg(any(test, feature = "instant-speech"))]
pub mod instant;
pub mod openai_audio;
pub mod polly;
pub mod turn_model;
pub mod voices;
pub mod whisper;

pub use cue::Cue;
pub use voices::Voices;

/// What a call's recogniser reports while the caller speaks.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// The words heard so far of the current stretch (replaced by the next partial or final).
    Partial { text: String },
    /// A settled stretch of the current utterance. `end`: the recogniser saw the utterance end
    /// (`speech_final`, or the answer to our `Finalize`).
    Final { text: String, end: bool },
    /// `UtteranceEnd`: a gap after the last word.
    UtteranceEnd,
    /// The connection dropped and is back; the unfinished utterance's audio was sent again, so
    /// its finals will come again.
    Restarted,
    /// The recogniser is gone for the rest of the call.
    Failed { error: String },
    /// The local engine decoded utterance `utterance` up to `voiced` of its speech: its words so
    /// far (the utterance's final words if the caller has said nothing since).
    Decoded {
        utterance: u64,
        voiced: std::time::Duration,
        text: String,
    },
    /// The end-of-turn model judged utterance `utterance` up to `voiced` of its speech (`None`:
    /// it could not, busy or failing; the words' rules decide alone).
    Judged {
        utterance: u64,
        voiced: std::time::Duration,
        finished: Option<bool>,
    },
}

/// Which recogniser hears callers (`CALLBOT_STT`); the local engine is always the fallback.
#[derive(Debug, Clone)]
pub enum Recogniser {
    /// The local engine (whisper.cpp), with partial transcripts.
    Local,
    /// OpenAI `/audio/transcriptions`, one upload per utterance.
    OpenAi(std::sync::Arc<openai_audio::OpenAiAudio>),
    /// Deepgram live streaming, one WebSocket per call.
    Deepgram(callbot_core::settings::DeepgramSettings),
}

impl Recogniser {
    pub fn from_settings(
        p: &callbot_core::settings::ProviderSettings,
        http: reqwest::Client,
    ) -> Self {
        use callbot_core::settings::SttChoice;
        match (p.stt, &p.openai, &p.deepgram) {
            (SttChoice::OpenAi, Some(o), _) => Recogniser::OpenAi(std::sync::Arc::new(
                openai_audio::OpenAiAudio::new(http, o.clone(), p.stt_timeout),
            )),
            (SttChoice::Deepgram, _, Some(d)) => Recogniser::Deepgram(d.clone()),
            _ => Recogniser::Local,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Recogniser::Local => "local",
            Recogniser::OpenAi(_) => "openai",
            Recogniser::Deepgram(_) => "deepgram",
        }
    }
}

use async_trait::async_trait;
use std::time::Duration;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SpeechError {
    /// Every worker is busy and the queue is full: the caller should fall back, not wait.
    #[error("speech engine busy")]
    Busy,
    #[error("speech engine failed: {0}")]
    Engine(String),
    #[error("speech engine not available: {0}")]
    Unavailable(String),
    /// A provider took longer than its deadline (first audio, a gap, or the answer).
    #[error("speech provider timed out")]
    Timeout,
}

/// 8 kHz μ-law as a provider produces it, in chunks of any size.
pub type AudioStream = futures_util::stream::BoxStream<'static, Result<bytes::Bytes, SpeechError>>;

/// What a recogniser heard in one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// Time spent inside the engine (queueing excluded).
    pub engine: Duration,
}

/// Speech recognition of whole utterances (after endpointing).
///
/// - Does not block the async runtime: work runs on the engine's own bounded pool.
/// - Cancel-safe: dropping the future abandons the result (the worker finishes the utterance).
/// - Idempotent: the same audio may be submitted again.
#[async_trait]
pub trait SpeechToText: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    /// `pcm` is 8 kHz mono 16-bit (the phone line); `cue` is what the conversation expects
    /// (engines without prompts ignore it).
    async fn transcribe(&self, pcm: Vec<i16>, cue: &Cue) -> Result<Transcript, SpeechError>;

    /// Whether a partial transcript (of an utterance still going on) can run now without
    /// delaying anyone's final one. Engines without partials say no.
    fn partial_ready(&self) -> bool {
        false
    }

    /// Whether this engine gives partial transcripts at all.
    fn has_partials(&self) -> bool {
        false
    }

    /// Utterances queued or being recognised, and how many the engine takes before refusing;
    /// `None` for engines without a queue of their own.
    fn load(&self) -> Option<(usize, usize)> {
        None
    }
}

/// Synthesised speech ready for the phone line.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    /// 8 kHz μ-law.
    pub ulaw: Vec<u8>,
    pub engine: Duration,
}

/// Speech synthesis of one sentence or phrase.
///
/// - Does not block the async runtime (subprocess or network I/O).
/// - Cancel-safe: dropping the future kills/abandons the synthesis.
/// - Idempotent.
#[async_trait]
pub trait TextToSpeech: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// `voice` is the provider-specific voice name (e.g. `en-us` for espeak-ng).
    async fn synthesize(&self, text: &str, voice: &str) -> Result<Speech, SpeechError>;

    /// The same audio as it is produced, so playback starts on the first bytes. Engines that
    /// make a phrase at once (espeak-ng: 10-30 ms) give it as one chunk.
    async fn stream(&self, text: &str, voice: &str) -> Result<AudioStream, SpeechError> {
        let speech = self.synthesize(text, voice).await?;
        Ok(Box::pin(futures_util::stream::once(async move {
            Ok(bytes::Bytes::from(speech.ulaw))
        })))
    }
}

/// A streaming synthesiser's whole answer for `synthesize`: its `stream`, collected within
/// `timeout`.
pub(crate) async fn whole(
    tts: &dyn TextToSpeech,
    text: &str,
    voice: &str,
    timeout: std::time::Duration,
) -> Result<Speech, SpeechError> {
    use futures_util::TryStreamExt;
    let started = std::time::Instant::now();
    let stream = tts.stream(text, voice).await?;
    let chunks: Vec<bytes::Bytes> = tokio::time::timeout(timeout, stream.try_collect())
        .await
        .map_err(|_| SpeechError::Timeout)??;
    Ok(Speech {
        ulaw: chunks.concat(),
        engine: started.elapsed(),
    })
}

/// Sends a request to a cloud `provider`; an answer other than 2xx becomes its error (with the
/// provider's own code from the body). `what` names the request in transport errors.
pub(crate) async fn send(
    provider: &str,
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, SpeechError> {
    let resp = req.send().await.map_err(|e| request_error(what, &e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    Err(provider_error(provider, status, &body))
}

/// A transport error without the URL (which holds nothing secret, but is noise in an event).
pub(crate) fn request_error(what: &str, e: &reqwest::Error) -> SpeechError {
    if e.is_timeout() {
        SpeechError::Timeout
    } else if e.is_connect() {
        SpeechError::Engine(format!("{what}: cannot connect"))
    } else {
        SpeechError::Engine(format!("{what}: connection failed"))
    }
}

/// A provider's error answer as a message that names the status and the provider's own code,
/// never the request (keys live in headers, never here).
fn provider_error(provider: &str, status: reqwest::StatusCode, body: &[u8]) -> SpeechError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = [
        &v["detail"]["status"],
        &v["error"]["code"],
        &v["error"]["type"],
        &v["err_code"],
        &v["__type"],
    ]
    .into_iter()
    .find_map(|c| c.as_str())
    .unwrap_or("")
    .chars()
    .take(60)
    .collect::<String>();
    SpeechError::Engine(if code.is_empty() {
        format!("{provider} answered {status}")
    } else {
        format!("{provider} answered {status} ({code})")
    })
}

/// The engines the settings ask for. Loading Whisper is blocking work, done once at startup.
pub async fn from_settings(
    speech: &callbot_core::settings::SpeechSettings,
) -> Result<
    (
        std::sync::Arc<dyn SpeechToText>,
        std::sync::Arc<dyn TextToSpeech>,
    ),
    SpeechError,
> {
    use callbot_core::settings::SpeechSettings;
    use std::sync::Arc;
    match speech {
        #[cfg(any(test, feature = "instant-speech"))]
        SpeechSettings::Instant => Ok((
            Arc::new(instant::InstantStt),
            Arc::new(instant::InstantTts::default()),
        )),
        #[cfg(any(test, feature = "instant-speech"))]
        SpeechSettings::InstantLoaded { workers, decode } => Ok((
            Arc::new(instant::LoadedStt::new(*workers, *decode)),
            Arc::new(instant::InstantTts::default()),
        )),
        #[cfg(not(any(test, feature = "instant-speech")))]
        SpeechSettings::Instant | SpeechSettings::InstantLoaded { .. } => {
            Err(SpeechError::Unavailable(
                "the instant speech stand-ins are not in this build (they are in `callbot`, for benchmarks)"
                    .into(),
            ))
        }
        SpeechSettings::Local {
            model,
            espeak: program,
            whisper_workers,
            decoding,
        } => {
            let tts = espeak::Espeak::new(program.clone());
            tts.available().await?;
            let (model, workers) = (model.clone(), *whisper_workers);
            let decoding = whisper::Decoding {
                beam: decoding.beam,
                prompt: decoding.prompt,
                ..Default::default()
            };
            let stt = tokio::task::spawn_blocking(move || {
                whisper::WhisperStt::load(
                    &model,
                    whisper::WhisperConfig {
                        workers,
                        decoding,
                        ..Default::default()
                    },
                )
            })
            .await
            .map_err(|e| SpeechError::Unavailable(e.to_string()))??;
            Ok((Arc::new(stt), Arc::new(tts)))
        }
    }
}

/// Splits a reply into sentences so the first can play while the rest is synthesised.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        cur.push(c);
        // A sentence ends at . ! ? ; before a space and a capital (or the end): "p.m. is" does not.
        let next_word = chars[i + 1..].iter().find(|n| !n.is_whitespace());
        let end = matches!(c, '.' | '!' | '?' | ';')
            && chars.get(i + 1).is_none_or(|n| n.is_whitespace())
            && next_word.is_none_or(|n| !n.is_lowercase());
        if end && cur.trim().len() > 1 {
            out.push(cur.trim().to_owned());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// Share of `want`'s words found in `got`, case and punctuation ignored: how recognition is scored
/// in tests and benchmarks (exact text would fail a correct engine on "7 PM" vs "seven pm").
pub fn word_overlap(want: &str, got: &str) -> f64 {
    let norm = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (w, g) = (norm(want), norm(got));
    w.iter().filter(|x| g.contains(x)).count() as f64 / w.len().max(1) as f64
}

/// Hands a job to a worker's bounded queue (`jobs`) and waits for its answer on `rx`. `busy`,
/// where the engine keeps one, counts the jobs queued or running (the worker takes one off when
/// it is done); a full queue is `Busy`, a stopped worker `Unavailable`. Cancel-safe: a dropped
/// wait abandons the answer.
pub(crate) async fn queue_job<J, T>(
    jobs: &std::sync::mpsc::SyncSender<J>,
    busy: Option<&std::sync::atomic::AtomicUsize>,
    job: J,
    rx: tokio::sync::oneshot::Receiver<Result<T, SpeechError>>,
    worker: &str,
) -> Result<T, SpeechError> {
    use std::sync::atomic::Ordering;
    use std::sync::mpsc::TrySendError;
    let count = |up: bool| {
        if let Some(b) = busy {
            if up {
                b.fetch_add(1, Ordering::Relaxed);
            } else {
                b.fetch_sub(1, Ordering::Relaxed);
            }
        }
    };
    count(true);
    match jobs.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            count(false);
            return Err(SpeechError::Busy);
        }
        Err(TrySendError::Disconnected(_)) => {
            count(false);
            return Err(SpeechError::Unavailable(format!("{worker} stopped")));
        }
    }
    rx.await
        .unwrap_or_else(|_| Err(SpeechError::Engine(format!("{worker} died"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sentences_but_not_numbers_or_abbreviations_inside_words() {
        assert_eq!(
            sentences("Sure! A table for 4 at 7.30 p.m. is booked. Anything else?"),
            vec![
                "Sure!",
                "A table for 4 at 7.30 p.m. is booked.",
                "Anything else?"
            ]
        );
        assert_eq!(sentences("  "), Vec::<String>::new());
        assert_eq!(sentences("no punctuation"), vec!["no punctuation"]);
    }
}
