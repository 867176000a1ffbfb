//! What each voice provider can speak: the fixed lists (Polly, OpenAI), ElevenLabs' premade voices
//! by name, and the check that turns a parsed [`Voice`] into one this deployment can speak
//! (`voice_unavailable` when its provider is not configured, `unknown_voice` for a name a fixed
//! list does not have).

use super::{ParseError, Voice, VoiceProvider};

/// Amazon Polly voices: (voice id, language, has the neural engine). The id is the SDK's spelling.
pub const POLLY_VOICES: &[(&str, &str, bool)] = &[
    ("Joanna", "en-US", true),
    ("Matthew", "en-US", true),
    ("Ivy", "en-US", true),
    ("Kendra", "en-US", true),
    ("Kimberly", "en-US", true),
    ("Salli", "en-US", true),
    ("Joey", "en-US", true),
    ("Justin", "en-US", true),
    ("Kevin", "en-US", true),
    ("Ruth", "en-US", true),
    ("Stephen", "en-US", true),
    ("Danielle", "en-US", true),
    ("Gregory", "en-US", true),
    ("Amy", "en-GB", true),
    ("Emma", "en-GB", true),
    ("Brian", "en-GB", true),
    ("Arthur", "en-GB", true),
    ("Olivia", "en-AU", true),
    ("Nicole", "en-AU", false),
    ("Russell", "en-AU", false),
    ("Aria", "en-NZ", true),
    ("Ayanda", "en-ZA", true),
    ("Niamh", "en-IE", true),
    ("Kajal", "en-IN", true),
    ("Raveena", "en-IN", false),
    ("Aditi", "en-IN", false),
    ("Geraint", "en-GB-WLS", false),
    ("Lea", "fr-FR", true),
    ("Celine", "fr-FR", false),
    ("Mathieu", "fr-FR", false),
    ("Vicki", "de-DE", true),
    ("Marlene", "de-DE", false),
    ("Hans", "de-DE", false),
    ("Lucia", "es-ES", true),
    ("Conchita", "es-ES", false),
    ("Enrique", "es-ES", false),
    ("Lupe", "es-US", true),
    ("Mia", "es-MX", true),
    ("Camila", "pt-BR", true),
    ("Vitoria", "pt-BR", true),
    ("Bianca", "it-IT", true),
    ("Carla", "it-IT", false),
    ("Giorgio", "it-IT", false),
    ("Takumi", "ja-JP", true),
    ("Mizuki", "ja-JP", false),
    ("Seoyeon", "ko-KR", true),
    ("Zhiyu", "cmn-CN", true),
];

/// OpenAI speech voices (`/audio/speech`).
pub const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];

/// ElevenLabs' premade voices: (name, voice id). Other names are looked up in the account's
/// voice list when the call speaks; a raw voice id is used as it is.
pub const ELEVENLABS_PREMADE: &[(&str, &str)] = &[
    ("rachel", "21m00Tcm4TlvDq8ikWAM"),
    ("drew", "29vD33N1CtxCmqQRPOHJ"),
    ("clyde", "2EiwWnXFnvU5JabPnv8n"),
    ("paul", "5Q0t7uMcjvnagumLfvZi"),
    ("domi", "AZnzlk1XvdvUeBnXmlld"),
    ("dave", "CYw3kZ02Hs0563khs1Fj"),
    ("fin", "D38z5RcWu1voky8WS1ja"),
    ("sarah", "EXAVITQu4vr4xnSDxMaL"),
    ("antoni", "ErXwobaYiN019PkySvjV"),
    ("thomas", "GBv7mTt0atIp3Br8iCZE"),
    ("charlie", "IKne3meq5aSn9XLyUdCD"),
    ("george", "JBFqnCBsd6RMkjVDRZzb"),
    ("emily", "LcfcDJNUP1GQjkzn1xUU"),
    ("elli", "MF3mGyEYCl7XYWbV9V6O"),
    ("callum", "N2lVS1w4EtoT3dr4eOWO"),
    ("patrick", "ODq5zmih8GrVes37Dizd"),
    ("harry", "SOYHLrjzK2X1ezoPC6cr"),
    ("liam", "TX3LPaxmHKxFdv7VOQHJ"),
    ("dorothy", "ThT5KcBeYPX3keUQqHPh"),
    ("josh", "TxGEqnHWrfWFTfGW9XjX"),
    ("arnold", "VR6AewLTigWG4xSOukaG"),
    ("charlotte", "XB0fDUnXU5powFXDhCwa"),
    ("alice", "Xb7hH8MSUJpSbSDYk0k2"),
    ("matilda", "XrExE9yKIg1WjnnlVkGX"),
    ("james", "ZQe5CZNOzWyzPSCn5a3c"),
    ("joseph", "Zlb1dXrM653N07WRdFW3"),
    ("jeremy", "bVMeCyTHy58xNoL34h3p"),
    ("michael", "flq6f7yk4E4fJM5XTYuZ"),
    ("ethan", "g5CIjZEefAph4nQFvHAz"),
    ("chris", "iP95p4xoKVk53GoZ742B"),
    ("gigi", "jBpfuIE2acCO8z3wKNLl"),
    ("freya", "jsCqWAovK2LkecY7zXl4"),
    ("brian", "nPczCjzI2devNBz1zQrb"),
    ("grace", "oWAxZDx7w5VEj9dCyTzz"),
    ("daniel", "onwK4e9ZLuTAKqWW03F9"),
    ("lily", "pFZP5JQG7iQjIQuC4Bku"),
    ("serena", "pMsXgVXv3BLzUgSXRplE"),
    ("adam", "pNInz6obpgDQGcFmaJgB"),
    ("nicole", "piTKgcLEGmPE4e6mEKli"),
    ("bill", "pqHfZKP75CvOlQylNhV4"),
    ("jessie", "t0jbNlBVZ17f02VDIeMI"),
    ("sam", "yoZ06aMxZJJ28mfd3POQ"),
    ("glinda", "z9fAnlkpzviPz146aGWa"),
    ("giovanni", "zcAOhNBS3c14rBihAFp1"),
    ("mimi", "zrHiDhphv9ZnVXBqCLjz"),
];

/// A few of the offline synthesiser's (espeak-ng) voices; any espeak-ng voice name is accepted.
pub const LOCAL_VOICES: &[&str] = &[
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-029",
    "fr-fr",
    "de",
    "es",
    "it",
    "pt-br",
    "nl",
];

/// Which providers this deployment can speak with, and for each missing one the setting that
/// would enable it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceAvailability {
    pub elevenlabs: bool,
    pub polly: bool,
    pub openai: bool,
}

impl VoiceAvailability {
    pub fn configured(&self, p: VoiceProvider) -> bool {
        match p {
            VoiceProvider::ElevenLabs => self.elevenlabs,
            VoiceProvider::Polly => self.polly,
            VoiceProvider::OpenAi => self.openai,
            VoiceProvider::Local => true,
        }
    }

    /// What an operator sets to make `p` available.
    pub fn missing_setting(p: VoiceProvider) -> &'static str {
        match p {
            VoiceProvider::ElevenLabs => "ELEVENLABS_API_KEY",
            VoiceProvider::Polly => {
                "CALLBOT_POLLY=on (with AWS credentials: AWS_ACCESS_KEY_ID or a task role)"
            }
            VoiceProvider::OpenAi => "OPENAI_API_KEY",
            VoiceProvider::Local => "",
        }
    }

    /// `voice` as this deployment will speak it (Polly ids in the SDK's spelling, OpenAI names in
    /// lower case), or why it cannot.
    pub fn check(&self, voice: &Voice) -> Result<Voice, ParseError> {
        let p = voice.provider();
        if !self.configured(p) {
            return Err(ParseError::new(
                "voice_unavailable",
                format!(
                    "voice {voice} needs the {} provider, which this deployment has not configured: set {}",
                    p.as_str(),
                    Self::missing_setting(p)
                ),
            ));
        }
        let name = voice.name();
        let canonical = match p {
            VoiceProvider::Polly => polly_voice(name).map(|(id, _, _)| id.to_owned()),
            VoiceProvider::OpenAi => OPENAI_VOICES
                .iter()
                .find(|v| v.eq_ignore_ascii_case(name))
                .map(|v| (*v).to_owned()),
            VoiceProvider::ElevenLabs | VoiceProvider::Local => Some(name.to_owned()),
        };
        match canonical {
            Some(n) => Voice::parse(&format!("{}:{n}", p.as_str())),
            None => {
                let some: Vec<&str> = match p {
                    VoiceProvider::Polly => POLLY_VOICES.iter().take(6).map(|v| v.0).collect(),
                    _ => OPENAI_VOICES.iter().take(6).copied().collect(),
                };
                Err(ParseError::new(
                    "unknown_voice",
                    format!(
                        "{} has no voice {name:?}; try one of {} (GET /voices lists them all)",
                        p.as_str(),
                        some.join(", ")
                    ),
                ))
            }
        }
    }
}

/// A Polly voice by name, case-insensitively: (id, language, neural).
pub fn polly_voice(name: &str) -> Option<(&'static str, &'static str, bool)> {
    POLLY_VOICES
        .iter()
        .find(|v| v.0.eq_ignore_ascii_case(name))
        .copied()
}

/// An ElevenLabs premade voice's id by name, case-insensitively.
pub fn elevenlabs_premade(name: &str) -> Option<&'static str> {
    ELEVENLABS_PREMADE
        .iter()
        .find(|v| v.0.eq_ignore_ascii_case(name))
        .map(|v| v.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> VoiceAvailability {
        VoiceAvailability {
            elevenlabs: true,
            polly: true,
            openai: true,
        }
    }

    #[test]
    fn canonical_names_and_refusals() {
        let v = |s| Voice::parse(s).unwrap();
        assert_eq!(
            all().check(&v("polly:joanna")).unwrap().to_string(),
            "polly:Joanna"
        );
        assert_eq!(
            all().check(&v("openai:Coral")).unwrap().to_string(),
            "openai:coral"
        );
        assert_eq!(
            all().check(&v("elevenlabs:emma")).unwrap().to_string(),
            "elevenlabs:emma"
        );
        let e = all().check(&v("polly:emmanuelle")).unwrap_err();
        assert_eq!(e.code, "unknown_voice");
        assert!(e.message.contains("Joanna"), "{}", e.message);
        assert_eq!(
            all().check(&v("openai:emma")).unwrap_err().code,
            "unknown_voice"
        );
        let none = VoiceAvailability::default();
        let e = none.check(&v("elevenlabs:emma")).unwrap_err();
        assert_eq!(e.code, "voice_unavailable");
        assert!(e.message.contains("ELEVENLABS_API_KEY"), "{}", e.message);
        assert!(none.check(&v("local:en-gb")).is_ok());
        assert_eq!(elevenlabs_premade("George"), Some("JBFqnCBsd6RMkjVDRZzb"));
        assert_eq!(polly_voice("ruth").map(|v| v.2), Some(true));
    }
}
