//! Cuts a streamed reply into sentences as the words arrive, so the first sentence is synthesised
//! and playing while the model is still writing the rest; and cleans text meant for the ear
//! (markdown marks, list bullets) before it is spoken.

use crate::speech::sentences;

/// Longest stretch without a sentence end before it is cut at a comma.
const LONG_CLAUSE: usize = 160;

/// Incremental sentence splitter: `push` deltas, take the sentences that are complete.
#[derive(Debug, Default)]
pub struct SentenceStream {
    buf: String,
}

impl SentenceStream {
    /// Adds text; returns the sentences it completed. A sentence is complete once the next one has
    /// started (so "p.m. is" and "3.5" are not cut), or at a line break.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buf.push_str(delta);
        let mut out = Vec::new();
        // Line breaks end sentences outright (models write lists as lines).
        while let Some(nl) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=nl).collect();
            out.extend(sentences(&clean(&line)));
        }
        let parts = sentences(&self.buf);
        if parts.len() > 1 {
            let mut pos = 0;
            for s in &parts[..parts.len() - 1] {
                if let Some(at) = self.buf[pos..].find(s.as_str()) {
                    pos += at + s.len();
                }
                let c = clean(s);
                if !c.is_empty() {
                    out.push(c);
                }
            }
            self.buf.drain(..pos);
        } else if ends_sentence(&self.buf) {
            // "Sure, I can help. " then a pause while the model thinks: speak it now.
            let c = clean(&std::mem::take(&mut self.buf));
            if !c.is_empty() {
                out.push(c);
            }
        } else if self.buf.len() > LONG_CLAUSE
            && let Some(comma) = self.buf.rfind(", ")
        {
            let head: String = self.buf.drain(..comma + 1).collect();
            let c = clean(&head);
            if !c.is_empty() {
                out.push(c);
            }
        }
        out
    }

    /// The rest, once the stream has ended.
    pub fn finish(&mut self) -> Option<String> {
        let rest = clean(&std::mem::take(&mut self.buf));
        (!rest.is_empty()).then_some(rest)
    }
}

/// Abbreviations whose period does not end a sentence.
const ABBREVIATIONS: [&str; 14] = [
    "mr", "mrs", "ms", "dr", "st", "vs", "etc", "no", "jr", "sr", "ave", "approx", "min", "max",
];

/// Whether `buf` ends with a finished sentence: `!` or `?`, or a period after a word that is not
/// an abbreviation ("p.m.", "Dr."), followed by whitespace.
fn ends_sentence(buf: &str) -> bool {
    if !buf.ends_with(char::is_whitespace) {
        return false;
    }
    let t = buf.trim_end();
    if t.ends_with(['!', '?']) {
        return true;
    }
    let Some(word) = t.strip_suffix('.') else {
        return false;
    };
    let last = word
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or("")
        .trim_start_matches(|c: char| !c.is_alphanumeric());
    !last.is_empty()
        && !last.contains('.')
        && last.chars().count() > 1
        && !ABBREVIATIONS.contains(&last.to_ascii_lowercase().as_str())
}

/// Text as it should be spoken: no markdown emphasis, headings, code marks or list bullets.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let l = line.trim_start();
        let l = l
            .strip_prefix("- ")
            .or_else(|| l.strip_prefix("• "))
            .unwrap_or(l);
        let l = l.trim_start_matches('#');
        for w in l.split_whitespace() {
            let w: String = w
                .chars()
                .filter(|c| !matches!(c, '*' | '`' | '_' | '#'))
                .collect();
            if w.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_complete_when_the_next_begins() {
        let mut s = SentenceStream::default();
        assert!(s.push("We open at 5").is_empty());
        assert!(s.push(" p.m. on").is_empty());
        assert!(s.push(" Sunday.").is_empty());
        assert_eq!(s.push(" Shall I"), vec!["We open at 5 p.m. on Sunday."]);
        assert_eq!(s.push(" book? "), vec!["Shall I book?"]);
        assert!(s.push("Meet at 5 p.m. ").is_empty());
        assert_eq!(s.push("today. "), vec!["Meet at 5 p.m. today."]);
        assert!(!ends_sentence("Ask Dr. ") && !ends_sentence("at 5 p.m. "));
        assert!(ends_sentence("Done! ") && !ends_sentence("Done!"));
        assert!(s.push("Shall I").is_empty());
        assert!(s.push(" book a table?").is_empty());
        assert_eq!(s.finish(), Some("Shall I book a table?".into()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn markdown_and_lines_are_cleaned() {
        let mut s = SentenceStream::default();
        let got = s.push("**Sure!** Here:\n- one\n- two\nOk");
        assert_eq!(got, vec!["Sure!", "Here:", "one", "two"]);
        assert_eq!(s.finish(), Some("Ok".into()));
        assert_eq!(clean("### Title `x`"), "Title x");
    }

    #[test]
    fn long_clauses_are_cut_at_a_comma() {
        let mut s = SentenceStream::default();
        let long = format!("{}, and then more", "word ".repeat(40).trim());
        let got = s.push(&long);
        assert_eq!(got.len(), 1);
        assert!(got[0].ends_with(','));
    }
}
