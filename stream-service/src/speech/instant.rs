//! Instant stand-in engines for benchmarks and tests that measure the platform, not the speech
//! engines: the recogniser reports the utterance's length, the synthesiser returns a tone of a
//! length proportional to the text. Both answer at once and never block.

use super::{Cue, Speech, SpeechError, SpeechToText, TextToSpeech, Transcript};
use crate::audio::g711;
use async_trait::async_trait;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct InstantStt;

#[async_trait]
impl SpeechToText for InstantStt {
    fn name(&self) -> &str {
        "instant"
    }
    async fn transcribe(&self, pcm: Vec<i16>, _cue: &Cue) -> Result<Transcript, SpeechError> {
        Ok(Transcript {
            text: format!("utterance of {} ms", pcm.len() / 8),
            engine: Duration::ZERO,
        })
    }
}

/// The instant recogniser with a capacity: `workers` utterances at a time, each taking `decode`;
/// the rest wait in a queue of [`QUEUE`] places for at most the whisper pool's deadline, then are
/// refused (`Busy`) — what a saturated recogniser does, without its CPU cost.
#[derive(Debug)]
pub struct LoadedStt {
    slots: tokio::sync::Semaphore,
    workers: usize,
    decode: Duration,
    /// Utterances decoding or queued.
    in_flight: std::sync::atomic::AtomicUsize,
}

/// Queue places beyond the workers (as the whisper pool's default).
pub const QUEUE: usize = 8;

impl LoadedStt {
    pub fn new(workers: usize, decode: Duration) -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(workers.max(1)),
            workers: workers.max(1),
            decode,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl SpeechToText for LoadedStt {
    fn name(&self) -> &str {
        "instant (loaded)"
    }
    /// Safe to cancel: a dropped call gives its place back.
    async fn transcribe(&self, pcm: Vec<i16>, _cue: &Cue) -> Result<Transcript, SpeechError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Place<'a>(&'a AtomicUsize);
        impl Drop for Place<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let taken = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _place = Place(&self.in_flight);
        if taken >= self.workers + QUEUE {
            return Err(SpeechError::Busy);
        }
        let _slot = tokio::time::timeout(super::whisper::QUEUE_DEADLINE, self.slots.acquire())
            .await
            .map_err(|_| SpeechError::Busy)?
            .map_err(|_| SpeechError::Busy)?;
        tokio::time::sleep(self.decode).await;
        Ok(Transcript {
            text: format!("utterance of {} ms", pcm.len() / 8),
            engine: self.decode,
        })
    }
    fn load(&self) -> Option<(usize, usize)> {
        Some((
            self.in_flight.load(std::sync::atomic::Ordering::Relaxed),
            self.workers + QUEUE,
        ))
    }
}

#[derive(Debug, Clone)]
pub struct InstantTts {
    /// Audio per character of text.
    pub per_char: Duration,
}

impl Default for InstantTts {
    fn default() -> Self {
        Self {
            per_char: Duration::from_millis(60),
        }
    }
}

#[async_trait]
impl TextToSpeech for InstantTts {
    fn name(&self) -> &'static str {
        "instant"
    }
    async fn synthesize(&self, text: &str, _voice: &str) -> Result<Speech, SpeechError> {
        let samples = (self.per_char.as_micros() as usize * text.chars().count() * 8) / 1000;
        let ulaw = tone_cycle().iter().copied().cycle().take(samples).collect();
        Ok(Speech {
            ulaw,
            engine: Duration::ZERO,
        })
    }
}

/// One period of the instant voice's 300 Hz tone at 8 kHz (three cycles fill 80 samples
/// exactly), computed once: the voice repeats it instead of calling `sin` per sample.
fn tone_cycle() -> &'static [u8; 80] {
    static CYCLE: std::sync::OnceLock<[u8; 80]> = std::sync::OnceLock::new();
    CYCLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let t = i as f32 / 8000.0;
            g711::encode_sample(((2.0 * std::f32::consts::PI * 300.0 * t).sin() * 8000.0) as i16)
        })
    })
}

/// A vowel-like sound (two harmonics at 180 and 720 Hz) as 8 kHz μ-law: the endpointer takes it
/// for speech, the instant recogniser measures its length. Used by benchmarks and tests.
pub fn voiced_tone(ms: u64) -> Vec<u8> {
    (0..(ms * 8) as usize)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let v = (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                + 0.5 * (2.0 * std::f32::consts::PI * 720.0 * t).sin();
            g711::encode_sample((v * 9000.0) as i16)
        })
        .collect()
}

#[cfg(test)]
mod loaded_tests {
    use super::*;

    #[tokio::test]
    async fn the_instant_voice_is_a_300_hz_tone_as_long_as_its_text() {
        let speech = InstantTts::default()
            .synthesize("hello", "en")
            .await
            .unwrap();
        // 60 ms a character at 8 kHz.
        assert_eq!(speech.ulaw.len(), 5 * 60 * 8);
        for (i, &b) in speech.ulaw.iter().enumerate() {
            let t = i as f64 / 8000.0;
            let want = (2.0 * std::f64::consts::PI * 300.0 * t).sin() * 8000.0;
            let got = f64::from(g711::decode_sample(b));
            // μ-law steps are at most 256 at this level.
            assert!((got - want).abs() <= 300.0, "sample {i}: {got} vs {want}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_loaded_recogniser_queues_then_refuses() {
        let stt = std::sync::Arc::new(LoadedStt::new(1, Duration::from_secs(1)));
        let mut jobs = Vec::new();
        for _ in 0..(1 + QUEUE + 1) {
            let stt = stt.clone();
            jobs.push(tokio::spawn(async move {
                stt.transcribe(vec![0; 800], &Cue::none()).await
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(SpeechToText::load(&*stt), Some((1 + QUEUE, 1 + QUEUE)));
        let mut ok = 0;
        let mut busy = 0;
        for j in jobs {
            match j.await.unwrap() {
                Ok(t) => {
                    ok += 1;
                    assert_eq!(t.text, "utterance of 100 ms");
                }
                Err(SpeechError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        // One at a time for a second each: the first few within the 4 s deadline, the rest
        // (and the one beyond the queue) refused.
        assert_eq!(ok + busy, 1 + QUEUE + 1);
        assert!((4..=5).contains(&ok), "{ok}");
        assert_eq!(SpeechToText::load(&*stt), Some((0, 1 + QUEUE)));
    }
}
