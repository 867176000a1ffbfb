//! Fillers: what a caller hears while their reply is prepared ("One moment.", then a second line
//! if the wait goes on), so slow recognition, a slow model suggestion or a slow webhook never
//! means dead air. The first filler begins the turn's reply; the answer follows it as further
//! sentences of the same (streaming) reply. In LLM mode the model's first sentence is waited for
//! the same way ([`until_answered`]), tool calls before it included.

use super::Engine;
use super::speak::{begin_streaming, speak_one};
use super::turn::{CallInfo, ToCall};
use std::time::Duration;
use tokio::sync::mpsc;

/// The fillers said in a turn so far, and when the next is due.
#[derive(Debug)]
pub(super) struct Fillers {
    pub(super) said: usize,
    /// When the next filler falls due.
    due: tokio::time::Instant,
}

impl Fillers {
    pub(super) fn new() -> Self {
        Self {
            said: 0,
            due: tokio::time::Instant::now() + FILLER_AFTER,
        }
    }

    /// The next filler's line and when it falls due; `None` once every line has been said.
    fn next(&self) -> Option<(&'static str, tokio::time::Instant)> {
        FILLER_LINES.get(self.said).map(|line| (*line, self.due))
    }

    /// Counts the next filler as said (the one after it is due [`FILLER_AGAIN`] from now);
    /// returns its index.
    fn say(&mut self) -> usize {
        self.said += 1;
        self.due = tokio::time::Instant::now() + FILLER_AGAIN;
        self.said - 1
    }
}

/// Runs `work`; while it runs past the next filler's time, says the next of [`FILLER_LINES`]
/// (the work goes on meanwhile). `None`: the call has gone.
pub(super) async fn covered<T>(
    work: impl Future<Output = T>,
    fillers: &mut Fillers,
    (engine, info, turn, tx): (&Engine, &CallInfo, u32, &mpsc::Sender<ToCall>),
) -> Option<T> {
    tokio::pin!(work);
    loop {
        let Some((line, due)) = fillers.next() else {
            return Some(work.await);
        };
        tokio::select! {
            r = &mut work => return Some(r),
            () = tokio::time::sleep_until(due) => {
                let index = fillers.say();
                let saying = filler(engine, info, turn, tx, index, line);
                tokio::pin!(saying);
                // If the work ends while the filler is synthesised, the filler still comes first.
                tokio::select! {
                    said = &mut saying => if !said { return None },
                    r = &mut work => return saying.await.then_some(r),
                }
            }
        }
    }
}

/// LLM mode: whether the model's first sentence has gone out. Sentences and fillers take the lock
/// to go out (to the actor, then to synthesis), so the transcript and the audio agree on their
/// order and no filler follows the answer.
#[derive(Debug, Default)]
pub(super) struct Answer(tokio::sync::Mutex<bool>);

impl Answer {
    /// Sends one of the model's sentences (marking the answer begun). False when the call is gone.
    pub(super) async fn say(
        &self,
        turn: u32,
        text: String,
        tx: &mpsc::Sender<ToCall>,
        say_tx: &mpsc::Sender<String>,
    ) -> bool {
        let mut begun = self.0.lock().await;
        *begun = true;
        send(turn, text, tx, say_tx).await
    }
}

async fn send(
    turn: u32,
    text: String,
    tx: &mpsc::Sender<ToCall>,
    say_tx: &mpsc::Sender<String>,
) -> bool {
    let sentence = ToCall::Sentence {
        turn,
        text: text.clone(),
    };
    tx.send(sentence).await.is_ok() && say_tx.send(text).await.is_ok()
}

/// LLM mode (the reply has begun): says the remaining fillers as they fall due until the model's
/// first sentence goes out, then waits forever (the caller drops it with the model's work).
pub(super) async fn until_answered(
    fillers: &mut Fillers,
    answer: &Answer,
    (call_sid, turn, tx, say_tx): (&str, u32, &mpsc::Sender<ToCall>, &mpsc::Sender<String>),
) {
    while let Some((line, due)) = fillers.next() {
        tokio::time::sleep_until(due).await;
        let begun = answer.0.lock().await;
        if *begun {
            break;
        }
        let index = fillers.say();
        tracing::info!(call_sid, turn, index, "the model is slow; saying a filler");
        if !send(turn, line.to_owned(), tx, say_tx).await {
            break;
        }
        drop(begun);
    }
    std::future::pending::<()>().await;
}

/// How long a caller's turn may go without a word from the bot (recognition, suggestion and
/// webhook together) before they hear [`FILLER_LINE`].
pub const FILLER_AFTER: Duration = Duration::from_millis(1200);
/// How long after one filler began the next is said, if the reply is still not ready.
pub const FILLER_AGAIN: Duration = Duration::from_millis(2800);
/// What the caller hears while the reply is prepared: the first, then the second.
pub const FILLER_LINES: [&str; 2] = [FILLER_LINE, "Still on it, thanks for waiting."];
/// Said while the caller's words wait for a busy recogniser.
pub const FILLER_LINE: &str = "One moment.";
/// Starts the turn's reply with [`FILLER_LINE`] (the turn streams from then on: what follows is
/// added sentence by sentence). False when the call is gone.
async fn filler(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    tx: &mpsc::Sender<ToCall>,
    index: usize,
    line: &str,
) -> bool {
    tracing::info!(call_sid = %info.call_sid, turn, index, "the reply is slow; saying a filler");
    // The first filler begins the turn's reply (streaming: the answer follows as sentences).
    if index == 0 && !begin_streaming(tx, turn).await {
        return false;
    }
    tx.send(ToCall::Sentence {
        turn,
        text: line.to_owned(),
    })
    .await
    .is_ok()
        && speak_one(engine, info, turn, index, line, tx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model's first sentence after `after`, then 5 s more of its work; what went to
    /// synthesis, in order, what went to the actor, and the fillers said.
    async fn answered_after(after: Duration) -> (Vec<String>, Vec<String>, usize) {
        let (tx, mut rx) = mpsc::channel(8);
        let (say_tx, mut say_rx) = mpsc::channel(8);
        let answer = Answer::default();
        let mut fillers = Fillers::new();
        let model = async {
            tokio::time::sleep(after).await;
            let said = answer.say(1, "Sure.".into(), &tx, &say_tx).await;
            // A tool call, or the rest of the reply: no filler once the answer has begun.
            tokio::time::sleep(Duration::from_secs(5)).await;
            said
        };
        let filling = until_answered(&mut fillers, &answer, ("CA1", 1, &tx, &say_tx));
        let said = tokio::select! {
            ok = model => ok,
            () = filling => false,
        };
        assert!(said);
        drop((tx, say_tx));
        let mut spoken = Vec::new();
        while let Some(s) = say_rx.recv().await {
            spoken.push(s);
        }
        let mut sentences = Vec::new();
        while let Some(m) = rx.recv().await {
            if let ToCall::Sentence { turn: 1, text } = m {
                sentences.push(text);
            }
        }
        (spoken, sentences, fillers.said)
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_answer_gets_no_filler() {
        let (spoken, sentences, said) = answered_after(Duration::from_millis(1100)).await;
        assert_eq!(spoken, ["Sure."]);
        assert_eq!(sentences, ["Sure."]);
        assert_eq!(said, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_follows_the_fillers_that_fell_due() {
        let (spoken, sentences, said) = answered_after(Duration::from_millis(1300)).await;
        assert_eq!(spoken, [FILLER_LINE, "Sure."]);
        assert_eq!(said, 1);
        assert_eq!(sentences, spoken, "the transcript in the order heard");
        let (spoken, _, said) = answered_after(Duration::from_secs(5)).await;
        assert_eq!(spoken, [FILLER_LINES[0], FILLER_LINES[1], "Sure."]);
        assert_eq!(said, 2);
        // After the last filler, nothing more however long the model takes.
        let (spoken, _, _) = answered_after(Duration::from_secs(30)).await;
        assert_eq!(spoken.len(), 3);
    }
}
