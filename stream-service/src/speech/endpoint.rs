//! When has the caller finished? The silence that ends a turn depends on what they said so far:
//! a complete sentence ("A table for two at seven.") ends it sooner; words that promise more
//! ("and", "um", "my number is five five") make it wait longer. The words come from partial
//! transcripts (local) or the recogniser's own signals (Deepgram `speech_final`).

use std::time::Duration;

/// Partials at most this often while the caller speaks (when a recogniser worker is free).
pub const PARTIAL_EVERY: Duration = Duration::from_millis(800);
/// Trailing silence after which the utterance is decoded to see whether it is finished.
pub const PROBE_AFTER: Duration = Duration::from_millis(160);

/// What the words so far suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// A finished sentence: a shorter silence is enough.
    Complete,
    /// A trailing conjunction, filler, article or a number being spelled: wait longer.
    MoreToCome,
    /// Nothing either way: the bot's usual silence.
    Unsure,
}

/// Words after which a speaker almost always goes on.
const CONTINUERS: &[&str] = &[
    "and", "or", "but", "so", "because", "um", "uh", "er", "erm", "hmm", "the", "a", "an", "to",
    "of", "with", "my", "your", "is", "are", "at", "for", "in", "on", "like", "then", "if", "that",
    "which", "who", "from", "about", "maybe", "also", "plus",
];

const NUMBER_WORDS: &[&str] = &[
    "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "hundred", "thousand", "double", "triple",
];

pub fn hint(text: &str) -> Hint {
    let t = text.trim();
    let Some(last_raw) = t.split_whitespace().last() else {
        return Hint::Unsure;
    };
    let ends_sentence = t.ends_with(['.', '?', '!']) && !t.ends_with("...");
    let last = last_raw
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    if t.ends_with([',', '-']) || t.ends_with("...") || CONTINUERS.contains(&last.as_str()) {
        return Hint::MoreToCome;
    }
    // Digits or number words at the end, without a full stop: a number being spelled out. A
    // group of digits with one ("555 0101.") may still go on: the recogniser ends every segment
    // with a full stop.
    let digits = !last.is_empty() && last.chars().all(|c| c.is_ascii_digit());
    let numeric = digits || NUMBER_WORDS.contains(&last.as_str());
    if numeric && !ends_sentence {
        return Hint::MoreToCome;
    }
    if digits && last.len() >= 3 {
        return Hint::Unsure;
    }
    if ends_sentence && t.split_whitespace().count() >= 2 {
        return Hint::Complete;
    }
    Hint::Unsure
}

/// The silence that ends the turn, given the bot's usual one.
pub fn silence_for(hint: Hint, usual: Duration) -> Duration {
    match hint {
        Hint::Complete => (usual / 2).max(Duration::from_millis(250)),
        Hint::MoreToCome => (usual * 2).min(Duration::from_millis(2500)).max(usual),
        Hint::Unsure => usual,
    }
}

/// The silence that ends the turn once the end-of-turn model has judged the speech so far
/// (`None`: no verdict yet, or no model): the words' silence until it has; then "finished" ends
/// the turn at once unless the words promise more (they win: "my number is five five five"
/// sounds finished), and "not finished" waits the long silence even after words that look like a
/// finished sentence ("Let me see, maybe." in a pause): on the phone line the model's "not
/// finished" at a pause is its more reliable verdict.
pub fn combine(hint: Hint, finished: Option<bool>, usual: Duration) -> Duration {
    match (finished, hint) {
        (None, h) | (Some(true), h @ Hint::MoreToCome) => silence_for(h, usual),
        (Some(true), _) => Duration::ZERO,
        (Some(false), _) => silence_for(Hint::MoreToCome, usual),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transcripts as whisper.cpp wrote them for callers who had (or had not) finished.
    #[test]
    fn recorded_cases() {
        for done in [
            "I'd like to book a table for two at seven.",
            "Are you open on Sunday?",
            "Yes, that's right.",
            "No thanks, that's all!",
        ] {
            assert_eq!(hint(done), Hint::Complete, "{done}");
        }
        for more in [
            "I'd like a table for two and",
            "My number is 555 0101",
            "It's five five five, one",
            "So, um",
            "Can I book for the",
            "I was wondering,",
            "Let me think...",
        ] {
            assert_eq!(hint(more), Hint::MoreToCome, "{more}");
        }
        for unsure in ["", "Hello", "Yes", "I see"] {
            assert_eq!(hint(unsure), Hint::Unsure, "{unsure:?}");
        }
        assert_eq!(hint("Call me at 7."), Hint::Complete);
        assert_eq!(
            hint("My number is 555 0101."),
            Hint::Unsure,
            "a phone number may go on"
        );
        assert_eq!(hint("So I was thinking that."), Hint::MoreToCome);
    }

    #[test]
    fn silences() {
        let usual = Duration::from_millis(700);
        assert_eq!(
            silence_for(Hint::Complete, usual),
            Duration::from_millis(350)
        );
        assert_eq!(
            silence_for(Hint::MoreToCome, usual),
            Duration::from_millis(1400)
        );
        assert_eq!(silence_for(Hint::Unsure, usual), usual);
        assert_eq!(
            silence_for(Hint::Complete, Duration::from_millis(300)),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn the_models_verdict_with_the_words() {
        let usual = Duration::from_millis(700);
        let long = silence_for(Hint::MoreToCome, usual);
        assert_eq!(combine(Hint::Unsure, None, usual), usual, "no verdict yet");
        assert_eq!(combine(Hint::Unsure, Some(true), usual), Duration::ZERO);
        assert_eq!(combine(Hint::Complete, Some(true), usual), Duration::ZERO);
        assert_eq!(
            combine(Hint::MoreToCome, Some(true), usual),
            long,
            "words win"
        );
        assert_eq!(combine(Hint::Unsure, Some(false), usual), long);
        assert_eq!(
            combine(Hint::Complete, Some(false), usual),
            long,
            "the model holds a pause"
        );
    }
}
