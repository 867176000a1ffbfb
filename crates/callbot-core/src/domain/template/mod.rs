//! Per-call variables and the `{{name}}` placeholders of a bot's texts: finding them, checking
//! them when a text is accepted, and filling them when a call is placed and when it starts.

use super::ParseError;
use std::collections::BTreeMap;

/// At most this many variables per call (or per bot, as defaults).
pub const MAX_VARIABLES: usize = 50;
/// A variable's value: at most this many characters.
pub const MAX_VALUE_CHARS: usize = 500;
/// A variable's name: at most this many characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Names the platform fills itself, for every call.
pub const BUILT_INS: [&str; 5] = ["caller_number", "bot_number", "date", "time", "weekday"];

/// A letter or `_`, then letters, digits or `_`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_CHARS
}

/// One `{{…}}` of a text: where it is and the name inside (trimmed), or why it is no placeholder.
struct Found<'a> {
    start: usize,
    end: usize,
    name: Result<&'a str, String>,
}

fn scan(text: &str) -> impl Iterator<Item = Found<'_>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + text[at..].find("{{")?;
        let Some(len) = text[start + 2..].find("}}") else {
            at = text.len();
            return Some(Found {
                start,
                end: text.len(),
                name: Err(format!(
                    "`{{{{` at character {} is never closed with `}}}}`",
                    text[..start].chars().count() + 1
                )),
            });
        };
        let end = start + 2 + len + 2;
        at = end;
        let inner = text[start + 2..end - 2].trim();
        let name = if valid_name(inner) {
            Ok(inner)
        } else {
            Err(format!(
                "`{}` is not a placeholder: write {{{{name}}}} with a name of letters, digits and _ (at most {MAX_NAME_CHARS})",
                &text[start..end]
            ))
        };
        Some(Found { start, end, name })
    })
}

/// The names of `text`'s placeholders, each once, in order of first appearance; an error names
/// the first `{{…}}` that is not a placeholder.
pub fn placeholders<'a>(text: &'a str, field: &str) -> Result<Vec<&'a str>, ParseError> {
    let mut names: Vec<&str> = Vec::new();
    for found in scan(text) {
        let name = found
            .name
            .map_err(|why| ParseError::new("invalid_placeholder", format!("{field}: {why}")))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The values a call's placeholders are filled from: the call's own (outbound body, campaign
/// row) over the bot's defaults. Names as [`placeholders`] accepts them; values are text.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    /// No values.
    pub const EMPTY: Variables = Variables(BTreeMap::new());

    /// From a JSON object whose values are strings, numbers or booleans (numbers and booleans
    /// become their JSON text). Built-in names are refused: the platform fills those.
    pub fn parse(raw: &serde_json::Value, field: &str) -> Result<Self, ParseError> {
        let bad = |m: String| ParseError::new("invalid_variables", format!("{field}: {m}"));
        let serde_json::Value::Object(map) = raw else {
            return Err(bad("must be an object of names to text values".into()));
        };
        if map.len() > MAX_VARIABLES {
            return Err(bad(format!(
                "{} variables; the limit is {MAX_VARIABLES}",
                map.len()
            )));
        }
        let mut vars = BTreeMap::new();
        for (name, value) in map {
            if !valid_name(name) {
                return Err(bad(format!(
                    "{name:?} is not a variable name (letters, digits and _, not starting with a digit, at most {MAX_NAME_CHARS})"
                )));
            }
            if BUILT_INS.contains(&name.as_str()) {
                return Err(bad(format!(
                    "{name} is filled by the platform and cannot be set"
                )));
            }
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(bad(format!("{name} must be text, a number or a boolean")));
                }
            };
            if text.chars().count() > MAX_VALUE_CHARS {
                return Err(bad(format!(
                    "{name} is longer than {MAX_VALUE_CHARS} characters"
                )));
            }
            if text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(bad(format!("{name} contains control characters")));
            }
            vars.insert(name.clone(), text);
        }
        Ok(Self(vars))
    }

    /// As stored (a JSON object), `None` when there are none.
    pub fn to_stored(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.to_json().to_string())
    }

    pub fn from_stored(raw: Option<&str>) -> Result<Self, ParseError> {
        match raw {
            None | Some("") => Ok(Self::default()),
            Some(raw) => {
                let value: serde_json::Value = serde_json::from_str(raw)
                    .map_err(|e| ParseError::new("invalid_variables", e.to_string()))?;
                Self::parse(&value, "variables")
            }
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets a built-in's value (for what is sent with each turn; callers cannot set these).
    pub(crate) fn set_builtin(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), value.to_owned());
    }

    /// These values, with `defaults` for the names they lack.
    pub fn over(&self, defaults: &Variables) -> Variables {
        let mut all = defaults.0.clone();
        all.extend(self.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        Variables(all)
    }
}

/// The built-in values of one call, at one moment, in the bot's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltIns {
    pub caller_number: String,
    pub bot_number: String,
    /// "December 3, 2026"
    pub date: String,
    /// "2:05 PM"
    pub time: String,
    /// "Thursday"
    pub weekday: String,
}

impl BuiltIns {
    /// For a call between `caller_number` and `bot_number` at `now`, read in `zone`.
    pub fn at(
        caller_number: &str,
        bot_number: &str,
        now: jiff::Timestamp,
        zone: &super::Timezone,
    ) -> Self {
        let local = now.to_zoned_datetime(zone.zone().clone());
        Self {
            caller_number: caller_number.to_owned(),
            bot_number: bot_number.to_owned(),
            date: local.strftime("%B %-d, %Y").to_string(),
            time: local.strftime("%-I:%M %p").to_string(),
            weekday: local.strftime("%A").to_string(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "caller_number" => &self.caller_number,
            "bot_number" => &self.bot_number,
            "date" => &self.date,
            "time" => &self.time,
            "weekday" => &self.weekday,
            _ => return None,
        })
    }
}

/// Placeholders no value was found for, sorted, each once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for {}", .0.iter().map(|n| format!("{{{{{n}}}}}")).collect::<Vec<_>>().join(", "))]
pub struct Missing(pub Vec<String>);

/// `text` with every placeholder replaced by its value (variables first, then built-ins). A
/// `{{…}}` that is no placeholder is kept as written (accepted texts have none).
pub fn fill(text: &str, vars: &Variables, builtins: &BuiltIns) -> Result<String, Missing> {
    let (out, missing) = fill_or_blank(text, vars, builtins);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(Missing(missing))
    }
}

/// Like [`fill`], but a placeholder without a value becomes empty text (for a call nobody can be
/// asked about any more, e.g. an inbound call); the names left empty (sorted, each once) come
/// back beside the text.
pub fn fill_or_blank(text: &str, vars: &Variables, builtins: &BuiltIns) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut missing: Vec<String> = Vec::new();
    let mut copied = 0;
    for found in scan(text) {
        let Ok(name) = found.name else { continue };
        out.push_str(&text[copied..found.start]);
        copied = found.end;
        match vars.get(name).or_else(|| builtins.get(name)) {
            Some(value) => out.push_str(value),
            None if !missing.iter().any(|m| m == name) => missing.push(name.to_owned()),
            None => {}
        }
    }
    out.push_str(&text[copied..]);
    missing.sort();
    (out, missing)
}

#[cfg(test)]
mod tests;
