//! Free-text bot fields with size limits: goal, context, first message and voicemail message.

use super::ParseError;

fn bounded(raw: &str, field: &str, min: usize, max: usize) -> Result<String, ParseError> {
    let trimmed = raw.trim();
    // The limit counts what was sent (as the API description's maxLength does).
    let chars = raw.chars().count();
    if trimmed.chars().count() < min {
        return Err(ParseError::new(
            "empty_field",
            format!("{field} must not be empty"),
        ));
    }
    if chars > max {
        return Err(ParseError::new(
            "too_long",
            format!("{field} is {chars} characters; the limit is {max}"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ParseError::new(
            "invalid_text",
            format!("{field} contains control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            /// Its `{{name}}` placeholders must be well formed (filled per call).
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                let text = bounded(raw, $field, $min, $max)?;
                super::template::placeholders(&text, $field)?;
                Ok($name(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_type!(
    /// What the bot is for ("Take restaurant reservations"): 1-2,000 characters.
    Goal, "goal", 1, 2_000
);
text_type!(
    /// Facts the bot may use ("Open 5PM-10PM"): up to 8,000 characters; may be empty.
    Context, "context", 0, 8_000
);
text_type!(
    /// The line spoken when a call connects: 1-500 characters.
    FirstMessage, "first_message", 1, 500
);
text_type!(
    /// The message left on an answering machine after its beep: 1-1,000 characters.
    VoicemailMessage, "voicemail.message", 1, 1_000
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(Goal::parse("Take reservations").is_ok());
        assert_eq!(Goal::parse("   ").unwrap_err().code, "empty_field");
        assert_eq!(
            Goal::parse(&"x".repeat(2_001)).unwrap_err().code,
            "too_long"
        );
        assert!(Goal::parse(&"é".repeat(2_000)).is_ok());
        assert!(Context::parse("").is_ok());
        assert_eq!(Context::parse("a\u{0}b").unwrap_err().code, "invalid_text");
        assert!(FirstMessage::parse("Hi {{name}}").is_ok());
        assert_eq!(
            FirstMessage::parse("Hi {{first name}}").unwrap_err().code,
            "invalid_placeholder"
        );
    }
}
