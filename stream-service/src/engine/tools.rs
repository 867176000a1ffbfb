//! The model's tools in LLM mode: what it is offered (`end_call`, `transfer_call` when the bot
//! declares numbers, and the bot's own tools), and how each call is answered — the built-ins
//! choose the turn's action, the bot's tools run through its webhook as signed `tool_call`
//! requests.

use super::Engine;
use super::turn::CallInfo;
use super::webhook::{self, Action};
use crate::llm::{ToolCall, ToolSpec};
use callbot_core::domain::PhoneNumber;
use serde::Serialize;
use serde_json::{Value, json};

/// The tools offered to the model: the built-ins, then the bot's own.
pub(super) fn offered(info: &CallInfo) -> Vec<ToolSpec> {
    offered_by(&info.brain)
}

/// The tools a bot with this `brain` offers its model (also what `callbot bench answers` offers).
pub fn offered_by(brain: &callbot_core::domain::Brain) -> Vec<ToolSpec> {
    let mut out = vec![ToolSpec {
        name: "end_call".into(),
        description: "Hang up. Call it when the caller says goodbye, says they need nothing more, or asks to end the call.".into(),
        parameters: json!({"type": "object", "properties": {
            "reason": {"type": "string", "description": "Why the call ends"}}}),
    }];
    if !brain.transfer_numbers().is_empty() {
        let allowed: Vec<&str> = brain
            .transfer_numbers()
            .iter()
            .map(|t| t.as_str())
            .collect();
        out.push(ToolSpec {
            name: "transfer_call".into(),
            description: format!(
                "Put the caller through to a person. Call it when the caller asks for a person, a human or someone else. Numbers: {}.",
                allowed.join(", ")
            ),
            parameters: json!({"type": "object", "properties": {
                "number": {"type": "string", "description": "E.164 number, e.g. +15551234567"}},
                "required": ["number"]}),
        });
    }
    out.extend(brain.tools().iter().map(|t| ToolSpec {
        name: t.name().to_owned(),
        description: t.description().to_owned(),
        parameters: t.parameters().clone(),
    }));
    out
}

/// A signed request to the bot's webhook within the turn deadline.
pub(super) async fn post(
    engine: &Engine,
    info: &CallInfo,
    url: &url::Url,
    body: &impl Serialize,
    idem: &str,
) -> Result<bytes::Bytes, webhook::Failure> {
    webhook::post_signed(
        engine.outbound(info.policy),
        url,
        &info.webhook_secret,
        info.policy,
        body,
        idem,
        info.webhook_timeout,
    )
    .await
}

/// Signed `tool_call` request to the bot's webhook.
#[derive(Debug, Serialize)]
struct ToolRequest<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    bot_id: &'a str,
    call_sid: &'a str,
    turn: u32,
    name: &'a str,
    arguments: Value,
    timestamp: String,
}

/// Runs one of the bot's tools through its webhook; the model gets `result`, or an error.
pub(super) async fn call_tool(
    engine: &Engine,
    info: &CallInfo,
    turn: u32,
    call: &ToolCall,
) -> String {
    let Some(url) = &info.webhook else {
        return json!({"error": "this bot has no webhook to run tools"}).to_string();
    };
    let arguments: Value = match serde_json::from_str(&call.arguments) {
        Ok(v) => v,
        Err(_) => return json!({"error": "the arguments were not valid JSON"}).to_string(),
    };
    let req = ToolRequest {
        kind: "tool_call",
        bot_id: info.bot_id.as_str(),
        call_sid: &info.call_sid,
        turn,
        name: &call.name,
        arguments,
        timestamp: callbot_core::time_fmt::rfc3339(callbot_core::time_fmt::now()),
    };
    let idem = format!("{}:{}:{}", info.call_sid, turn, call.id);
    let answer = post(engine, info, url, &req, &idem).await;
    match answer {
        Ok(body) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match v.get("result") {
                Some(r) => r.to_string(),
                None => json!({"error": v.get("error").cloned().unwrap_or(json!("the tool gave no result"))}).to_string(),
            },
            Err(_) => json!({"error": "the tool's answer was not JSON"}).to_string(),
        },
        Err(f) => {
            tracing::warn!(call_sid = %info.call_sid, tool = %call.name, reason = %f, "tool call failed");
            json!({"error": format!("the tool failed ({f})")}).to_string()
        }
    }
}

/// The model's `end_call` or `transfer_call`: the result it reads back, and the action chosen
/// (none for a number the bot may not transfer to).
pub(super) fn call_action(info: &CallInfo, call: &ToolCall) -> (String, Option<Action>) {
    if call.name == "end_call" {
        let result = json!({"result": "The call ends after this reply."});
        return (result.to_string(), Some(Action::Hangup));
    }
    let number = serde_json::from_str::<Value>(&call.arguments)
        .ok()
        .and_then(|v| v["number"].as_str().map(str::to_owned))
        .unwrap_or_default();
    match PhoneNumber::parse(&number) {
        Ok(n) if info.brain.may_transfer_to(n.as_str()) => {
            let result = json!({"result": "Transferring after this reply."});
            (result.to_string(), Some(Action::Transfer(n)))
        }
        _ => {
            let error = format!("{number:?} is not a number this bot may transfer to");
            (json!({ "error": error }).to_string(), None)
        }
    }
}
