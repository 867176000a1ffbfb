//! E.164 phone numbers.

use super::ParseError;
use std::fmt;

/// An E.164 number: `+`, a non-zero country digit, 7 to 15 digits in all. Spaces, dashes, dots and
/// parentheses are accepted on input and removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let err = || {
            ParseError::new(
                "invalid_phone_number",
                format!(
                    "{raw:?} is not an E.164 phone number (expected + and 7-15 digits, e.g. +14155550123)"
                ),
            )
        };
        let trimmed = raw.trim();
        let rest = trimmed.strip_prefix('+').ok_or_else(err)?;
        let mut digits = String::with_capacity(16);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(err()),
            }
        }
        let n = digits.len() - 1;
        if !(7..=15).contains(&n) || digits.as_bytes()[1] == b'0' {
            return Err(err());
        }
        Ok(PhoneNumber(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_normalises() {
        assert_eq!(
            PhoneNumber::parse("+1 (415) 555-0123").unwrap().as_str(),
            "+14155550123"
        );
        assert_eq!(
            PhoneNumber::parse("+442071838750").unwrap().as_str(),
            "+442071838750"
        );
    }

    #[test]
    fn refuses_non_e164() {
        for raw in [
            "",
            "4155550123",
            "+0123456789",
            "+1",
            "+1234567890123456",
            "+1415abc0123",
            "++14155550123",
        ] {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw}");
        }
    }
}
