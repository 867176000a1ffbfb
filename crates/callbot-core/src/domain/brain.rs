//! How a bot decides what to say: `webhook` mode (the LLM suggests, the business's webhook
//! decides) or `llm` mode (the LLM answers, with the bot's tools served by the webhook), whether
//! suggestions are computed at all, and the numbers the model may transfer a call to.

use super::ParseError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotMode {
    /// The webhook decides each reply (with an LLM suggestion in the request).
    #[default]
    Webhook,
    /// The LLM answers directly, streamed into speech.
    Llm,
}

impl BotMode {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "webhook" => Ok(Self::Webhook),
            "llm" => Ok(Self::Llm),
            other => Err(ParseError::new(
                "invalid_mode",
                format!("mode must be \"webhook\" or \"llm\", got {other:?}"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Llm => "llm",
        }
    }
}

/// Tool names the platform itself offers to every LLM bot.
pub const BUILTIN_TOOLS: [&str; 2] = ["end_call", "transfer_call"];
const MAX_TOOLS: usize = 16;

/// A function the model may call; the bot's webhook runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    name: String,
    description: String,
    /// A JSON Schema object describing the arguments.
    parameters: Value,
}

impl Tool {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    pub fn parameters(&self) -> &Value {
        &self.parameters
    }

    /// The API's form, `{name, description, parameters}`, which [`Tool::parse`] reads back.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"name": self.name, "description": self.description, "parameters": self.parameters})
    }

    /// `{name, description, parameters}`: a name of 1-64 letters, digits, `_` or `-` (not one of
    /// the built-ins), a description up to 1,024 characters, parameters a JSON Schema object.
    pub fn parse(raw: &Value) -> Result<Self, ParseError> {
        let bad = |m: String| ParseError::new("invalid_tool", m);
        let obj = raw
            .as_object()
            .ok_or_else(|| bad("each tool is an object {name, description, parameters}".into()))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "name" | "description" | "parameters"))
        {
            return Err(bad(format!("unknown tool field {k:?}")));
        }
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("tool name is required".into()))?;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad(format!(
                "tool name {name:?} must be 1-64 letters, digits, _ or -"
            )));
        }
        if BUILTIN_TOOLS.contains(&name) {
            return Err(bad(format!("{name:?} is a built-in tool")));
        }
        let description = obj
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if description.chars().count() > 1024 {
            return Err(bad(format!(
                "the description of {name:?} is over 1,024 characters"
            )));
        }
        let parameters = obj
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        if parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(bad(format!(
                "the parameters of {name:?} must be a JSON Schema with \"type\": \"object\""
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            description,
            parameters,
        })
    }
}

/// A number the model may transfer to: E.164 (`+15551234567`), or a prefix ending in `*` (`+1555*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransferTarget(String);

impl TransferTarget {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let raw = raw.trim();
        let digits = raw.strip_suffix('*').unwrap_or(raw);
        let ok = digits.starts_with('+')
            && digits.len() >= 2
            && digits.len() <= 16
            && digits[1..].chars().all(|c| c.is_ascii_digit());
        if !ok {
            return Err(ParseError::new(
                "invalid_transfer_number",
                format!("{raw:?} is not an E.164 number (+15551234567) or prefix (+1555*)"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn allows(&self, number: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => number.starts_with(prefix),
            None => number == self.0,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The bot's thinking settings; the default is webhook mode with suggestions on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brain {
    mode: BotMode,
    llm_suggestion: bool,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default)]
    transfer_numbers: Vec<TransferTarget>,
    /// Where a call goes when the business webhook keeps failing (E.164); `None`: the call ends
    /// politely instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback_number: Option<String>,
}

impl Default for Brain {
    fn default() -> Self {
        Self {
            mode: BotMode::Webhook,
            llm_suggestion: true,
            tools: Vec::new(),
            transfer_numbers: Vec::new(),
            fallback_number: None,
        }
    }
}

impl Brain {
    /// Fails with the offending field's name.
    pub fn parse(
        mode: BotMode,
        llm_suggestion: bool,
        tools: &[Value],
        transfer_numbers: &[String],
    ) -> Result<Self, (&'static str, ParseError)> {
        if tools.len() > MAX_TOOLS {
            return Err((
                "tools",
                ParseError::new("invalid_tool", format!("at most {MAX_TOOLS} tools")),
            ));
        }
        let tools: Vec<Tool> = tools
            .iter()
            .map(Tool::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| ("tools", e))?;
        for (i, t) in tools.iter().enumerate() {
            if tools[..i].iter().any(|o| o.name == t.name) {
                return Err((
                    "tools",
                    ParseError::new("invalid_tool", format!("tool {:?} is listed twice", t.name)),
                ));
            }
        }
        if transfer_numbers.len() > 32 {
            return Err((
                "transfer_numbers",
                ParseError::new("invalid_transfer_number", "at most 32 numbers or prefixes"),
            ));
        }
        let transfer_numbers = transfer_numbers
            .iter()
            .map(|n| TransferTarget::parse(n))
            .collect::<Result<_, _>>()
            .map_err(|e| ("transfer_numbers", e))?;
        Ok(Self {
            mode,
            llm_suggestion,
            tools,
            transfer_numbers,
            fallback_number: None,
        })
    }

    /// The same brain with `number` as the fallback number (`None` removes it).
    pub fn with_fallback_number(mut self, number: Option<&crate::domain::PhoneNumber>) -> Self {
        self.fallback_number = number.map(|n| n.as_str().to_owned());
        self
    }
    /// Where the call goes when the webhook keeps failing.
    pub fn fallback_number(&self) -> Option<&str> {
        self.fallback_number.as_deref()
    }

    pub fn mode(&self) -> BotMode {
        self.mode
    }
    pub fn llm_suggestion(&self) -> bool {
        self.llm_suggestion
    }
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }
    pub fn transfer_numbers(&self) -> &[TransferTarget] {
        &self.transfer_numbers
    }
    /// Whether the call may be transferred to `number` (E.164): one of `transfer_numbers`, or the
    /// fallback number.
    pub fn may_transfer_to(&self, number: &str) -> bool {
        self.transfer_numbers.iter().any(|t| t.allows(number))
            || self.fallback_number.as_deref() == Some(number)
    }

    /// Stored form (JSON), `None` for the defaults.
    pub fn to_stored(&self) -> Option<String> {
        (*self != Self::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    pub fn from_stored(raw: Option<&str>) -> Result<Self, ParseError> {
        match raw {
            None | Some("") => Ok(Self::default()),
            Some(r) => {
                serde_json::from_str(r).map_err(|e| ParseError::new("corrupt", e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_and_numbers_are_checked() {
        let ok = json!({"name": "check_hours", "description": "Opening hours",
                        "parameters": {"type": "object", "properties": {"day": {"type": "string"}}}});
        let b = Brain::parse(
            BotMode::Llm,
            false,
            std::slice::from_ref(&ok),
            &["+1555*".into(), "+15551230000".into()],
        )
        .unwrap();
        assert_eq!(b.tools()[0].name(), "check_hours");
        assert_eq!(Tool::parse(&b.tools()[0].to_json()).unwrap(), b.tools()[0]);
        assert!(b.may_transfer_to("+15559876543"));
        assert!(!b.may_transfer_to("+14155550000"));
        assert_eq!(Brain::from_stored(b.to_stored().as_deref()).unwrap(), b);
        assert_eq!(Brain::default().to_stored(), None);
        for bad in [
            json!({"name": "end_call"}),
            json!({"name": "has space"}),
            json!({"name": "f", "parameters": {"type": "string"}}),
            json!({"name": "f", "extra": 1}),
            json!("f"),
        ] {
            assert_eq!(
                Brain::parse(BotMode::Llm, true, &[bad], &[]).unwrap_err().0,
                "tools"
            );
        }
        assert_eq!(
            Brain::parse(BotMode::Llm, true, &[ok.clone(), ok], &[])
                .unwrap_err()
                .0,
            "tools"
        );
        assert_eq!(
            Brain::parse(BotMode::Llm, true, &[], &["5551234".into()])
                .unwrap_err()
                .0,
            "transfer_numbers"
        );
        assert!(BotMode::parse("robot").is_err());
    }
}
