//! How a bot decides that the caller has finished their turn, and how easily the caller
//! interrupts it (per bot; the platform's defaults otherwise).

use super::ParseError;

/// How the end of the caller's turn is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnDetection {
    /// The bot's end-of-turn silence, whatever was said.
    Silence,
    /// The silence the words so far suggest: shorter after a finished sentence, longer after
    /// "and", a filler or a number being given (the default: it measured best).
    #[default]
    Heuristic,
    /// The end-of-turn model's verdict on the sound of the utterance, with the words' rules.
    Model,
}

impl TurnDetection {
    pub const NAMES: &'static str = "model, heuristic or silence";

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw.trim() {
            "silence" => Ok(Self::Silence),
            "heuristic" => Ok(Self::Heuristic),
            "model" => Ok(Self::Model),
            other => Err(ParseError::new(
                "invalid_turn_detection",
                format!("{other:?} is not {}", Self::NAMES),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Silence => "silence",
            Self::Heuristic => "heuristic",
            Self::Model => "model",
        }
    }

    /// The older `smart_endpointing` flag: on is the heuristic, off the plain silence.
    pub fn from_smart(smart: bool) -> Self {
        if smart {
            Self::Heuristic
        } else {
            Self::Silence
        }
    }

    /// Whether the words so far shape the silence (`smart_endpointing` in the API's view).
    pub fn uses_words(self) -> bool {
        self != Self::Silence
    }

    /// `turn_detection` and the older `smart_endpointing` of one request: either, or both when
    /// they agree.
    pub fn from_request(
        turn_detection: Option<&str>,
        smart_endpointing: Option<bool>,
    ) -> Result<Option<Self>, ParseError> {
        let parsed = turn_detection.map(Self::parse).transpose()?;
        match (parsed, smart_endpointing) {
            (Some(t), Some(s)) if t.uses_words() != s => Err(ParseError::new(
                "conflict",
                format!(
                    "turn_detection {:?} contradicts smart_endpointing {s}; send only turn_detection",
                    t.as_str()
                ),
            )),
            (Some(t), _) => Ok(Some(t)),
            (None, s) => Ok(s.map(Self::from_smart)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_the_older_flag() {
        for t in [
            TurnDetection::Silence,
            TurnDetection::Heuristic,
            TurnDetection::Model,
        ] {
            assert_eq!(TurnDetection::parse(t.as_str()).unwrap(), t);
        }
        assert_eq!(
            TurnDetection::parse("vad").unwrap_err().code,
            "invalid_turn_detection"
        );
        assert_eq!(
            TurnDetection::from_request(None, Some(false)).unwrap(),
            Some(TurnDetection::Silence)
        );
        assert_eq!(
            TurnDetection::from_request(Some("model"), Some(true)).unwrap(),
            Some(TurnDetection::Model)
        );
        assert_eq!(
            TurnDetection::from_request(Some("silence"), Some(true))
                .unwrap_err()
                .code,
            "conflict"
        );
        assert_eq!(TurnDetection::from_request(None, None).unwrap(), None);
    }
}
