//! Preemptive suggestions (webhook mode): when a decode covers everything the caller said and
//! they have gone quiet, the model is asked for its suggestion on those words while endpointing
//! still waits out the silence. The turn keeps the answer only if its final words and the
//! conversation before them are the same; otherwise it is dropped (which cancels the request)
//! and the turn asks again. One such request per call at a time.

use super::Actor;
use crate::engine::converse;
use crate::engine::turn::{Early, early_words};
use callbot_core::domain::BotMode;

impl Actor {
    /// The caller's words so far are probably their final ones: start the suggestion now.
    pub(super) fn preempt(&mut self, text: &str) {
        let info = &self.info;
        if !info.preemptive
            || info.mode != BotMode::Webhook
            || !info.brain.llm_suggestion()
            || self.engine.llm.is_none()
        {
            return;
        }
        let words = early_words(text);
        if words.is_empty() || self.early.as_ref().is_some_and(|e| e.words == words) {
            return;
        }
        let history = self.conv.history().to_vec();
        let history_len = history.len();
        let (engine, info, text) = (self.engine.clone(), self.info.clone(), text.to_owned());
        let task =
            tokio::spawn(
                async move { converse::suggest(&engine, &info, &history, &text, "").await },
            );
        tracing::debug!(call_sid = %self.sid, words = %words, "preemptive suggestion started");
        // The one it replaces is dropped: its request is cancelled.
        self.early = Some(Early {
            words,
            history_len,
            task: tokio_util::task::AbortOnDropHandle::new(task),
        });
    }
}
