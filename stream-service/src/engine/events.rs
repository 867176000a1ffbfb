//! Call events with the RustPBX names and fields (`event`, `trackId`, `timestamp` in ms since the
//! epoch), published on a per-call broadcast channel that observers (`/frontend-stream`) read.
//! Publishing never waits: a slow observer misses events (it is told how many), the call does not.

use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum CallEvent {
    /// The caller started talking.
    #[serde(rename_all = "camelCase")]
    Speaking {
        track_id: String,
        timestamp: u64,
        start_time: u64,
    },
    /// The caller has been silent for `duration` ms.
    #[serde(rename_all = "camelCase")]
    Silence {
        track_id: String,
        timestamp: u64,
        start_time: u64,
        duration: u64,
    },
    #[serde(rename_all = "camelCase")]
    AsrDelta {
        track_id: String,
        timestamp: u64,
        index: u32,
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    AsrFinal {
        track_id: String,
        timestamp: u64,
        index: u32,
        start_time: Option<u64>,
        end_time: Option<u64>,
        text: String,
    },
    /// The bot started playing a reply (`trackId` names the reply).
    #[serde(rename_all = "camelCase")]
    TrackStart { track_id: String, timestamp: u64 },
    #[serde(rename_all = "camelCase")]
    TrackEnd {
        track_id: String,
        timestamp: u64,
        duration: u64,
    },
    /// The caller talked over the bot: playback stopped at `position` ms into the reply.
    #[serde(rename_all = "camelCase")]
    Interruption {
        track_id: String,
        timestamp: u64,
        position: u64,
        heard_text: String,
    },
    #[serde(rename_all = "camelCase")]
    Dtmf {
        track_id: String,
        timestamp: u64,
        digit: String,
    },
    /// What answered an outbound call (`human`, `machine_start`, `machine_end_beep`, …), by the
    /// carrier's machine detection (`source: "carrier"`) or the engine's own (`"engine"`).
    #[serde(rename_all = "camelCase")]
    AnsweredBy {
        track_id: String,
        timestamp: u64,
        answered_by: String,
        source: String,
    },
    /// A timing figure (`key` e.g. `ttfb.turn`, `data` the breakdown).
    #[serde(rename_all = "camelCase")]
    Metrics {
        timestamp: u64,
        key: String,
        duration: u64,
        data: serde_json::Value,
    },
    #[serde(rename_all = "camelCase")]
    Hangup {
        timestamp: u64,
        reason: String,
        initiator: String,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        track_id: String,
        timestamp: u64,
        sender: String,
        error: String,
        code: Option<u16>,
    },
    /// Starlis `transcription`: a line of the conversation for dashboards.
    #[serde(rename_all = "camelCase")]
    Transcription {
        timestamp: u64,
        role: String,
        text: String,
    },
    /// Starlis `audio`: a chunk of call audio (base64 μ-law 8 kHz) for live listening.
    #[serde(rename_all = "camelCase")]
    Audio {
        timestamp: u64,
        track: String,
        payload: String,
    },
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The sending side of a call's events.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<CallEvent>,
    /// Subscribers that want the call's audio (`audio` events are built only for them).
    listeners: Arc<AtomicUsize>,
}

/// A subscription that includes the call's audio; stops the audio events when dropped.
#[derive(Debug)]
pub struct Listening {
    pub rx: broadcast::Receiver<CallEvent>,
    listeners: Arc<AtomicUsize>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(256);
        Self {
            tx,
            listeners: Arc::default(),
        }
    }

    pub fn emit(&self, e: CallEvent) {
        let _ = self.tx.send(e);
    }

    /// Whether anybody listens to the audio (audio events are only built then).
    pub fn observed(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// The call's events without its audio (a `/call` client, a supervisor).
    pub fn subscribe(&self) -> broadcast::Receiver<CallEvent> {
        self.tx.subscribe()
    }

    /// The call's events with its audio (`/frontend-stream`).
    pub fn listen(&self) -> Listening {
        let rx = self.tx.subscribe();
        self.listeners.fetch_add(1, Ordering::Relaxed);
        Listening {
            rx,
            listeners: self.listeners.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_rustpbx_names() {
        let e = CallEvent::AsrFinal {
            track_id: "caller".into(),
            timestamp: 5,
            index: 1,
            start_time: Some(1),
            end_time: Some(4),
            text: "hi".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "asrFinal");
        assert_eq!(v["trackId"], "caller");
        assert_eq!(v["startTime"], 1);
        let v = serde_json::to_value(CallEvent::TrackStart {
            track_id: "t".into(),
            timestamp: 1,
        })
        .unwrap();
        assert_eq!(v["event"], "trackStart");
    }
}
