//! A bot's per-call options, stored together as one JSON document: its time zone (for the
//! `{{date}}`, `{{time}}` and `{{weekday}}` placeholders), its default variables and what an
//! answering machine gets.

use super::{AnalysisPlan, ParseError, Timezone, Variables, VoicemailMessage};
use serde_json::{Map, Value, json};

/// What the bot does when an answering machine (or a fax) takes its outbound call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Voicemail {
    /// Hang up at once.
    #[default]
    HangUp,
    /// Wait for the greeting's end (its beep), say this, then hang up.
    LeaveMessage(VoicemailMessage),
}

impl Voicemail {
    /// From the API's `{"action": "hang_up"}` or `{"action": "leave_message", "message": …}`.
    pub fn parse(raw: &Value) -> Result<Self, ParseError> {
        let bad = |m: &str| ParseError::new("invalid_voicemail", format!("voicemail: {m}"));
        let Value::Object(o) = raw else {
            return Err(bad("must be an object with an `action`"));
        };
        if let Some(extra) = o.keys().find(|k| *k != "action" && *k != "message") {
            return Err(bad(&format!("unknown field {extra:?}")));
        }
        match (o.get("action").and_then(Value::as_str), o.get("message")) {
            (Some("hang_up"), None) => Ok(Voicemail::HangUp),
            (Some("hang_up"), Some(_)) => Err(bad("a message goes with `leave_message` only")),
            (Some("leave_message"), Some(Value::String(m))) => {
                Ok(Voicemail::LeaveMessage(VoicemailMessage::parse(m)?))
            }
            (Some("leave_message"), _) => Err(bad("`leave_message` needs a `message` (text)")),
            _ => Err(bad("`action` must be \"hang_up\" or \"leave_message\"")),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Voicemail::HangUp => json!({"action": "hang_up"}),
            Voicemail::LeaveMessage(m) => json!({"action": "leave_message", "message": m.as_str()}),
        }
    }

    /// The message to leave, if any.
    pub fn message(&self) -> Option<&VoicemailMessage> {
        match self {
            Voicemail::HangUp => None,
            Voicemail::LeaveMessage(m) => Some(m),
        }
    }
}

/// Options that shape each call of a bot. The default (UTC, no variables) is stored as nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BotOptions {
    pub timezone: Timezone,
    /// Values for placeholders a call does not set itself (inbound calls set none).
    pub variables: Variables,
    /// What an answering machine gets on an outbound call.
    pub voicemail: Voicemail,
    /// What the analysis after each call produces.
    pub analysis: AnalysisPlan,
}

impl BotOptions {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// As stored: a JSON object, `None` for the defaults.
    pub fn to_stored(&self) -> Option<String> {
        if self.is_default() {
            return None;
        }
        let mut doc = Map::new();
        doc.insert("timezone".into(), json!(self.timezone.as_str()));
        if !self.variables.is_empty() {
            doc.insert("variables".into(), self.variables.to_json());
        }
        if self.voicemail != Voicemail::HangUp {
            doc.insert("voicemail".into(), self.voicemail.to_json());
        }
        if !self.analysis.is_default() {
            doc.insert("analysis".into(), self.analysis.to_json());
        }
        Some(Value::Object(doc).to_string())
    }

    pub fn from_stored(raw: Option<&str>) -> Result<Self, ParseError> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Self::default());
        };
        let doc: Value = serde_json::from_str(raw)
            .map_err(|e| ParseError::new("invalid_options", e.to_string()))?;
        Ok(Self {
            timezone: match doc.get("timezone").and_then(Value::as_str) {
                Some(name) => Timezone::parse(name)?,
                None => Timezone::utc(),
            },
            variables: match doc.get("variables") {
                Some(v) => Variables::parse(v, "variables")?,
                None => Variables::default(),
            },
            voicemail: match doc.get("voicemail") {
                Some(v) => Voicemail::parse(v)?,
                None => Voicemail::HangUp,
            },
            analysis: match doc.get("analysis") {
                Some(v) => AnalysisPlan::parse(v)?,
                None => AnalysisPlan::default(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_store_as_nothing_and_the_rest_round_trips() {
        assert_eq!(BotOptions::default().to_stored(), None);
        assert_eq!(
            BotOptions::from_stored(None).unwrap(),
            BotOptions::default()
        );
        let o = BotOptions {
            timezone: Timezone::parse("Europe/Paris").unwrap(),
            variables: Variables::parse(&json!({"shop": "Bella Vista"}), "variables").unwrap(),
            voicemail: Voicemail::parse(
                &json!({"action": "leave_message", "message": "Hi {{name}}, call us back."}),
            )
            .unwrap(),
            analysis: AnalysisPlan::parse(&json!({"success_criteria": "Booked"})).unwrap(),
        };
        assert_eq!(
            BotOptions::from_stored(o.to_stored().as_deref()).unwrap(),
            o
        );
    }

    #[test]
    fn voicemail_actions_are_checked() {
        assert_eq!(
            Voicemail::parse(&json!({"action": "hang_up"})).unwrap(),
            Voicemail::HangUp
        );
        for bad in [
            json!("hang_up"),
            json!({"action": "sing"}),
            json!({"action": "leave_message"}),
            json!({"action": "leave_message", "message": ""}),
            json!({"action": "hang_up", "message": "x"}),
            json!({"action": "hang_up", "extra": 1}),
        ] {
            assert!(Voicemail::parse(&bad).is_err(), "{bad}");
        }
        let e = Voicemail::parse(&json!({"action": "leave_message", "message": "Hi {{a b}}"}))
            .unwrap_err();
        assert_eq!(e.code, "invalid_placeholder");
    }
}
