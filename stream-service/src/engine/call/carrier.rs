//! The carrier's REST calls a call makes (hang up, transfer) run as call tasks, off the actor's
//! loop, so a slow carrier never stalls the media; a transfer's result comes back as a message.
//! While a transfer is on its way no new turn starts; if it fails, the conversation goes on.

use super::{Actor, End};
use crate::engine::events::{CallEvent, now_ms};
use crate::engine::turn::ToCall;
use callbot_core::twilio::twiml::{self, Verb};

fn telephony_error(error: String) -> CallEvent {
    CallEvent::Error {
        track_id: "call".into(),
        timestamp: now_ms(),
        sender: "telephony".into(),
        error,
        code: None,
    }
}

impl Actor {
    /// Ends the call: the loop stops now; on a phone leg the carrier is told in a call task
    /// (finished, within its grace, before the call's end is reported).
    pub(super) fn hang_up(&mut self, why: End) {
        if self.leg.channel().is_phone() {
            let (telephony, sid) = (self.engine.telephony.clone(), self.sid.clone());
            self.info.tasks.spawn(async move {
                if let Err(e) = telephony.hangup_call(&sid).await {
                    tracing::error!(call_sid = %sid, error = %e, "hanging up failed");
                }
            });
        }
        self.end = Some(why);
    }

    /// Hands the caller to `number` through the carrier (`<Dial>`); the engine's part ends when
    /// the carrier accepts. Only to a number the bot's `transfer_numbers` allow (an `error`
    /// event otherwise). Legs without a carrier (WebSocket, WebRTC) cannot be transferred: an
    /// `error` event says so and the conversation goes on.
    pub(super) fn transfer(&mut self, number: &str, timeout: Option<u32>) {
        if !self.info.brain.may_transfer_to(number) {
            tracing::warn!(call_sid = %self.sid, to = number, "transfer outside transfer_numbers refused");
            let error =
                format!("transfer to {number} refused: it is not in the bot's transfer_numbers");
            return self.events.emit(telephony_error(error));
        }
        if !self.leg.channel().is_phone() {
            let error = format!(
                "transfer to {number} needs a phone leg; this call is {}",
                self.leg.channel().as_str()
            );
            return self.events.emit(telephony_error(error));
        }
        let twiml = twiml::render(&[Verb::Dial {
            number: number.to_owned(),
            caller_id: Some(self.info.to.clone()),
            timeout,
        }]);
        let (telephony, sid) = (self.engine.telephony.clone(), self.sid.clone());
        let (tx, number) = (self.pipe_tx.clone(), number.to_owned());
        let spawned = self.info.tasks.spawn(async move {
            let result = telephony
                .redirect_call(&sid, &twiml)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(ToCall::TransferDone { number, result }).await;
        });
        self.transferring = spawned.is_some();
    }

    /// The leg's stream ended (Twilio's `stop`, or the socket closed): the caller hung up, or —
    /// with a transfer on its way — the carrier took the call over, which the transfer's result
    /// tells.
    pub(super) fn stream_ended(&mut self) {
        self.stream_closed = true;
        if !self.transferring {
            self.end = Some(End::CallerHungUp);
        }
    }

    /// The carrier answered a transfer.
    pub(super) fn transfer_done(&mut self, number: String, result: Result<(), String>) {
        match result {
            Ok(()) => self.end = Some(End::Transfer),
            Err(e) => {
                tracing::error!(call_sid = %self.sid, to = %number, error = %e, "transfer failed");
                self.transferring = false;
                self.events
                    .emit(telephony_error(format!("transfer failed: {e}")));
                self.start_next();
            }
        }
    }
}
