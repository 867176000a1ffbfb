//! Hearing the caller: one policy over the call's recogniser (`recognition.rs`), whichever it is.
//! Interim words become `asrDelta` events; settled words add up to the turn's words; a
//! recogniser that hears the utterance end (`speech_final`, `UtteranceEnd`) may end the turn
//! before our own endpointer would; a decode that covers the whole utterance is its final, and
//! its words set the silence that ends the turn (a finished sentence ends it sooner, a trailing
//! "and" waits). When our endpointer ends the turn first, the words come now, later (wait for
//! them, up to the recogniser's deadline), or from the turn recognising the audio. A recogniser
//! lost mid-call hands over to the local engine. With `turn_detection: model` the end-of-turn
//! model judges the sound at the probe point, and its verdict joins the words' rules
//! (`speech::endpoint::combine`).

use super::recognition::{self, Coming, Recognition, SpeechSoFar};
use super::{Actor, CALLER};
use crate::engine::Engine;
use crate::engine::events::{CallEvent, now_ms};
use crate::engine::turn::{Heard, TurnKind};
use crate::speech::endpoint::{Hint, PROBE_AFTER};
use crate::speech::{SttEvent, endpoint};
use callbot_core::domain::TurnDetection;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::mpsc;

/// An utterance our endpointer ended, waiting for its final words: the streaming recogniser's,
/// or a local decode already running on all of it.
pub(super) struct Waiting {
    audio: Vec<i16>,
    dtmf: String,
    t0: Instant,
    endpoint: Duration,
    /// The utterance and the voiced time it ended with.
    ended: (u64, Duration),
}

/// The listening policy's state: the recogniser, the words settled so far, the utterance
/// waiting for its words, and the end-of-turn silence the words may change.
pub(super) struct Listen {
    rec: Box<dyn Recognition>,
    /// Where every recogniser of the call reports (kept for the local fallback).
    events: mpsc::Sender<SttEvent>,
    /// Settled words of the utterance in progress (streaming finals).
    finals: String,
    /// The recogniser said the utterance ended, and no words came since.
    rec_ended: bool,
    waiting: Option<Waiting>,
    /// Partial transcripts of the utterance in progress.
    partials: u32,
    /// Counts utterances, so a late decode of an old one is ignored.
    utterance: u64,
    /// A decode that covered the utterance up to `voiced`: its final if nothing was said since.
    probe: Option<(Duration, String)>,
    /// The bot's usual end-of-turn silence, and how the turn's end is decided (the model only
    /// where the engine has one).
    usual: Duration,
    detection: TurnDetection,
    /// What the latest words of the utterance suggest.
    hint: Hint,
    /// The model's verdict on the utterance up to that much speech; one verdict in flight at a
    /// time, and the speech it was last asked about.
    verdict: Option<(Duration, bool)>,
    judging: bool,
    judged: Option<Duration>,
    /// How the caller interrupts the bot (`interrupt.rs`).
    pub(super) interrupt: super::interrupt::Interrupt,
    /// The bot asked for the turn model and the engine has none: said once, when the caller
    /// first speaks (observers are there by then).
    model_missing: bool,
}

impl Listen {
    /// Starts the call's recognition; the receiver delivers every recogniser's events (and the
    /// turn model's verdicts). A bot that asks for the model where the engine has none ends
    /// turns by the heuristic, and the call says so in an `error` event.
    pub fn start(engine: &Engine, plan: &super::setup::Plan) -> (Self, mpsc::Receiver<SttEvent>) {
        let (events, rx) = mpsc::channel(64);
        let mut detection = plan.turn_detection;
        let model_missing = detection == TurnDetection::Model && engine.turn_model.is_none();
        if model_missing {
            detection = TurnDetection::Heuristic;
            tracing::warn!(call_sid = %plan.info.call_sid, "turn_detection model without an end-of-turn model: using the heuristic");
        }
        let listen = Self {
            rec: recognition::start(engine, plan.end_silence, &plan.info.tasks, &events),
            events,
            finals: String::new(),
            rec_ended: false,
            waiting: None,
            partials: 0,
            utterance: 0,
            probe: None,
            usual: plan.end_silence,
            detection,
            hint: Hint::Unsure,
            verdict: None,
            judging: false,
            judged: None,
            interrupt: super::interrupt::Interrupt::new(
                plan.barge_in,
                plan.interrupt_on_backchannel,
            ),
            model_missing,
        };
        (listen, rx)
    }

    /// Whether the call's recogniser gives words while the caller speaks.
    pub(super) fn words_while_speaking(&self) -> bool {
        self.rec.words_while_speaking()
    }

    /// The end-of-turn silence for what is known of speech `voiced` long.
    fn end_silence(&self, voiced: Duration) -> Duration {
        match self.detection {
            TurnDetection::Silence => self.usual,
            TurnDetection::Heuristic => endpoint::silence_for(self.hint, self.usual),
            TurnDetection::Model => {
                let verdict = self.verdict.filter(|(v, _)| *v == voiced).map(|(_, f)| f);
                endpoint::combine(self.hint, verdict, self.usual)
            }
        }
    }
}

impl Actor {
    /// One 20 ms frame of caller audio (μ-law), after the endpointer has seen it.
    pub(super) fn listen_frame(&mut self, ulaw: &[u8]) {
        let speech = SpeechSoFar::of(&self.ep, self.listen.utterance);
        self.listen.rec.push(ulaw, speech);
        self.judge_turn();
    }

    /// At the probe point (the caller quiet a moment), asks the turn model about the utterance
    /// so far, once per stretch of speech and one question at a time.
    fn judge_turn(&mut self) {
        let l = &mut self.listen;
        if l.detection != TurnDetection::Model
            || l.judging
            || !self.ep.in_speech()
            || self.ep.trailing_silence() < PROBE_AFTER
        {
            return;
        }
        let voiced = self.ep.speech_so_far();
        let Some(model) = self.engine.turn_model.clone() else {
            return;
        };
        if l.judged == Some(voiced) {
            return;
        }
        l.judging = true;
        l.judged = Some(voiced);
        let audio = self.ep.audio_so_far().to_vec();
        let (tx, utterance) = (l.events.clone(), l.utterance);
        // A call task: a verdict still being reached when the call ends is dropped.
        let _ = self.info.tasks.spawn(async move {
            // No verdict (the model busy or failing): the words' rules alone decide.
            let finished = match model.judge(audio).await {
                Ok(v) => Some(v.finished()),
                Err(e) => {
                    tracing::debug!(error = %e, "no end-of-turn verdict");
                    None
                }
            };
            let _ = tx
                .send(SttEvent::Judged {
                    utterance,
                    voiced,
                    finished,
                })
                .await;
        });
    }

    /// The model's verdict came back.
    fn on_judged(&mut self, utterance: u64, voiced: Duration, finished: Option<bool>) {
        self.listen.judging = false;
        let Some(finished) = finished else { return };
        let current = utterance == self.listen.utterance
            && self.ep.in_speech()
            && voiced == self.ep.speech_so_far();
        if !current {
            return;
        }
        self.listen.verdict = Some((voiced, finished));
        let silence = self.listen.end_silence(voiced);
        self.ep.set_end_silence(silence);
        if self.ep.trailing_silence() >= silence {
            let ended = self.ep.flush();
            self.vad_event(ended);
        }
    }

    /// The endpointer confirmed speech: a new utterance.
    pub(super) fn listen_started(&mut self) {
        let l = &mut self.listen;
        l.utterance += 1;
        l.rec.begin(&self.info.cue(self.conv.history()));
        l.probe = None;
        l.hint = Hint::Unsure;
        l.verdict = None;
        l.judged = None;
        l.interrupt.begin();
        if std::mem::take(&mut l.model_missing) {
            self.events.emit(CallEvent::Error {
                track_id: CALLER.into(),
                timestamp: now_ms(),
                sender: "turn_detection".into(),
                error: "the bot asks for the end-of-turn model, which this service has not loaded (`callbot models install`; CALLBOT_TURN_MODEL): turns end by the heuristic".into(),
                code: None,
            });
        }
        let usual = self.listen.usual;
        self.ep.set_end_silence(usual);
    }

    /// A decode of the utterance so far came back (`voiced`: the speech it covered).
    fn on_decoded(&mut self, utterance: u64, voiced: Duration, text: String) {
        // The turn ended while this decode of all of it ran: it is the final text.
        let covers_waiting = self
            .listen
            .waiting
            .as_ref()
            .is_some_and(|w| w.ended == (utterance, voiced));
        if covers_waiting && let Some(w) = self.listen.waiting.take() {
            let partials = std::mem::take(&mut self.listen.partials);
            let heard = (!text.is_empty()).then(|| Heard {
                text,
                provider: self.listen.rec.provider(),
                after: w.t0.elapsed(),
            });
            let audio = heard.is_none().then_some(w.audio);
            return self.queue_caller(audio, w.dtmf, heard, partials, w.t0, w.endpoint);
        }
        if utterance != self.listen.utterance || text.is_empty() || !self.ep.in_speech() {
            return;
        }
        self.listen.partials += 1;
        self.events.emit(CallEvent::AsrDelta {
            track_id: CALLER.into(),
            timestamp: now_ms(),
            index: self.conv.next_number(),
            text: text.clone(),
        });
        self.listen.hint = endpoint::hint(&text);
        self.listen.interrupt.heard(&text);
        let silence = self.listen.end_silence(self.ep.speech_so_far());
        self.ep.set_end_silence(silence);
        if voiced == self.ep.speech_so_far() {
            // Nothing said since the decode started: it is the utterance's final text.
            self.preempt(&text);
            self.listen.probe = Some((voiced, text));
            if self.ep.trailing_silence() >= silence {
                let ended = self.ep.flush();
                self.vad_event(ended);
            }
        }
    }

    /// Our endpointer ended the caller's turn.
    pub(super) fn listen_ended(
        &mut self,
        audio: Vec<i16>,
        voiced: Duration,
        t0: Instant,
        endpoint: Duration,
    ) {
        // The caller spoke again before the last utterance's words came: that one goes on now.
        self.release_waiting();
        let dtmf = self.conv.take_keys();
        let partials = std::mem::take(&mut self.listen.partials);
        // The words are known now (the recogniser heard the end; a decode covered all of it),
        // come from a final still on its way (wait), or from the turn recognising the audio.
        let l = &mut self.listen;
        let heard = if l.rec_ended {
            Some(self.take_finals(Duration::ZERO))
        } else if let Some((_, text)) = l.probe.take().filter(|(v, _)| *v == voiced) {
            let provider = l.rec.provider();
            Some(Heard {
                text,
                provider,
                after: Duration::ZERO,
            })
        } else if l.rec.end(voiced) == Coming::Event {
            l.partials = partials;
            l.waiting = Some(Waiting {
                audio,
                dtmf,
                t0,
                endpoint,
                ended: (l.utterance, voiced),
            });
            return;
        } else {
            None
        };
        self.queue_caller(Some(audio), dtmf, heard, partials, t0, endpoint);
    }

    fn take_finals(&mut self, after: Duration) -> Heard {
        let l = &mut self.listen;
        l.rec_ended = false;
        l.rec.done();
        Heard {
            text: std::mem::take(&mut l.finals),
            provider: l.rec.provider(),
            after,
        }
    }

    pub(super) fn queue_caller(
        &mut self,
        audio: Option<Vec<i16>>,
        dtmf: String,
        heard: Option<Heard>,
        partials: u32,
        t0: Instant,
        endpoint: Duration,
    ) {
        if dtmf.is_empty()
            && let Some(h) = heard.as_ref().filter(|h| self.is_acknowledgement(&h.text))
        {
            return self.acknowledged(&h.text);
        }
        let kind = TurnKind::Caller {
            audio,
            dtmf,
            heard,
            partials,
        };
        self.conv.caller_turn(kind, t0, endpoint, Instant::now());
        self.start_next();
    }

    /// An event of the streaming recogniser.
    pub(super) fn on_stt(&mut self, ev: SttEvent) {
        self.listen.rec.observe(&ev);
        match ev {
            SttEvent::Decoded {
                utterance,
                voiced,
                text,
            } => self.on_decoded(utterance, voiced, text),
            SttEvent::Partial { text } => {
                self.listen.rec_ended = false;
                self.listen.partials += 1;
                let shown = join(&self.listen.finals, &text);
                self.listen.interrupt.heard(&shown);
                self.events.emit(CallEvent::AsrDelta {
                    track_id: CALLER.into(),
                    timestamp: now_ms(),
                    index: self.conv.next_number(),
                    text: shown,
                });
            }
            SttEvent::Final { text, end } => {
                if !text.is_empty() {
                    self.listen.rec_ended = false;
                    self.listen.finals = join(&self.listen.finals, &text);
                    self.listen.interrupt.heard(&self.listen.finals);
                    self.events.emit(CallEvent::AsrDelta {
                        track_id: CALLER.into(),
                        timestamp: now_ms(),
                        index: self.conv.next_number(),
                        text: self.listen.finals.clone(),
                    });
                }
                if end {
                    self.recogniser_ended();
                }
            }
            SttEvent::UtteranceEnd => {
                if !self.listen.finals.is_empty() || self.listen.waiting.is_some() {
                    self.recogniser_ended();
                }
            }
            SttEvent::Judged {
                utterance,
                voiced,
                finished,
            } => self.on_judged(utterance, voiced, finished),
            SttEvent::Restarted => {
                // The unfinished utterance is being recognised again from its start.
                self.listen.finals.clear();
                self.listen.rec_ended = false;
            }
            SttEvent::Failed { error } => {
                tracing::warn!(call_sid = %self.sid, %error, "streaming recognition lost; recognising locally for the rest of the call");
                self.events.emit(CallEvent::Error {
                    track_id: CALLER.into(),
                    timestamp: now_ms(),
                    sender: "asr".into(),
                    error: format!(
                        "{}: {error}; the local recogniser takes over",
                        self.listen.rec.provider()
                    ),
                    code: None,
                });
                self.listen.rec =
                    recognition::local(&self.engine, &self.info.tasks, &self.listen.events);
                self.listen.finals.clear();
                if let Some(w) = self.listen.waiting.take() {
                    let partials = std::mem::take(&mut self.listen.partials);
                    self.queue_caller(Some(w.audio), w.dtmf, None, partials, w.t0, w.endpoint);
                }
            }
        }
    }

    /// The streaming recogniser heard the end of an utterance.
    fn recogniser_ended(&mut self) {
        if let Some(w) = self.listen.waiting.take() {
            let partials = std::mem::take(&mut self.listen.partials);
            let heard = self.take_finals(w.t0.elapsed());
            return self.queue_caller(
                Some(w.audio),
                w.dtmf,
                Some(heard),
                partials,
                w.t0,
                w.endpoint,
            );
        }
        self.listen.rec_ended = true;
        if self.ep.in_speech() {
            // The caller is quiet and the recogniser agrees the sentence is over: end now,
            // rather than wait out our own silence.
            if self.ep.trailing_silence() >= Duration::from_millis(100) {
                let ended = self.ep.flush();
                self.vad_event(ended);
            }
        } else if !self.listen.finals.is_empty() {
            // Words our endpointer took for noise (a short "yes"): still a turn.
            let partials = std::mem::take(&mut self.listen.partials);
            let heard = self.take_finals(Duration::ZERO);
            let dtmf = self.conv.take_keys();
            self.queue_caller(
                None,
                dtmf,
                Some(heard),
                partials,
                Instant::now(),
                Duration::ZERO,
            );
        }
    }

    /// The streaming recogniser missed its deadline: the words it settled, or the local engine.
    pub(super) fn listen_timers(&mut self) {
        let late = self
            .listen
            .waiting
            .as_ref()
            .is_some_and(|w| w.t0.elapsed() >= self.engine.stt_timeout);
        if late {
            tracing::warn!(call_sid = %self.sid, "no final transcript in time; using what is settled or recognising locally");
            self.release_waiting();
        }
    }

    /// At the end of the call: an utterance still waiting for its words keeps them.
    /// The call ended: the utterance waiting for its words becomes a turn, a partial decode
    /// still running is stopped (its recogniser is freed for other calls).
    pub(super) fn listen_flush(&mut self) {
        self.listen.rec.stop();
        self.release_waiting();
    }

    /// Starts the waiting utterance's turn without waiting any longer: with the words the
    /// streaming recogniser settled, or with its audio for the local recogniser.
    fn release_waiting(&mut self) {
        let Some(w) = self.listen.waiting.take() else {
            return;
        };
        let partials = std::mem::take(&mut self.listen.partials);
        let heard = (!self.listen.finals.is_empty()).then(|| self.take_finals(w.t0.elapsed()));
        if heard.is_none() {
            self.listen.rec.done();
        }
        let audio = heard.is_none().then_some(w.audio);
        self.queue_caller(audio, w.dtmf, heard, partials, w.t0, w.endpoint);
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a} {b}"),
    }
}
