//! whisper.cpp (through whisper-rs) on a fixed pool of worker threads with a bounded queue. Each
//! worker owns its decoder state; the model is loaded once. Decoding suited to a phone line:
//! English, beam search (or greedy), the conversation's cue as the initial prompt, timestamps on
//! (without them greedy decoding was seen to loop), the encoder window sized to the utterance and
//! the tokens capped by its length.

use super::{Cue, SpeechError, SpeechToText, Transcript};
use crate::audio::resample;
use async_trait::async_trait;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

struct Job {
    pcm: Vec<i16>,
    cue: Cue,
    /// When it was queued: a job that waited past [`QUEUE_DEADLINE`] is refused, not decoded.
    queued: Instant,
    reply: oneshot::Sender<Result<Transcript, SpeechError>>,
}

#[derive(Debug, Clone)]
pub struct WhisperStt {
    jobs: SyncSender<Job>,
    name: String,
    /// Utterances queued or being decoded, and how many workers decode.
    busy: Arc<AtomicUsize>,
    workers: usize,
    /// Workers plus queue places.
    capacity: usize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("samples", &self.pcm.len())
            .finish()
    }
}

/// Pool sizing and decoding.
#[derive(Debug, Clone, Copy)]
pub struct WhisperConfig {
    pub workers: usize,
    pub threads_per_worker: usize,
    /// Utterances waiting beyond the busy workers; more are refused (`Busy`).
    pub queue: usize,
    pub decoding: Decoding,
}

/// How each utterance is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoding {
    /// Beam width; 1 decodes greedily.
    pub beam: u8,
    /// Whether the conversation's cue becomes the initial prompt.
    pub prompt: bool,
    /// Audio context beyond the utterance given to the encoder, in ms (the window is trimmed
    /// to the utterance plus this).
    pub context_pad_ms: u32,
}

impl Default for Decoding {
    fn default() -> Self {
        Self {
            beam: 1,
            prompt: true,
            context_pad_ms: 1000,
        }
    }
}

impl Default for WhisperConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            threads_per_worker: 2,
            queue: 8,
            decoding: Decoding::default(),
        }
    }
}

impl WhisperStt {
    /// Loads the ggml model (blocking; call at startup) and starts the workers.
    pub fn load(model: &Path, cfg: WhisperConfig) -> Result<Self, SpeechError> {
        whisper_rs::install_logging_hooks();
        let path = model
            .to_str()
            .ok_or_else(|| SpeechError::Unavailable("model path is not UTF-8".into()))?;
        if !model.exists() {
            return Err(SpeechError::Unavailable(format!(
                "{} is missing; run `callbot models install`",
                model.display()
            )));
        }
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| SpeechError::Unavailable(format!("loading {}: {e}", model.display())))?;
        let ctx = Arc::new(ctx);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(cfg.queue);
        let rx = Arc::new(Mutex::new(rx));
        let busy = Arc::new(AtomicUsize::new(0));
        for i in 0..cfg.workers.max(1) {
            let busy = busy.clone();
            let mut state = ctx
                .create_state()
                .map_err(|e| SpeechError::Unavailable(format!("whisper state: {e}")))?;
            let rx = rx.clone();
            let threads = cfg.threads_per_worker.max(1) as i32;
            let decoding = cfg.decoding;
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("whisper-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if job.reply.is_closed() {
                            busy.fetch_sub(1, Ordering::Relaxed);
                            continue; // the call went away while this waited
                        }
                        if job.queued.elapsed() > QUEUE_DEADLINE {
                            // Decoding it now would answer the caller seconds late: the call
                            // says it is overloaded and asks again instead.
                            busy.fetch_sub(1, Ordering::Relaxed);
                            let _ = job.reply.send(Err(SpeechError::Busy));
                            continue;
                        }
                        let prompt = if decoding.prompt {
                            prompt_tokens(&ctx, job.cue.prompt())
                        } else {
                            Vec::new()
                        };
                        let result = run(&mut state, &job.pcm, &prompt, threads, decoding);
                        busy.fetch_sub(1, Ordering::Relaxed);
                        let _ = job.reply.send(result);
                    }
                })
                .map_err(|e| SpeechError::Unavailable(format!("spawning worker: {e}")))?;
        }
        let name = format!(
            "whisper.cpp ({})",
            model
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("model")
        );
        Ok(Self {
            jobs: tx,
            name,
            busy,
            workers: cfg.workers.max(1),
            capacity: cfg.workers.max(1) + cfg.queue,
        })
    }
}

/// Whisper keeps at most this many prompt tokens (half its text context, less the marker).
const MAX_PROMPT_TOKENS: usize = 223;

/// The cue's text as prompt tokens (the last [`MAX_PROMPT_TOKENS`]); none if it cannot be read.
fn prompt_tokens(ctx: &WhisperContext, prompt: &str) -> Vec<i32> {
    if prompt.is_empty() || prompt.contains('\0') {
        return Vec::new();
    }
    // A generous buffer: the tokenizer reports a short one as an error (whisper-rs would misread
    // the needed length), and a cue is at most a few hundred characters, each at most one token.
    let text = format!(" {prompt}");
    match ctx.tokenize(&text, text.len() + 8) {
        Ok(mut tokens) => {
            let excess = tokens.len().saturating_sub(MAX_PROMPT_TOKENS);
            tokens.drain(..excess);
            tokens
        }
        Err(_) => Vec::new(),
    }
}

fn run(
    state: &mut whisper_rs::WhisperState,
    pcm8k: &[i16],
    prompt: &[i32],
    threads: i32,
    decoding: Decoding,
) -> Result<Transcript, SpeechError> {
    let started = Instant::now();
    let spoken = pcm8k.len() as f64 / 8000.0;
    let audio = resample::resample(&resample::i16_to_f32(pcm8k), 8000, 16000);
    // Whisper needs at least a second of input; pad short utterances with silence.
    let mut audio = audio;
    if audio.len() < 16_000 + 1600 {
        audio.resize(16_000 + 1600, 0.0);
    }
    let seconds = audio.len() as f64 / 16_000.0;
    let strategy = if decoding.beam > 1 {
        SamplingStrategy::BeamSearch {
            beam_size: i32::from(decoding.beam),
            patience: -1.0,
        }
    } else {
        SamplingStrategy::Greedy { best_of: 1 }
    };
    let mut params = FullParams::new(strategy);
    params.set_n_threads(threads);
    params.set_language(Some("en"));
    params.set_no_context(true);
    params.set_single_segment(true);
    params.set_no_timestamps(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params.set_suppress_blank(true);
    params.set_audio_ctx(
        ((seconds + f64::from(decoding.context_pad_ms) / 1000.0) * 50.0)
            .ceil()
            .min(1500.0) as i32,
    );
    // About 3 words a second at most, a token and a half each, and punctuation: a decoder
    // stuck repeating itself stops there.
    params.set_max_tokens((spoken * 6.0).ceil() as i32 + 8);
    params.set_temperature_inc(0.0);
    if !prompt.is_empty() {
        params.set_tokens(prompt);
    }
    state
        .full(params, &audio)
        .map_err(|e| SpeechError::Engine(e.to_string()))?;
    let mut text = String::new();
    for seg in state.as_iter() {
        if let Ok(t) = seg.to_str_lossy() {
            text.push_str(&t);
        }
    }
    Ok(Transcript {
        text: collapse_repeats(&clean(&text)),
        engine: started.elapsed(),
    })
}

/// Whisper marks non-speech with bracketed tags ("[BLANK_AUDIO]", "(music)"): those are not words.
fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut depth = 0;
    for c in raw.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = (depth - 1).max(0),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_number(w: &str) -> bool {
    const DIGITS: &[&str] = &[
        "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        "double", "triple",
    ];
    w.chars().all(|c| c.is_ascii_digit()) || DIGITS.contains(&w)
}

/// A decoder stuck in a loop repeats a sentence ("It's time. It's time. It's time."), a phrase,
/// or starts the utterance over: the repeats are not words the caller said twice, and go.
fn collapse_repeats(text: &str) -> String {
    let key = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let mut words: Vec<&str> = text.split_whitespace().collect();
    // The decoder starting the utterance over after a sentence ("March 9th at 12. March 9th at
    // 15"): a sentence that opens with the utterance's first three words again goes.
    const OPENING: usize = 3;
    while words.len() >= 2 * OPENING {
        let restart = (OPENING..=words.len() - OPENING).find(|&i| {
            words[i - 1].ends_with(['.', '?', '!'])
                && (0..OPENING).all(|k| key(words[i + k]) == key(words[k]))
        });
        let Some(i) = restart else { break };
        let end = (i..words.len())
            .find(|&j| words[j].ends_with(['.', '?', '!']))
            .map_or(words.len(), |j| j + 1);
        words.drain(i..end);
    }
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    'words: while i < words.len() {
        // The longest phrase that the words from i repeat right after it.
        for n in (1..=(words.len() - i) / 2).rev() {
            let same = (0..n).all(|k| key(words[i + k]) == key(words[i + n + k]));
            // A single word said twice ("no, no") is speech, and so are digits ("five five
            // five"); a phrase repeated, or a word said three times in a row, is a loop.
            let loops =
                n > 1 || (i + 2 * n < words.len() && key(words[i]) == key(words[i + 2 * n]));
            let wordy = (0..n).any(|k| !is_number(&key(words[i + k])));
            if same && loops && wordy {
                i += n;
                continue 'words;
            }
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

#[async_trait]
impl SpeechToText for WhisperStt {
    fn name(&self) -> &str {
        &self.name
    }

    fn partial_ready(&self) -> bool {
        self.busy.load(Ordering::Relaxed) < self.workers
    }

    fn has_partials(&self) -> bool {
        true
    }

    fn load(&self) -> Option<(usize, usize)> {
        Some((self.busy.load(Ordering::Relaxed), self.capacity))
    }

    async fn transcribe(&self, pcm: Vec<i16>, cue: &Cue) -> Result<Transcript, SpeechError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            pcm,
            cue: cue.clone(),
            queued: Instant::now(),
            reply,
        };
        super::queue_job(&self.jobs, Some(&self.busy), job, rx, "the whisper worker").await
    }
}

/// How long an utterance may wait in the queue for a worker.
pub const QUEUE_DEADLINE: Duration = Duration::from_secs(4);

/// Upper bound on how long a caller waits for a recognition before the engine gives up on it.
pub const RECOGNITION_TIMEOUT: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::{clean, collapse_repeats};

    #[test]
    fn a_decoder_loop_is_collapsed_and_real_repeats_stay() {
        assert_eq!(
            collapse_repeats("It's time. It's time. It's time. It's time."),
            "It's time."
        );
        assert_eq!(
            collapse_repeats("In the menu, still 30 $. In the menu, still 30 $. Thanks"),
            "In the menu, still 30 $. Thanks"
        );
        assert_eq!(collapse_repeats("no no no no no"), "no no");
        assert_eq!(
            collapse_repeats("March 9th at 12, clean. March 9th at 15"),
            "March 9th at 12, clean."
        );
        assert_eq!(
            collapse_repeats("We are staying at 240 mains' trees. We are staying at 240 mains'"),
            "We are staying at 240 mains' trees."
        );
        assert_eq!(
            collapse_repeats("I want a table. I want to sit outside."),
            "I want a table. I want to sit outside.",
            "two words again are speech"
        );
        assert_eq!(
            collapse_repeats("No, no, that's wrong."),
            "No, no, that's wrong."
        );
        assert_eq!(
            collapse_repeats("five five five zero one"),
            "five five five zero one"
        );
        assert_eq!(collapse_repeats("55 55 55"), "55 55 55");
        assert_eq!(collapse_repeats("a table for two"), "a table for two");
        let long = "I want to book a table for 6 people on Friday evening.";
        assert_eq!(
            collapse_repeats(&format!("{long} {long} {long} I want")),
            format!("{long} I want")
        );
    }

    #[test]
    fn non_speech_tags_are_removed() {
        assert_eq!(clean(" [BLANK_AUDIO]"), "");
        assert_eq!(
            clean(" Table for four (coughs) at seven."),
            "Table for four at seven."
        );
    }
}
