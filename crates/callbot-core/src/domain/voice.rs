//! Voices: `provider:name`, e.g. `elevenlabs:emma` or `local:en-us`.

use super::ParseError;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VoiceProvider {
    ElevenLabs,
    Polly,
    OpenAi,
    /// The offline synthesiser that ships with `callbot serve`.
    Local,
}

impl VoiceProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            VoiceProvider::ElevenLabs => "elevenlabs",
            VoiceProvider::Polly => "polly",
            VoiceProvider::OpenAi => "openai",
            VoiceProvider::Local => "local",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Voice {
    provider: VoiceProvider,
    name: String,
}

impl Voice {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let (provider, name) = raw.split_once(':').ok_or_else(|| {
            ParseError::new(
                "invalid_voice",
                format!("voice {raw:?} must look like provider:name, e.g. elevenlabs:emma"),
            )
        })?;
        let provider = match provider.to_ascii_lowercase().as_str() {
            "elevenlabs" => VoiceProvider::ElevenLabs,
            "polly" => VoiceProvider::Polly,
            "openai" => VoiceProvider::OpenAi,
            "local" => VoiceProvider::Local,
            "playht" => {
                return Err(ParseError::new(
                    "voice_provider_discontinued",
                    "PlayHT is discontinued; choose elevenlabs, polly, openai or local",
                ));
            }
            other => {
                return Err(ParseError::new(
                    "invalid_voice",
                    format!(
                        "unknown voice provider {other:?}; choose elevenlabs, polly, openai or local"
                    ),
                ));
            }
        };
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(ParseError::new(
                "invalid_voice",
                format!(
                    "voice name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
                ),
            ));
        }
        Ok(Voice {
            provider,
            name: name.to_owned(),
        })
    }

    /// The voice used when a bot does not name one: the offline synthesiser.
    pub fn default_voice() -> Self {
        Voice {
            provider: VoiceProvider::Local,
            name: "en-us".to_owned(),
        }
    }

    pub fn provider(&self) -> VoiceProvider {
        self.provider
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Voice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider.as_str(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let v = Voice::parse("elevenlabs:emma").unwrap();
        assert_eq!(v.provider(), VoiceProvider::ElevenLabs);
        assert_eq!(v.to_string(), "elevenlabs:emma");
        assert_eq!(
            Voice::parse("Polly:Joanna").unwrap().to_string(),
            "polly:Joanna"
        );
    }

    #[test]
    fn refuses_bad_voices() {
        assert_eq!(
            Voice::parse("playht:jennifer").unwrap_err().code,
            "voice_provider_discontinued"
        );
        assert!(
            Voice::parse("playht:x")
                .unwrap_err()
                .message
                .contains("discontinued")
        );
        assert_eq!(Voice::parse("emma").unwrap_err().code, "invalid_voice");
        assert_eq!(
            Voice::parse("azure:emma").unwrap_err().code,
            "invalid_voice"
        );
        assert_eq!(Voice::parse("openai:").unwrap_err().code, "invalid_voice");
        assert_eq!(
            Voice::parse("openai:a b").unwrap_err().code,
            "invalid_voice"
        );
    }
}
