//! What a bot asks of the analysis after each call: a summary, `structured_data` (a JSON Schema
//! the model fills from the transcript) and `success_criteria` (the model answers pass or fail
//! with a reason).

use super::ParseError;
use serde_json::{Map, Value, json};

/// The largest schema or criteria text accepted (bytes of JSON / characters).
const MAX_SCHEMA_BYTES: usize = 16 * 1024;
const MAX_CRITERIA_CHARS: usize = 2_000;

/// A bot's analysis plan. `summary: None` means the default: on when a model is configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalysisPlan {
    summary: Option<bool>,
    structured_data: Option<Value>,
    success_criteria: Option<String>,
}

fn bad(message: impl Into<String>) -> ParseError {
    ParseError::new("invalid_analysis", message)
}

/// Refuses `$ref`s that leave the schema (they would be fetched).
fn local_refs_only(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.iter().all(|(k, v)| {
            (k != "$ref" || v.as_str().is_some_and(|r| r.starts_with('#'))) && local_refs_only(v)
        }),
        Value::Array(a) => a.iter().all(local_refs_only),
        _ => true,
    }
}

impl AnalysisPlan {
    /// `{"summary": true, "structured_data": {JSON Schema}, "success_criteria": "…"}`, each
    /// field optional.
    pub fn parse(raw: &Value) -> Result<Self, ParseError> {
        let o = raw.as_object().ok_or_else(|| {
            bad("analysis must be an object {summary, structured_data, success_criteria}")
        })?;
        if let Some(k) = o.keys().find(|k| {
            !matches!(
                k.as_str(),
                "summary" | "structured_data" | "success_criteria"
            )
        }) {
            return Err(bad(format!("analysis: unknown field {k:?}")));
        }
        let summary = match o.get("summary") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(bad("analysis.summary must be true or false")),
        };
        let structured_data = match o.get("structured_data") {
            None | Some(Value::Null) => None,
            Some(schema) => Some(Self::schema(schema)?),
        };
        let success_criteria = match o.get("success_criteria") {
            None | Some(Value::Null) => None,
            Some(Value::String(s))
                if !s.trim().is_empty() && s.chars().count() <= MAX_CRITERIA_CHARS =>
            {
                Some(s.trim().to_owned())
            }
            Some(_) => {
                return Err(bad(format!(
                    "analysis.success_criteria must be text of 1 to {MAX_CRITERIA_CHARS} characters"
                )));
            }
        };
        Ok(Self {
            summary,
            structured_data,
            success_criteria,
        })
    }

    fn schema(schema: &Value) -> Result<Value, ParseError> {
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(bad(
                "analysis.structured_data must be a JSON Schema with \"type\": \"object\"",
            ));
        }
        if schema.to_string().len() > MAX_SCHEMA_BYTES {
            return Err(bad(format!(
                "analysis.structured_data is larger than {MAX_SCHEMA_BYTES} bytes"
            )));
        }
        if !local_refs_only(schema) {
            return Err(bad(
                "analysis.structured_data may only use $refs inside itself (\"#/…\")",
            ));
        }
        jsonschema::validator_for(schema).map_err(|e| {
            bad(format!(
                "analysis.structured_data is not a valid JSON Schema: {e}"
            ))
        })?;
        Ok(schema.clone())
    }

    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        if let Some(s) = self.summary {
            o.insert("summary".into(), json!(s));
        }
        if let Some(s) = &self.structured_data {
            o.insert("structured_data".into(), s.clone());
        }
        if let Some(s) = &self.success_criteria {
            o.insert("success_criteria".into(), json!(s));
        }
        Value::Object(o)
    }

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether a summary is written (the default follows whether a model is configured).
    pub fn summary(&self, model_configured: bool) -> bool {
        self.summary.unwrap_or(model_configured)
    }

    pub fn structured_data(&self) -> Option<&Value> {
        self.structured_data.as_ref()
    }

    pub fn success_criteria(&self) -> Option<&str> {
        self.success_criteria.as_deref()
    }

    /// Anything to ask a model for, when one is configured or not.
    pub fn wants_model(&self, model_configured: bool) -> bool {
        self.summary(model_configured)
            || self.structured_data.is_some()
            || self.success_criteria.is_some()
    }

    /// Asks for what only a model can give, explicitly.
    pub fn explicitly_needs_model(&self) -> bool {
        self.summary == Some(true)
            || self.structured_data.is_some()
            || self.success_criteria.is_some()
    }
}

/// Checks `data` against `schema`; the first few problems, each with where it is.
pub fn schema_errors(schema: &Value, data: &Value) -> Vec<String> {
    match jsonschema::validator_for(schema) {
        Ok(v) => v
            .iter_errors(data)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect(),
        Err(e) => vec![format!("the schema does not compile: {e}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"party": {"type": "integer", "minimum": 1}},
               "required": ["party"]})
    }

    #[test]
    fn a_plan_round_trips_and_the_summary_follows_the_model_by_default() {
        let p = AnalysisPlan::parse(
            &json!({"structured_data": schema(), "success_criteria": "A table was booked"}),
        )
        .unwrap();
        assert_eq!(AnalysisPlan::parse(&p.to_json()).unwrap(), p);
        assert!(p.summary(true) && !p.summary(false));
        assert!(p.explicitly_needs_model());
        let off = AnalysisPlan::parse(&json!({"summary": false})).unwrap();
        assert!(!off.wants_model(true) && !off.explicitly_needs_model());
    }

    #[test]
    fn bad_plans_are_refused() {
        for bad in [
            json!({"structured_data": {"type": "string"}}),
            json!({"structured_data": {"type": "object", "properties": {"a": {"type": 7}}}}),
            json!({"structured_data": {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}}),
            json!({"success_criteria": ""}),
            json!({"summary": "yes"}),
            json!({"sentiment": true}),
            json!([]),
        ] {
            assert_eq!(
                AnalysisPlan::parse(&bad).unwrap_err().code,
                "invalid_analysis",
                "{bad}"
            );
        }
    }

    #[test]
    fn data_is_checked_against_the_schema_with_the_place_of_each_problem() {
        assert!(schema_errors(&schema(), &json!({"party": 4})).is_empty());
        let errs = schema_errors(&schema(), &json!({"party": 0}));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("/party"), "{errs:?}");
        assert!(!schema_errors(&schema(), &json!({})).is_empty());
    }
}
