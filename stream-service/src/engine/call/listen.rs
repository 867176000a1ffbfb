//! Hearing the caller: what turns an utterance into words, and when a turn ends. With Deepgram
//! the caller's audio streams to it as it arrives; its interim results become `asrDelta` events,
//! its finals the turn's words, and its `speech_final`/`UtteranceEnd` may end the turn before our
//! own endpointer would. Locally, the growing utterance is decoded again whenever a worker is
//! free (partials), and the words so far set the silence that ends the turn (a finished sentence
//! ends it sooner, a trailing "and" waits); a decode that covers the whole utterance is its final.

use super::Actor;
use super::CALLER;
use crate::audio::FRAME_BYTES;
use crate::engine::Engine;
use crate::engine::events::CallEvent;
use crate::engine::events::now_ms;
use crate::engine::turn::Heard;
use crate::engine::turn::TurnKind;
use crate::speech::deepgram::{DeepgramSession, ListenParams, SttEvent};
use crate::speech::endpoint;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::mpsc;

/// A partial decode of the local recogniser, back from its worker.
#[derive(Debug)]
pub(super) struct PartialDone {
    utterance: u64,
    /// Voiced time the decoded audio held (if the caller has not spoken since, it is all of it).
    voiced: Duration,
    text: String,
}

/// An utterance our endpointer ended, waiting for its final words: the streaming recogniser's,
/// or a local decode already running on all of it.
pub(super) struct Waiting {
    audio: Vec<i16>,
    dtmf: String,
    t0: Instant,
    endpoint: Duration,
    /// Local: the utterance and voiced time the running decode covers.
    decode: Option<(u64, Duration)>,
}

/// Partials at most this often while the caller speaks (when a worker is free).
const PARTIAL_EVERY: Duration = Duration::from_millis(800);
/// Trailing silence after which the utterance is decoded to see whether it is finished.
const PROBE_AFTER: Duration = Duration::from_millis(160);

pub(super) struct Listen {
    dg: Option<DeepgramSession>,
    /// Caller audio gathered for the next send (40 ms at a time).
    dg_buf: Vec<u8>,
    /// Settled words of the utterance in progress (streaming finals).
    finals: String,
    /// The streaming recogniser said the utterance ended, and no words came since.
    rec_ended: bool,
    waiting: Option<Waiting>,
    /// Partial transcripts of the utterance in progress.
    partials: u32,
    /// Counts utterances, so a late partial of an old one is ignored.
    utterance: u64,
    /// A local decode is running, of this much voiced audio.
    inflight: Option<Duration>,
    next_partial: Duration,
    /// A decode that covered the utterance up to `voiced`: its final if nothing was said since.
    probe: Option<(Duration, String)>,
    /// The bot's usual end-of-turn silence, and whether the words may change it.
    usual: Duration,
    smart: bool,
    partial_tx: mpsc::Sender<PartialDone>,
    /// The local decode running now (aborted when the call ends).
    decoding: Option<tokio::task::AbortHandle>,
}

impl Listen {
    /// Starts the call's recognition; the receivers deliver streaming events and local partials.
    pub fn start(
        engine: &Engine,
        usual: Duration,
        smart: bool,
    ) -> (
        Self,
        Option<mpsc::Receiver<SttEvent>>,
        mpsc::Receiver<PartialDone>,
    ) {
        let (partial_tx, partial_rx) = mpsc::channel(4);
        let (dg, events) = match &engine.recogniser {
            crate::speech::Recogniser::Deepgram(settings) => {
                let params = ListenParams {
                    endpointing: (usual / 2)
                        .clamp(Duration::from_millis(100), Duration::from_secs(1)),
                    utterance_end: Duration::from_millis(1000),
                };
                let (s, rx) = DeepgramSession::start(settings.clone(), params);
                (Some(s), Some(rx))
            }
            _ => (None, None),
        };
        let listen = Self {
            dg,
            dg_buf: Vec::with_capacity(320),
            finals: String::new(),
            rec_ended: false,
            waiting: None,
            partials: 0,
            utterance: 0,
            inflight: None,
            next_partial: PARTIAL_EVERY,
            probe: None,
            usual,
            smart,
            partial_tx,
            decoding: None,
        };
        (listen, events, partial_rx)
    }
}

impl Actor {
    /// One 20 ms frame of caller audio (μ-law), after the endpointer has seen it.
    pub(super) fn listen_frame(&mut self, ulaw: &[u8]) {
        let l = &mut self.listen;
        if let Some(dg) = l.dg.as_mut() {
            l.dg_buf.extend_from_slice(ulaw);
            if l.dg_buf.len() >= 2 * FRAME_BYTES {
                dg.push(&l.dg_buf);
                l.dg_buf.clear();
            }
            return;
        }
        if !self.ep.in_speech() || l.inflight.is_some() || !self.engine.stt.partial_ready() {
            return;
        }
        let voiced = self.ep.speech_so_far();
        let silence = self.ep.trailing_silence();
        let probe = silence >= PROBE_AFTER && l.probe.as_ref().is_none_or(|(v, _)| *v < voiced);
        let periodic = silence.is_zero() && voiced >= l.next_partial;
        if !(probe || periodic) {
            return;
        }
        l.inflight = Some(voiced);
        l.next_partial = voiced + PARTIAL_EVERY;
        let audio = self.ep.audio_so_far().to_vec();
        let (stt, tx, utterance) = (self.engine.stt.clone(), l.partial_tx.clone(), l.utterance);
        // A call task: a decode still running when the call ends is aborted, its worker freed.
        self.listen.decoding = self.info.tasks.spawn(async move {
            let text = match stt.transcribe(audio).await {
                Ok(t) => t.text,
                Err(_) => String::new(),
            };
            let _ = tx
                .send(PartialDone {
                    utterance,
                    voiced,
                    text,
                })
                .await;
        });
    }

    /// The endpointer confirmed speech: a new utterance.
    pub(super) fn listen_started(&mut self) {
        let l = &mut self.listen;
        l.utterance += 1;
        l.next_partial = PARTIAL_EVERY;
        l.probe = None;
        let usual = l.usual;
        self.ep.set_end_silence(usual);
    }

    /// A local partial came back.
    pub(super) fn on_partial(&mut self, p: PartialDone) {
        self.listen.inflight = None;
        self.listen.decoding = None;
        let covers_waiting = self
            .listen
            .waiting
            .as_ref()
            .is_some_and(|w| w.decode == Some((p.utterance, p.voiced)));
        if covers_waiting && let Some(w) = self.listen.waiting.take() {
            // The turn ended while this decode of all of it ran: it is the final text.
            let partials = std::mem::take(&mut self.listen.partials);
            let heard = (!p.text.is_empty()).then(|| Heard {
                text: p.text,
                provider: self.engine.local_stt_name(),
                after: w.t0.elapsed(),
            });
            let audio = heard.is_none().then_some(w.audio);
            return self.queue_caller(audio, w.dtmf, heard, partials, w.t0, w.endpoint);
        }
        if p.utterance != self.listen.utterance || p.text.is_empty() || !self.ep.in_speech() {
            return;
        }
        self.listen.partials += 1;
        self.events.emit(CallEvent::AsrDelta {
            track_id: CALLER.into(),
            timestamp: now_ms(),
            index: self.conv.next_number(),
            text: p.text.clone(),
        });
        if p.voiced == self.ep.speech_so_far() {
            // Nothing said since the decode started: it is the utterance's final text.
            if self.listen.smart {
                let silence = endpoint::silence_for(endpoint::hint(&p.text), self.listen.usual);
                self.ep.set_end_silence(silence);
            }
            self.listen.probe = Some((p.voiced, p.text));
            if self.ep.trailing_silence() >= self.ep.config().end_silence {
                let ended = self.ep.flush();
                self.vad_event(ended);
            }
        } else if self.listen.smart {
            let silence = endpoint::silence_for(endpoint::hint(&p.text), self.listen.usual);
            self.ep.set_end_silence(silence);
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
        // The words are known now (a turn), or come from a final still on its way (wait):
        // Deepgram's answer to `Finalize`, or a local decode already running on all of it.
        let next = if self.listen.dg.is_some() {
            if self.listen.rec_ended {
                Ok(Some(self.take_finals(Duration::ZERO)))
            } else {
                if let Some(dg) = &self.listen.dg {
                    dg.finalize();
                }
                Err(None)
            }
        } else {
            match self.listen.probe.take() {
                Some((v, text)) if v == voiced => Ok(Some(Heard {
                    text,
                    provider: self.engine.local_stt_name(),
                    after: Duration::ZERO,
                })),
                _ if self.listen.inflight == Some(voiced) => {
                    Err(Some((self.listen.utterance, voiced)))
                }
                _ => Ok(None),
            }
        };
        let heard = match next {
            Ok(heard) => heard,
            Err(decode) => {
                self.listen.partials = partials;
                self.listen.waiting = Some(Waiting {
                    audio,
                    dtmf,
                    t0,
                    endpoint,
                    decode,
                });
                return;
            }
        };
        self.queue_caller(Some(audio), dtmf, heard, partials, t0, endpoint);
    }

    fn take_finals(&mut self, after: Duration) -> Heard {
        let l = &mut self.listen;
        l.rec_ended = false;
        if let Some(dg) = &l.dg {
            dg.utterance_done();
        }
        Heard {
            text: std::mem::take(&mut l.finals),
            provider: "deepgram",
            after,
        }
    }

    fn queue_caller(
        &mut self,
        audio: Option<Vec<i16>>,
        dtmf: String,
        heard: Option<Heard>,
        partials: u32,
        t0: Instant,
        endpoint: Duration,
    ) {
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
        match ev {
            SttEvent::Partial { text } => {
                self.listen.rec_ended = false;
                self.listen.partials += 1;
                let shown = join(&self.listen.finals, &text);
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
                    error: format!("deepgram: {error}; the local recogniser takes over"),
                    code: None,
                });
                self.listen.dg = None;
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
        if let Some(d) = self.listen.decoding.take() {
            d.abort();
        }
        self.release_waiting();
    }

    /// Starts the waiting utterance's turn without waiting any longer: with the words the
    /// streaming recogniser settled, or with its audio for the local recogniser.
    fn release_waiting(&mut self) {
        let Some(w) = self.listen.waiting.take() else {
            return;
        };
        let partials = std::mem::take(&mut self.listen.partials);
        let heard = (w.decode.is_none() && !self.listen.finals.is_empty())
            .then(|| self.take_finals(w.t0.elapsed()));
        if heard.is_none()
            && let Some(dg) = &self.listen.dg
        {
            dg.utterance_done();
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
