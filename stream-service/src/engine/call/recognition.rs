//! The call's recogniser behind one trait, as the listening policy (`listen.rs`) drives it: audio
//! pushed frame by frame, the start and end of each utterance, and events out on one channel.
//! Three kinds: Deepgram's live stream, the local engine with partial decodes, and a batch
//! recogniser (OpenAI transcriptions) that hears whole utterances in the turn task.

use crate::audio::FRAME_BYTES;
use crate::audio::vad::Endpointer;
use crate::engine::Engine;
use crate::engine::tasks::CallTasks;
use crate::speech::deepgram::{DeepgramSession, ListenParams, SttEvent};
use crate::speech::endpoint::{PARTIAL_EVERY, PROBE_AFTER};
use crate::speech::{Cue, Recogniser, SpeechToText};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How an ended utterance's words will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coming {
    /// As an event (Deepgram's answer to `Finalize`, a local decode of all of it): wait for it.
    Event,
    /// Not from this recogniser: the turn recognises the utterance's audio.
    Batch,
}

/// What the endpointer knows of the utterance in progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct SpeechSoFar<'a> {
    pub in_speech: bool,
    /// Voiced time so far.
    pub voiced: Duration,
    /// Silence since the last voiced frame.
    pub silence: Duration,
    /// The utterance's audio so far (8 kHz PCM).
    pub audio: &'a [i16],
    /// Which utterance (counts up).
    pub utterance: u64,
}

impl<'a> SpeechSoFar<'a> {
    pub fn of(ep: &'a Endpointer, utterance: u64) -> Self {
        Self {
            in_speech: ep.in_speech(),
            voiced: ep.speech_so_far(),
            silence: ep.trailing_silence(),
            audio: ep.audio_so_far(),
            utterance,
        }
    }
}

/// A call's recogniser.
///
/// - Never blocks: work runs in tasks of its own (the call's, ended with it) and reports as
///   [`SttEvent`]s on the channel it was given.
/// - Not idempotent: each method is one step of the call's recognition, called in order.
pub(super) trait Recognition: Send + std::fmt::Debug {
    /// The recogniser's label on turn records and metrics.
    fn provider(&self) -> &'static str;
    /// Whether words come while the caller is still speaking (partials or interim results).
    fn words_while_speaking(&self) -> bool;
    /// One 20 ms frame of caller audio (μ-law), after the endpointer has seen it.
    fn push(&mut self, ulaw: &[u8], speech: SpeechSoFar<'_>);
    /// A new utterance began; `cue` is what the conversation expects of it.
    fn begin(&mut self, cue: &Cue);
    /// Our endpointer ended the utterance after `voiced` of speech.
    fn end(&mut self, voiced: Duration) -> Coming;
    /// Its own event, seen before the policy acts on it.
    fn observe(&mut self, _event: &SttEvent) {}
    /// The utterance's words were taken (or given up on): audio kept for it may go.
    fn done(&mut self) {}
    /// The call ended: work still running stops.
    fn stop(&mut self) {}
}

/// The configured recogniser for a call whose endpointer ends turns after `usual` silence.
pub(super) fn start(
    engine: &Engine,
    usual: Duration,
    tasks: &CallTasks,
    events: &mpsc::Sender<SttEvent>,
) -> Box<dyn Recognition> {
    match &engine.recogniser {
        Recogniser::Deepgram(settings) => {
            let params = ListenParams {
                endpointing: (usual / 2).clamp(Duration::from_millis(100), Duration::from_secs(1)),
                utterance_end: Duration::from_millis(1000),
            };
            let session = DeepgramSession::start_into(settings.clone(), params, events.clone());
            Box::new(Deepgram {
                session,
                buf: Vec::with_capacity(2 * FRAME_BYTES),
            })
        }
        Recogniser::OpenAi(_) => Box::new(Batch { provider: "openai" }),
        Recogniser::Local => local(engine, tasks, events),
    }
}

/// The local engine, with partial decodes where it has them (also where a cloud recogniser
/// failed for the rest of the call).
pub(super) fn local(
    engine: &Engine,
    tasks: &CallTasks,
    events: &mpsc::Sender<SttEvent>,
) -> Box<dyn Recognition> {
    Box::new(Local {
        stt: engine.stt.clone(),
        provider: engine.local_stt_name(),
        tasks: tasks.clone(),
        events: events.clone(),
        inflight: None,
        started: None,
        next_partial: PARTIAL_EVERY,
        decoding: None,
        cue: Cue::none(),
    })
}

/// Deepgram: audio streams as it arrives, 40 ms at a time.
#[derive(Debug)]
struct Deepgram {
    session: DeepgramSession,
    buf: Vec<u8>,
}

impl Recognition for Deepgram {
    fn words_while_speaking(&self) -> bool {
        true
    }

    fn provider(&self) -> &'static str {
        "deepgram"
    }

    fn push(&mut self, ulaw: &[u8], _: SpeechSoFar<'_>) {
        self.buf.extend_from_slice(ulaw);
        if self.buf.len() >= 2 * FRAME_BYTES {
            self.session.push(&self.buf);
            self.buf.clear();
        }
    }

    fn begin(&mut self, _cue: &Cue) {}

    fn end(&mut self, _voiced: Duration) -> Coming {
        self.session.finalize();
        Coming::Event
    }

    fn done(&mut self) {
        self.session.utterance_done();
    }
}

/// The local engine: the growing utterance is decoded again whenever a worker is free (at most
/// every PARTIAL_EVERY of speech, and once after PROBE_AFTER of silence); each decode comes
/// back as `Decoded`.
#[derive(Debug)]
struct Local {
    stt: Arc<dyn SpeechToText>,
    provider: &'static str,
    tasks: CallTasks,
    events: mpsc::Sender<SttEvent>,
    /// A decode is running, of this much voiced audio.
    inflight: Option<Duration>,
    /// The voiced time the last decode started on covered.
    started: Option<Duration>,
    next_partial: Duration,
    /// The decode running now (aborted when the call ends).
    decoding: Option<tokio::task::AbortHandle>,
    /// The utterance's cue, given to each of its decodes.
    cue: Cue,
}

impl Recognition for Local {
    fn words_while_speaking(&self) -> bool {
        self.stt.has_partials()
    }

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn push(&mut self, _: &[u8], s: SpeechSoFar<'_>) {
        if !s.in_speech || self.inflight.is_some() || !self.stt.partial_ready() {
            return;
        }
        let probe = s.silence >= PROBE_AFTER && self.started.is_none_or(|v| v < s.voiced);
        let periodic = s.silence.is_zero() && s.voiced >= self.next_partial;
        if !(probe || periodic) {
            return;
        }
        let voiced = s.voiced;
        self.inflight = Some(voiced);
        self.started = Some(voiced);
        self.next_partial = voiced + PARTIAL_EVERY;
        let audio = s.audio.to_vec();
        let (stt, tx, utterance) = (self.stt.clone(), self.events.clone(), s.utterance);
        let cue = self.cue.clone();
        // A call task: a decode still running when the call ends is aborted, its worker freed.
        self.decoding = self.tasks.spawn(async move {
            let text = stt
                .transcribe(audio, &cue)
                .await
                .map(|t| t.text)
                .unwrap_or_default();
            let _ = tx
                .send(SttEvent::Decoded {
                    utterance,
                    voiced,
                    text,
                })
                .await;
        });
    }

    fn begin(&mut self, cue: &Cue) {
        self.next_partial = PARTIAL_EVERY;
        self.started = None;
        self.cue = cue.clone();
    }

    fn end(&mut self, voiced: Duration) -> Coming {
        if self.inflight == Some(voiced) {
            Coming::Event
        } else {
            Coming::Batch
        }
    }

    fn observe(&mut self, event: &SttEvent) {
        if let SttEvent::Decoded { .. } = event {
            self.inflight = None;
            self.decoding = None;
        }
    }

    fn stop(&mut self) {
        if let Some(d) = self.decoding.take() {
            d.abort();
        }
    }
}

/// A recogniser of whole utterances (OpenAI transcriptions): nothing while the caller speaks;
/// the turn task sends the utterance (the local engine takes over if it fails).
#[derive(Debug)]
struct Batch {
    provider: &'static str,
}

impl Recognition for Batch {
    fn words_while_speaking(&self) -> bool {
        false
    }

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn push(&mut self, _: &[u8], _: SpeechSoFar<'_>) {}

    fn begin(&mut self, _cue: &Cue) {}

    fn end(&mut self, _voiced: Duration) -> Coming {
        Coming::Batch
    }
}
