//! End of turn, replayed: the caller's audio goes frame by frame through the call's endpointer
//! (`callbot_audio::vad`), decodes start where a call's local recogniser would start them (a
//! partial every 800 ms of speech, a probe after 160 ms of silence, one at a time) and land when
//! their measured decoding time has passed; the end-of-turn model (when given) judges the audio
//! where a call would ask it (the probe point) on its own worker; and each end-of-turn rule then
//! decides, frame by frame, when the turn ends. No I/O: the recogniser and the model are
//! functions given by the caller.

use callbot_stream::audio::vad::{Endpointer, FRAME_SAMPLES, VadConfig};
use callbot_stream::speech::endpoint::{self, Hint, PARTIAL_EVERY, PROBE_AFTER};
use std::time::Duration;

const FRAME: Duration = Duration::from_millis(20);

/// How a turn's end is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The bot's silence, whatever was said.
    Silence,
    /// The silence the words suggest (`speech::endpoint`): shorter after a finished sentence,
    /// longer after "and", a filler or a number being given.
    Heuristic,
    /// The end-of-turn model alone: its verdict at the probe point ends the turn at once, or
    /// waits the long silence.
    ModelOnly,
    /// The model with the words (`speech::endpoint::combine`): what `turn_detection: model`
    /// does.
    Model,
}

impl Rule {
    pub fn label(self) -> &'static str {
        match self {
            Rule::Silence => "silence",
            Rule::Heuristic => "heuristic",
            Rule::ModelOnly => "model-only",
            Rule::Model => "model",
        }
    }
}

/// What the endpointer knew after one frame.
#[derive(Debug, Clone, Copy)]
struct Frame {
    in_speech: bool,
    voiced: Duration,
    silence: Duration,
}

/// One decode of the utterance so far.
#[derive(Debug, Clone)]
pub struct Decode {
    /// The frame it started after, and when its words came (audio time).
    frame: usize,
    done: Duration,
    voiced: Duration,
    pub text: String,
    pub took: Duration,
}

/// One verdict of the end-of-turn model on the utterance so far.
#[derive(Debug, Clone, Copy)]
pub struct Judged {
    done: Duration,
    voiced: Duration,
    pub finished: bool,
    pub took: Duration,
}

/// An utterance replayed: what the endpointer saw and what the recogniser said, when.
#[derive(Debug)]
pub struct Track {
    frames: Vec<Frame>,
    pub decodes: Vec<Decode>,
    pub verdicts: Vec<Judged>,
    /// The utterance's audio as the endpointer kept it (pre-roll included).
    audio: Vec<i16>,
    /// The last voiced frame: a turn ended before it cut the caller off.
    last_voiced: Option<usize>,
}

fn at(frame: usize) -> Duration {
    FRAME * (frame as u32 + 1)
}

impl Track {
    /// Runs `pcm` (8 kHz) through the endpointer (never ending the turn), `recognise` where
    /// the local recogniser would run and `judge` (the turn model: finished?, time taken; `None`
    /// without one) where a call would ask it.
    pub fn replay(
        pcm: &[i16],
        mut recognise: impl FnMut(&[i16]) -> (String, Duration),
        mut judge: impl FnMut(&[i16]) -> Option<(bool, Duration)>,
    ) -> Self {
        let cfg = VadConfig {
            end_silence: Duration::from_secs(3600),
            ..VadConfig::default()
        };
        let mut ep = Endpointer::new(cfg);
        let mut frames = Vec::with_capacity(pcm.len() / FRAME_SAMPLES + 1);
        let mut decodes = Vec::new();
        let mut verdicts = Vec::new();
        let (mut next_partial, mut started, mut busy_until) = (PARTIAL_EVERY, None, Duration::ZERO);
        let (mut judged, mut judge_busy) = (None, Duration::ZERO);
        let mut buf = [0i16; FRAME_SAMPLES];
        for (f, chunk) in pcm.chunks(FRAME_SAMPLES).enumerate() {
            buf.fill(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            let _ = ep.push(&buf);
            let fr = Frame {
                in_speech: ep.in_speech(),
                voiced: ep.speech_so_far(),
                silence: ep.trailing_silence(),
            };
            frames.push(fr);
            if !fr.in_speech {
                continue;
            }
            let ask = fr.silence >= PROBE_AFTER && judged.is_none_or(|v| v < fr.voiced);
            if ask && at(f) >= judge_busy {
                judged = Some(fr.voiced);
                if let Some((finished, took)) = judge(ep.audio_so_far()) {
                    judge_busy = at(f) + took;
                    verdicts.push(Judged {
                        done: judge_busy,
                        voiced: fr.voiced,
                        finished,
                        took,
                    });
                }
            }
            if at(f) < busy_until {
                continue;
            }
            let probe = fr.silence >= PROBE_AFTER && started.is_none_or(|v| v < fr.voiced);
            let periodic = fr.silence.is_zero() && fr.voiced >= next_partial;
            if probe || periodic {
                let (text, took) = recognise(ep.audio_so_far());
                started = Some(fr.voiced);
                next_partial = fr.voiced + PARTIAL_EVERY;
                busy_until = at(f) + took;
                decodes.push(Decode {
                    frame: f,
                    done: busy_until,
                    voiced: fr.voiced,
                    text,
                    took,
                });
            }
        }
        let last_voiced = frames
            .iter()
            .rposition(|f| f.in_speech && f.silence.is_zero());
        Self {
            frames,
            decodes,
            verdicts,
            audio: ep.audio_so_far().to_vec(),
            last_voiced,
        }
    }

    /// The decode of the whole utterance (after its last word), if one ran.
    pub fn final_decode(&self) -> Option<&Decode> {
        let last = self.last_voiced?;
        let voiced = self.frames[last].voiced;
        self.decodes
            .iter()
            .rev()
            .find(|d| d.frame > last && d.voiced == voiced)
    }

    /// The utterance's audio (for a decode of all of it when none ran).
    pub fn audio(&self) -> &[i16] {
        &self.audio
    }

    /// From the utterance's start (pre-roll included) to its last word.
    pub fn speech(&self) -> Duration {
        let Some(last) = self.last_voiced else {
            return Duration::ZERO;
        };
        let gap = self.frames[last..]
            .iter()
            .take_while(|f| f.in_speech)
            .count();
        let samples = self
            .audio
            .len()
            .saturating_sub(gap.saturating_sub(1) * FRAME_SAMPLES);
        Duration::from_millis(samples as u64 / 8)
    }

    /// The model's verdicts split by what was true: on the whole utterance (after its last word;
    /// right if "finished") and at pauses inside it (right if "not finished").
    pub fn verdicts_split(&self) -> (Vec<bool>, Vec<bool>) {
        let Some(last) = self.last_voiced else {
            return (Vec::new(), Vec::new());
        };
        let all = self.frames[last].voiced;
        self.verdicts
            .iter()
            .map(|v| (v.voiced == all, v.finished))
            .fold(
                (Vec::new(), Vec::new()),
                |(mut end, mut mid), (at_end, f)| {
                    if at_end {
                        end.push(f);
                    } else {
                        mid.push(f);
                    }
                    (end, mid)
                },
            )
    }

    /// Whether the endpointer heard speech at all.
    pub fn heard_speech(&self) -> bool {
        self.last_voiced.is_some()
    }

    /// When `rule` ends the turn, for a bot whose usual silence is `usual`. `decode_all` is the
    /// time a decode of the whole utterance takes, for a turn that ends with none running.
    pub fn decide(&self, rule: Rule, usual: Duration, decode_all: Duration) -> Option<Ended> {
        let mut hint = None;
        let mut landed = 0;
        let mut by_done: Vec<&Decode> = self.decodes.iter().collect();
        by_done.sort_by_key(|d| d.done);
        for (f, fr) in self.frames.iter().enumerate() {
            while let Some(d) = by_done.get(landed).filter(|d| d.done <= at(f)) {
                landed += 1;
                if fr.in_speech && !d.text.is_empty() {
                    hint = Some(endpoint::hint(&d.text));
                }
            }
            if !fr.in_speech {
                continue;
            }
            // The model's verdict on exactly this much speech, once it has come.
            let verdict = self
                .verdicts
                .iter()
                .rev()
                .find(|v| v.done <= at(f) && v.voiced == fr.voiced)
                .map(|v| v.finished);
            let end_silence = match rule {
                Rule::Silence => usual,
                Rule::Heuristic => endpoint::silence_for(hint.unwrap_or(Hint::Unsure), usual),
                Rule::ModelOnly => match verdict {
                    Some(true) => Duration::ZERO,
                    _ => endpoint::silence_for(Hint::MoreToCome, usual),
                },
                Rule::Model => endpoint::combine(hint.unwrap_or(Hint::Unsure), verdict, usual),
            };
            if fr.silence.is_zero() || fr.silence < end_silence {
                continue;
            }
            // The words: a decode of all of it (finished, or still running), else one now.
            let covering = self
                .decodes
                .iter()
                .rev()
                .find(|d| d.frame <= f && d.voiced == fr.voiced);
            let words_at = match covering {
                Some(d) => d.done.max(at(f)),
                None => at(f) + decode_all,
            };
            return Some(Ended {
                cut_off: self.last_voiced.is_some_and(|l| f < l),
                wait: words_at.saturating_sub(at(f) - fr.silence),
                hint: covering.map(|d| endpoint::hint(&d.text)),
            });
        }
        None
    }
}

/// How a turn ended under one rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ended {
    /// The caller had not finished: they spoke again after the turn ended.
    pub cut_off: bool,
    /// From their last word to the turn ending with its words known.
    pub wait: Duration,
    /// What the words suggested, when a decode covered them.
    pub hint: Option<Hint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8 kHz: `ms` of a loud tone (speech to the endpointer) or of near-silence.
    fn tone(ms: usize) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect()
    }
    fn quiet(ms: usize) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| if i % 2 == 0 { 3 } else { -3 })
            .collect()
    }

    fn audio(parts: &[(bool, usize)]) -> Vec<i16> {
        parts
            .iter()
            .flat_map(|&(loud, ms)| if loud { tone(ms) } else { quiet(ms) })
            .collect()
    }

    #[test]
    fn a_pause_longer_than_the_silence_cuts_the_caller_off_and_the_words_can_prevent_it() {
        // "My number is five five five" ... 900 ms ... "zero one".
        let pcm = audio(&[
            (false, 400),
            (true, 1200),
            (false, 900),
            (true, 600),
            (false, 2000),
        ]);
        let track = Track::replay(
            &pcm,
            |a| {
                let text = if a.len() < 8 * 1900 {
                    "My number is 555"
                } else {
                    "My number is 555 01."
                };
                (text.to_owned(), Duration::from_millis(100))
            },
            // A model that hears every pause as the end.
            |_| Some((true, Duration::from_millis(30))),
        );
        let usual = Duration::from_millis(700);
        let silence = track.decide(Rule::Silence, usual, Duration::ZERO).unwrap();
        assert!(silence.cut_off, "{silence:?}");
        let heuristic = track
            .decide(Rule::Heuristic, usual, Duration::ZERO)
            .unwrap();
        assert!(!heuristic.cut_off, "{heuristic:?}");
        let model = track
            .decide(Rule::ModelOnly, usual, Duration::ZERO)
            .unwrap();
        assert!(
            model.cut_off,
            "the model alone ends at the pause: {model:?}"
        );
        let both = track.decide(Rule::Model, usual, Duration::ZERO).unwrap();
        assert!(!both.cut_off, "a number being given outweighs it: {both:?}");
        assert_eq!(track.final_decode().unwrap().text, "My number is 555 01.");
    }

    #[test]
    fn a_partial_still_running_delays_the_probe() {
        // 1 s of speech: a partial starts at 800 ms of it and holds the only worker.
        let pcm = audio(&[(false, 400), (true, 1000), (false, 3000)]);
        let slow = Duration::from_millis(900);
        let track = Track::replay(&pcm, |_| ("A table for two.".to_owned(), slow), |_| None);
        assert_eq!(track.decodes.len(), 2, "a partial, then the probe");
        let e = track
            .decide(Rule::Silence, Duration::from_millis(700), Duration::ZERO)
            .unwrap();
        assert!(
            e.wait > PROBE_AFTER + slow + Duration::from_millis(300),
            "{e:?}"
        );
    }

    #[test]
    fn the_wait_counts_from_the_last_word_to_the_words_known() {
        // Shorter than a partial's period: only the probe runs.
        let pcm = audio(&[(false, 400), (true, 700), (false, 2000)]);
        let slow = Duration::from_millis(900);
        let track = Track::replay(&pcm, |_| ("A table for two.".to_owned(), slow), |_| None);
        let usual = Duration::from_millis(700);
        // The probe starts 160 ms after the last word and takes 900 ms: the words come last.
        let e = track.decide(Rule::Silence, usual, Duration::ZERO).unwrap();
        assert!(!e.cut_off);
        let expected = PROBE_AFTER + slow;
        assert!(
            e.wait.abs_diff(expected) <= FRAME * 2,
            "{:?} vs {expected:?}",
            e.wait
        );
        // A finished sentence shortens the silence, but the words still take as long.
        let h = track
            .decide(Rule::Heuristic, usual, Duration::ZERO)
            .unwrap();
        assert_eq!(h.hint, Some(Hint::Complete));
        assert!(h.wait.abs_diff(expected) <= FRAME * 2, "{:?}", h.wait);
        // With a fast recogniser the heuristic ends a finished sentence sooner.
        let fast = Track::replay(
            &pcm,
            |_| ("A table for two.".to_owned(), Duration::from_millis(40)),
            |_| None,
        );
        let s = fast.decide(Rule::Silence, usual, Duration::ZERO).unwrap();
        let h = fast.decide(Rule::Heuristic, usual, Duration::ZERO).unwrap();
        assert!(
            h.wait + Duration::from_millis(300) <= s.wait,
            "{h:?} vs {s:?}"
        );
    }

    #[test]
    fn the_models_verdict_ends_an_unsure_turn_early_or_holds_a_pause() {
        // "Yes" (the words say nothing either way), then silence.
        let pcm = audio(&[(false, 400), (true, 500), (false, 3000)]);
        let fast = Duration::from_millis(40);
        let usual = Duration::from_millis(700);
        let yes = |finished: bool| {
            Track::replay(
                &pcm,
                |_| ("Yes".to_owned(), fast),
                |_| Some((finished, Duration::from_millis(20))),
            )
        };
        let done = yes(true);
        let s = done.decide(Rule::Silence, usual, Duration::ZERO).unwrap();
        let m = done.decide(Rule::Model, usual, Duration::ZERO).unwrap();
        assert!(
            m.wait + Duration::from_millis(400) <= s.wait,
            "{m:?} vs {s:?}"
        );
        let held = yes(false);
        let m = held.decide(Rule::Model, usual, Duration::ZERO).unwrap();
        assert!(
            m.wait >= usual * 2 - FRAME,
            "not finished: the long silence: {m:?}"
        );
        assert_eq!(held.verdicts.len(), 1, "judged once per stretch of speech");
    }
}
