//! Backchannels: the short acknowledgements a caller makes while the bot talks ("uh-huh",
//! "okay", "right", "yeah", "I see"). They tell the bot to go on, so they neither interrupt it
//! nor start a turn of their own (unless the bot says they should).

/// Words and phrases that, alone or together, only acknowledge.
const WORDS: &[&str] = &[
    "uh",
    "huh",
    "uh-huh",
    "uhhuh",
    "mm",
    "mhm",
    "mm-hmm",
    "mmhmm",
    "hmm",
    "hm",
    "okay",
    "ok",
    "right",
    "yeah",
    "yes",
    "yep",
    "yup",
    "sure",
    "alright",
    "all right",
    "i see",
    "got it",
    "oh",
    "ah",
    "aha",
    "cool",
    "great",
    "fine",
    "good",
    "thanks",
];

/// Longest backchannel, in words: "okay, I see, yeah" is one; a sentence is not.
const MAX_WORDS: usize = 4;

/// Whether `text` (a transcript) is only an acknowledgement. Empty text is not.
pub fn is_backchannel(text: &str) -> bool {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | '?' | ';'))
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() || words.len() > MAX_WORDS {
        return false;
    }
    // Each word alone, or with the next as a two-word phrase ("I see", "got it").
    let mut i = 0;
    while i < words.len() {
        let pair = words.get(i + 1).map(|next| format!("{} {next}", words[i]));
        if pair.as_deref().is_some_and(|p| WORDS.contains(&p)) {
            i += 2;
        } else if WORDS.contains(&words[i].as_str()) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::is_backchannel;

    #[test]
    fn acknowledgements_are_backchannels() {
        for t in [
            "Uh-huh.",
            "Okay.",
            "Right.",
            "Yeah, yeah.",
            "Mm-hmm",
            "I see.",
            "Okay, got it.",
            "All right.",
            "Oh, okay.",
            "Yes.",
            "Sure, thanks.",
        ] {
            assert!(is_backchannel(t), "{t}");
        }
    }

    #[test]
    fn anything_else_is_not() {
        for t in [
            "",
            "No.",
            "Wait.",
            "Stop, that's wrong.",
            "Okay, but I want seven.",
            "Yes, a table for two.",
            "I",
            "It",
            "Can I ask something?",
            "Okay okay okay okay okay",
        ] {
            assert!(!is_backchannel(t), "{t}");
        }
    }
}
