//! What the conversation tells the recogniser about the caller's next words: the bot's purpose
//! and the question it just asked, turned into a prompt (Whisper's initial prompt, the `prompt`
//! of OpenAI's transcriptions). A question that wants a number, a name, a date or a yes/no adds
//! an example written the way the answer should come out ("555 0101", "S-M-I-T-H"), which is
//! what moves a small model towards digits and letters instead of look-alike words.

use std::sync::Arc;

/// The recogniser's hint for one utterance. Cheap to clone (shared text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cue {
    prompt: Arc<str>,
}

/// The kind of answer the bot's last line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Number,
    Name,
    Date,
    YesNo,
    /// Anything (no question, or an open one).
    Open,
}

/// Whisper reads at most 224 prompt tokens; a few sentences are plenty, and longer prompts cost
/// decoding time on every utterance.
const MAX_PROMPT_CHARS: usize = 480;

impl Cue {
    /// No hint (a recogniser run without conversation, e.g. a benchmark's plain mode).
    pub fn none() -> Self {
        Self::default()
    }

    /// The hint for the caller's answer to `asked` (the bot's last line, may be empty) in a
    /// call whose bot has `goal` and `context`.
    pub fn for_turn(goal: &str, context: &str, asked: &str) -> Self {
        let mut prompt = String::with_capacity(MAX_PROMPT_CHARS);
        for part in [goal, first_sentences(context, 240)] {
            let part = part.trim();
            if !part.is_empty() && prompt.len() + part.len() < MAX_PROMPT_CHARS / 2 {
                push_sentence(&mut prompt, part);
            }
        }
        let asked = asked.trim();
        if !asked.is_empty() {
            push_sentence(&mut prompt, last_chars(asked, 200));
        }
        push_sentence(&mut prompt, example(expect(asked)));
        Self {
            prompt: Arc::from(prompt.as_str()),
        }
    }

    /// The prompt text ("" for none).
    pub fn prompt(&self) -> &str {
        &self.prompt
    }
}

/// What `asked` asks for, by its words (English).
pub fn expect(asked: &str) -> Expect {
    let q = asked.to_lowercase();
    let last = q
        .rsplit(['.', '!'])
        .find(|s| !s.trim().is_empty())
        .unwrap_or(&q);
    let has = |words: &[&str]| words.iter().any(|w| last.contains(w));
    if has(&[
        "spell",
        "your name",
        "last name",
        "surname",
        "first name",
        "who am i",
    ]) {
        Expect::Name
    } else if has(&[
        "number", "phone", "digits", "how many", "zip", "postcode", "code",
    ]) {
        Expect::Number
    } else if has(&[
        "what day",
        "which day",
        "what date",
        "which date",
        "when would",
        "when ",
    ]) {
        Expect::Date
    } else if last.trim_end().ends_with('?') && starts_yes_no(last.trim_start()) {
        Expect::YesNo
    } else {
        Expect::Open
    }
}

fn starts_yes_no(q: &str) -> bool {
    const OPENERS: &[&str] = &[
        "is ", "are ", "do ", "does ", "did ", "can ", "could ", "would ", "will ", "shall ",
        "should ", "have ", "has ", "was ", "may ", "am ",
    ];
    OPENERS.iter().any(|o| q.starts_with(o))
}

/// A line as a caller would say it, transcribed the way the answer should be written.
fn example(e: Expect) -> &'static str {
    match e {
        Expect::Number => "Sure, it's 555 0101. That's 4 people, 2 nights.",
        Expect::Name => "My name is Anna Smith, that's S-M-I-T-H.",
        Expect::Date => "Friday, March 3rd at 7:30 pm.",
        Expect::YesNo => "Yes, that's right. No, thanks.",
        Expect::Open => "Hi, I'd like to book a table for 4 at 7 pm, please.",
    }
}

fn push_sentence(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(s);
    if !s.ends_with(['.', '?', '!']) {
        out.push('.');
    }
}

/// The leading sentences of `text` that fit in `max` bytes (cut at a char boundary otherwise).
fn first_sentences(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let head = &text[..floor_char_boundary(text, max)];
    match head.rfind(['.', '?', '!']) {
        Some(i) if i > 0 => &head[..=i],
        _ => head,
    }
}

/// The last `max` bytes of `text`, starting at a char boundary.
fn last_chars(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_classified_by_what_they_ask() {
        assert_eq!(
            expect("And what's a good phone number for you?"),
            Expect::Number
        );
        assert_eq!(expect("How many people will be joining?"), Expect::Number);
        assert_eq!(expect("Could you spell your last name?"), Expect::Name);
        assert_eq!(expect("Great. What day works for you?"), Expect::Date);
        assert_eq!(expect("Is that a table for four at seven?"), Expect::YesNo);
        assert_eq!(expect("Thanks for calling. How can I help?"), Expect::Open);
        assert_eq!(expect(""), Expect::Open);
    }

    #[test]
    fn the_prompt_holds_purpose_question_and_an_example() {
        let cue = Cue::for_turn(
            "Take table bookings",
            "Luigi's, an Italian restaurant. Open 5-11 pm daily.",
            "What's a good number to reach you?",
        );
        let p = cue.prompt();
        assert!(p.starts_with("Take table bookings. Luigi's"), "{p}");
        assert!(p.contains("What's a good number to reach you?"), "{p}");
        assert!(p.contains("555 0101"), "{p}");
    }

    #[test]
    fn long_texts_are_cut_to_the_prompt_budget() {
        let context = "A sentence of context. ".repeat(100);
        let asked = format!("{} Is that right?", "é".repeat(300));
        let cue = Cue::for_turn(&"goal ".repeat(10), &context, &asked);
        assert!(
            cue.prompt().len() <= MAX_PROMPT_CHARS,
            "{}",
            cue.prompt().len()
        );
        assert!(cue.prompt().contains("Is that right?"));
        assert_eq!(Cue::none().prompt(), "");
    }
}
