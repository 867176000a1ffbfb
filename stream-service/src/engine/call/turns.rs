//! Carrying out the end of a turn: what `completion.rs` decided (barge-in, completion) becomes
//! a cleared playout, events, a stored turn and the reply's action.

use super::Actor;
use super::End;
use super::completion::{Effect, Now};
use callbot_core::store::TurnRecord;

impl Actor {
    /// The caller talked over the reply: stop it where they were, keep what they heard.
    pub(super) fn barge_in(&mut self) {
        let effects = self.conv.barge_in(Now::system());
        self.apply(effects);
    }

    /// The running turn ends, `interrupted` or heard in full.
    pub(super) fn complete(&mut self, interrupted: bool) {
        let effects = self.conv.complete(Now::system(), interrupted);
        self.apply(effects);
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::AbortTurnTask => {
                    if let Some(t) = self.turn_task.take() {
                        t.abort();
                    }
                }
                Effect::ClearPlayout => {
                    if let Some(m) = self.leg.clear() {
                        self.send(m);
                    }
                    self.recorder.bot_cleared();
                }
                Effect::Emit(event) => self.events.emit(event),
                Effect::Persist(record) => self.persist(*record),
                Effect::HangUp => self.hang_up(End::Bot),
                Effect::Transfer(to) => self.transfer(&to, None),
            }
        }
    }

    /// Stores a turn without holding up the call; the end of the call waits for these writes.
    fn persist(&mut self, record: TurnRecord) {
        let store = self.state.store.clone();
        let sid = self.sid.clone();
        let tenant = self.tenant.clone();
        self.persisting.retain(|h| !h.is_finished());
        self.persisting.push(tokio::spawn(async move {
            if let Err(e) = store.put_turn(&tenant, &sid, &record).await {
                tracing::error!(call_sid = %sid, turn = record.turn, error = %e, "storing a turn failed");
            }
        }));
    }
}
