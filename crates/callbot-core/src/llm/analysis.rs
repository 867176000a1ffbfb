//! The analysis of a finished call: the transcript goes to the model with one tool,
//! `record_analysis`, whose parameters are what the bot's plan asks for (a summary, its
//! `structured_data` schema, a pass/fail against its success criteria). What comes back is
//! checked (the structured data against the schema); a part that fails is recorded with why,
//! never made up.

use super::{ChatMessage, ChatRequest, Llm, LlmError, LlmEvent, ToolSpec};
use crate::domain::AnalysisPlan;
use crate::domain::analysis::schema_errors;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

const TOOL: &str = "record_analysis";

/// One line of the conversation: `user` (the caller) or `bot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub role: String,
    pub text: String,
}

/// The request for `plan` over `transcript`.
pub fn request(plan: &AnalysisPlan, model_configured: bool, transcript: &[Line]) -> ChatRequest {
    let mut props = Map::new();
    let mut required = Vec::new();
    let mut asks = Vec::new();
    if plan.summary(model_configured) {
        props.insert("summary".into(), json!({"type": "string",
            "description": "Two or three sentences: what the caller wanted and how the call ended."}));
        required.push("summary");
        asks.push("a short summary".to_owned());
    }
    if let Some(schema) = plan.structured_data() {
        props.insert("structured_data".into(), schema.clone());
        required.push("structured_data");
        asks.push("the structured data its schema describes (only what the call says; leave out what it does not)".to_owned());
    }
    if let Some(criteria) = plan.success_criteria() {
        props.insert(
            "success".into(),
            json!({"type": "object",
            "properties": {"passed": {"type": "boolean"}, "reason": {"type": "string"}},
            "required": ["passed", "reason"]}),
        );
        required.push("success");
        asks.push(format!(
            "whether the call met these success criteria, with a one-sentence reason: {criteria}"
        ));
    }
    let lines: Vec<String> = transcript
        .iter()
        .map(|l| {
            format!(
                "{}: {}",
                if l.role == "user" { "Caller" } else { "Bot" },
                l.text
            )
        })
        .collect();
    ChatRequest {
        messages: vec![
            ChatMessage::System(format!(
                "You analyse phone calls between a business's voice bot and a caller. Call the {TOOL} tool once with {}. Use only what the transcript says.",
                asks.join("; ")
            )),
            ChatMessage::User(format!("Transcript:\n{}", lines.join("\n"))),
        ],
        tools: vec![ToolSpec {
            name: TOOL.into(),
            description: "Records the analysis of the call.".into(),
            parameters: json!({"type": "object", "properties": props, "required": required}),
        }],
        max_tokens: 600,
        temperature: 0.0,
    }
}

/// The model's answer: the tool call's arguments, or a JSON object written as text (small models
/// sometimes answer that way).
async fn answer(llm: &dyn Llm, req: &ChatRequest) -> Result<Option<Value>, LlmError> {
    let mut stream = llm.chat(req).await?;
    let (mut text, mut args) = (String::new(), None);
    while let Some(event) = stream.next().await {
        match event? {
            LlmEvent::Text(t) => text.push_str(&t),
            LlmEvent::ToolCall(c) if c.name == TOOL && args.is_none() => args = Some(c.arguments),
            LlmEvent::ToolCall(_) | LlmEvent::Usage(_) => {}
            LlmEvent::Done(_) => break,
        }
    }
    let raw = args.unwrap_or(text);
    let trimmed = raw
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    Ok(serde_json::from_str::<Value>(trimmed)
        .ok()
        .filter(Value::is_object))
}

/// Analyses a call. Errors are the model's (to retry); what the model got wrong is in the
/// result's `errors`.
pub async fn analyze(
    llm: &dyn Llm,
    plan: &AnalysisPlan,
    model_configured: bool,
    transcript: &[Line],
) -> Result<Value, LlmError> {
    let req = request(plan, model_configured, transcript);
    let mut out = Map::new();
    let mut errors = Vec::new();
    let Some(got) = answer(llm, &req).await? else {
        errors.push("the model did not answer with the analysis as JSON".to_owned());
        out.insert("errors".into(), json!(errors));
        return Ok(Value::Object(out));
    };
    if plan.summary(model_configured) {
        match got.get("summary").and_then(Value::as_str).map(str::trim) {
            Some(s) if !s.is_empty() => {
                out.insert("summary".into(), json!(s));
            }
            _ => errors.push("summary: missing or not text".to_owned()),
        }
    }
    if let Some(schema) = plan.structured_data() {
        match got.get("structured_data") {
            Some(data) => {
                let problems = schema_errors(schema, data);
                if problems.is_empty() {
                    out.insert("structured_data".into(), data.clone());
                } else {
                    errors.extend(
                        problems
                            .into_iter()
                            .map(|p| format!("structured_data: {p}")),
                    );
                }
            }
            None => errors.push("structured_data: missing".to_owned()),
        }
    }
    if plan.success_criteria().is_some() {
        let s = got.get("success");
        match (
            s.and_then(|s| s.get("passed")).and_then(Value::as_bool),
            s.and_then(|s| s.get("reason")).and_then(Value::as_str),
        ) {
            (Some(passed), Some(reason)) => {
                out.insert(
                    "success".into(),
                    json!({"passed": passed, "reason": reason.trim()}),
                );
            }
            _ => errors.push("success: missing `passed` (true or false) or `reason`".to_owned()),
        }
    }
    if !errors.is_empty() {
        out.insert("errors".into(), json!(errors));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> AnalysisPlan {
        AnalysisPlan::parse(&json!({"success_criteria": "A table was booked",
            "structured_data": {"type": "object", "properties": {"party": {"type": "integer"}}, "required": ["party"]}}))
        .unwrap()
    }

    #[test]
    fn the_tool_asks_for_each_part_of_the_plan_and_carries_the_schema() {
        let t = [Line {
            role: "user".into(),
            text: "A table for four".into(),
        }];
        let req = request(&plan(), true, &t);
        let params = &req.tools[0].parameters;
        assert_eq!(
            params["required"],
            json!(["summary", "structured_data", "success"])
        );
        assert_eq!(
            params["properties"]["structured_data"]["required"],
            json!(["party"])
        );
        let ChatMessage::User(u) = &req.messages[1] else {
            panic!()
        };
        assert!(u.contains("Caller: A table for four"), "{u}");
        let no_summary = request(&plan(), false, &t);
        assert_eq!(
            no_summary.tools[0].parameters["required"],
            json!(["structured_data", "success"])
        );
    }
}
