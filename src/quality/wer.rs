//! Word error rate with numbers normalised: both texts become lower-case words in which every
//! number, written in digits or words, cardinal or ordinal, is spelled digit by digit ("five five
//! five" = "555" = "5 5 5"; "twenty first" = "21st" = "2 1"), spelled letters stand alone
//! ("S-M-I-T-H" = "s m i t h") and times drop their ":00" ("7 p.m." = "7pm" = "7 pm").

/// Edits between a reference and a hypothesis, counted on normalised words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Errors {
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    /// Words in the reference.
    pub words: usize,
}

impl Errors {
    pub fn edits(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Edits per reference word (0 when both are empty).
    pub fn rate(&self) -> f64 {
        if self.words == 0 {
            return if self.edits() == 0 { 0.0 } else { 1.0 };
        }
        self.edits() as f64 / self.words as f64
    }
}

impl std::ops::AddAssign for Errors {
    fn add_assign(&mut self, o: Self) {
        self.substitutions += o.substitutions;
        self.deletions += o.deletions;
        self.insertions += o.insertions;
        self.words += o.words;
    }
}

/// The edits that turn `reference` into `hypothesis` (Levenshtein on normalised words).
pub fn errors(reference: &str, hypothesis: &str) -> Errors {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    // cost[i][j]: (edits, S, D, I) aligning r[..i] with h[..j]; one row kept at a time.
    let mut prev: Vec<(usize, usize, usize, usize)> = (0..=h.len()).map(|j| (j, 0, 0, j)).collect();
    for i in 1..=r.len() {
        let mut row = vec![(i, 0, i, 0); h.len() + 1];
        for j in 1..=h.len() {
            let same = r[i - 1] == h[j - 1];
            let diag = prev[j - 1];
            let sub = (
                diag.0 + usize::from(!same),
                diag.1 + usize::from(!same),
                diag.2,
                diag.3,
            );
            let del = (prev[j].0 + 1, prev[j].1, prev[j].2 + 1, prev[j].3);
            let ins = (
                row[j - 1].0 + 1,
                row[j - 1].1,
                row[j - 1].2,
                row[j - 1].3 + 1,
            );
            row[j] = [sub, del, ins]
                .into_iter()
                .min_by_key(|c| c.0)
                .unwrap_or(sub);
        }
        prev = row;
    }
    let (_, s, d, ins) = prev[h.len()];
    Errors {
        substitutions: s,
        deletions: d,
        insertions: ins,
        words: r.len(),
    }
}

/// The words compared, numbers spelled digit by digit.
pub fn normalise(text: &str) -> Vec<String> {
    let mut t = text.to_lowercase();
    for (from, to) in [
        ("a.m.", " am "),
        ("p.m.", " pm "),
        (":00", " "),
        ("%", " percent "),
    ] {
        t = t.replace(from, to);
    }
    // Separators inside numbers ("1,000") go; other punctuation splits words ("s-m-i-t-h").
    let chars: Vec<char> = t.chars().collect();
    let mut clean = String::with_capacity(t.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = |k: usize| {
            k > 0
                && chars[k - 1].is_ascii_digit()
                && chars.get(k + 1).is_some_and(char::is_ascii_digit)
        };
        if c.is_alphanumeric() || (c == '\'' && i > 0 && chars[i - 1].is_alphabetic()) {
            clean.push(c);
        } else if c == ',' && between_digits(i) {
        } else {
            clean.push(' ');
        }
    }
    let mut words = Vec::new();
    for raw in clean.split_whitespace() {
        let w = raw.trim_matches('\'');
        split_unit(w, &mut words);
    }
    numbers(&words)
}

/// "7pm" → "7", "pm"; "21st" → "21"; other words unchanged.
fn split_unit(w: &str, out: &mut Vec<String>) {
    let digits = w.len() - w.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 && digits < w.len() {
        let (n, rest) = w.split_at(digits);
        out.push(n.to_owned());
        if !matches!(rest, "st" | "nd" | "rd" | "th") {
            out.push(rest.to_owned());
        }
    } else if !w.is_empty() {
        out.push(w.to_owned());
    }
}

fn word_value(w: &str) -> Option<(u64, Kind)> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const ORDINALS: [&str; 20] = [
        "zeroth",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    const TENTHS: [&str; 8] = [
        "twentieth",
        "thirtieth",
        "fortieth",
        "fiftieth",
        "sixtieth",
        "seventieth",
        "eightieth",
        "ninetieth",
    ];
    if let Some(i) = ONES.iter().position(|&o| o == w) {
        return Some((i as u64, Kind::Ones));
    }
    if let Some(i) = ORDINALS.iter().position(|&o| o == w) {
        return Some((i as u64, Kind::Ones));
    }
    if let Some(i) = TENS.iter().chain(TENTHS.iter()).position(|&o| o == w) {
        return Some((20 + 10 * (i as u64 % 8), Kind::Tens));
    }
    match w {
        "hundred" | "hundredth" => Some((100, Kind::Scale)),
        "thousand" | "thousandth" => Some((1000, Kind::Scale)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ones,
    Tens,
    Scale,
}

/// Number words become numbers, and every number its digits, one word each.
fn numbers(words: &[String]) -> Vec<String> {
    let is_number = |w: Option<&String>| {
        w.is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()) || word_value(w).is_some())
    };
    let mut out = Vec::with_capacity(words.len());
    // The number being read: its value and the kind of its last word.
    let mut cur: Option<(u64, Kind)> = None;
    let flush = |cur: &mut Option<(u64, Kind)>, out: &mut Vec<String>| {
        if let Some((v, _)) = cur.take() {
            out.extend(v.to_string().chars().map(String::from));
        }
    };
    for (i, w) in words.iter().enumerate() {
        // "oh" is a zero only among digits ("five oh one").
        let oh_zero =
            w == "oh" && (is_number(words.get(i + 1)) || (i > 0 && is_number(words.get(i - 1))));
        let value = if oh_zero {
            Some((0, Kind::Ones))
        } else {
            word_value(w)
        };
        match (value, cur) {
            (Some((n, Kind::Ones)), Some((c, Kind::Tens))) if n < 10 => {
                cur = Some((c + n, Kind::Ones))
            }
            (Some((n, k @ (Kind::Ones | Kind::Tens))), Some((c, Kind::Scale))) => {
                cur = Some((c + n, k));
            }
            (Some((s, Kind::Scale)), Some((c, _))) if c > 0 && c < s => {
                cur = Some((c * s, Kind::Scale))
            }
            (Some((n, k)), _) => {
                flush(&mut cur, &mut out);
                cur = Some((n, k));
            }
            (None, Some((_, Kind::Scale))) if w == "and" => {}
            (None, _) => {
                flush(&mut cur, &mut out);
                if w.chars().all(|c| c.is_ascii_digit()) {
                    out.extend(w.chars().map(String::from));
                } else {
                    out.push(w.clone());
                }
            }
        }
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        normalise(s).join(" ")
    }

    #[test]
    fn numbers_in_words_and_digits_compare_equal() {
        assert_eq!(
            norm("It's five five five, zero one nine two."),
            norm("It's 555-0192")
        );
        assert_eq!(norm("five oh one"), "5 0 1");
        assert_eq!(norm("Oh, I see"), "oh i see");
        assert_eq!(norm("twenty first"), norm("21st"));
        assert_eq!(
            norm("two hundred and forty Main Street"),
            "2 4 0 main street"
        );
        assert_eq!(norm("thirty five dollars"), norm("35 dollars"));
        assert_eq!(
            norm("a table for four at seven pm"),
            norm("A table for 4 at 7 p.m.")
        );
        assert_eq!(norm("7pm"), "7 pm");
        assert_eq!(norm("7:00 pm"), "7 pm");
        assert_eq!(norm("twelve"), "1 2");
        assert_eq!(norm("1,000"), "1 0 0 0");
    }

    #[test]
    fn spelled_letters_stand_alone() {
        assert_eq!(norm("S, M, I, T, H."), "s m i t h");
        assert_eq!(norm("S-M-I-T-H"), "s m i t h");
        assert_eq!(norm("I'd like that."), "i'd like that");
    }

    #[test]
    fn edits_are_counted_by_kind() {
        let e = errors("book a table for two", "book the table for two please");
        assert_eq!(
            (e.substitutions, e.deletions, e.insertions, e.words),
            (1, 0, 1, 5)
        );
        let e = errors("yes that's right", "yes");
        assert_eq!((e.deletions, e.edits()), (2, 2));
        assert!((e.rate() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(errors("", "").rate(), 0.0);
        assert_eq!(errors("", "noise").rate(), 1.0);
        assert_eq!(
            errors(
                "My number is 555 0192",
                "my number is five five five zero one nine two"
            )
            .edits(),
            0
        );
    }
}
