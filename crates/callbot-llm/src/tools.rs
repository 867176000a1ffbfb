//! Tools for a model without native tool calling: the functions are described in the system
//! prompt, the model answers `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
//! (the convention SmolLM2 and Qwen-style chat models were tuned on), and the reply is parsed
//! back into OpenAI `tool_calls`. Earlier tool calls and results are rendered the same way.

use serde_json::Value;

pub const OPEN: &str = "<tool_call>";
pub const CLOSE: &str = "</tool_call>";

/// The paragraph appended to the system prompt when a request offers tools: each function as a
/// line (name, what it is for, its arguments), and the exact form of a call with an example, so
/// a small model can follow it.
pub fn describe(tools: &[Value]) -> String {
    let mut out = String::from("Functions you can call:\n");
    let mut example = None;
    for t in tools {
        let f = t.get("function").unwrap_or(t);
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        let desc = f
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let args: Vec<String> = f
            .pointer("/parameters/properties")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .map(|(k, v)| {
                        let ty = v.get("type").and_then(Value::as_str).unwrap_or("string");
                        format!("{k} ({ty})")
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!("- {name}: {desc}"));
        if !args.is_empty() {
            out.push_str(&format!(" Arguments: {}.", args.join(", ")));
        }
        out.push('\n');
        if example.is_none() {
            example = Some(name.to_owned());
        }
    }
    out.push_str(&format!(
        "To call a function, reply with only {OPEN}{{\"name\": \"<function>\", \"arguments\": {{...}}}}{CLOSE} and nothing else, e.g. {OPEN}{{\"name\": \"{}\", \"arguments\": {{}}}}{CLOSE}\n",
        example.unwrap_or_default()
    ));
    out
}

/// Where a streamed reply stands with respect to a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Too little text to tell: hold it back.
    Undecided,
    /// Plain text: stream it.
    Text,
    /// A tool call: collect it.
    ToolCall,
}

/// Classifies the start of a reply (leading whitespace ignored).
pub fn shape(so_far: &str) -> Shape {
    let t = so_far.trim_start();
    if t.is_empty() || (t.len() < OPEN.len() && OPEN.starts_with(t)) {
        Shape::Undecided
    } else if t.starts_with(OPEN) {
        Shape::ToolCall
    } else {
        Shape::Text
    }
}

/// The function name and arguments (a JSON string, as OpenAI sends them) of a collected call.
pub fn parse(reply: &str) -> Option<(String, String)> {
    let body = reply.trim_start().strip_prefix(OPEN)?;
    let body = body.split(CLOSE).next()?.trim();
    let v: Value = serde_json::from_str(body).ok()?;
    // SmolLM2 was tuned to write a list of calls: the first is taken.
    let v = match v {
        Value::Array(mut calls) if !calls.is_empty() => calls.swap_remove(0),
        v => v,
    };
    let name = v.get("name")?.as_str()?.to_owned();
    let args = match v.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(a) => a.to_string(),
        None => "{}".to_owned(),
    };
    Some((name, args))
}

/// An assistant turn that called a function, as the model would have written it.
pub fn render_call(name: &str, arguments: &str) -> String {
    let args: Value = serde_json::from_str(arguments).unwrap_or(Value::String(arguments.into()));
    format!(
        "{OPEN}{}{CLOSE}",
        serde_json::json!({"name": name, "arguments": args})
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_parsing() {
        assert_eq!(shape(""), Shape::Undecided);
        assert_eq!(shape(" <tool"), Shape::Undecided);
        assert_eq!(shape("Sure"), Shape::Text);
        assert_eq!(shape("<tool_call>{"), Shape::ToolCall);
        assert_eq!(
            parse(r#"<tool_call>{"name": "check", "arguments": {"day": "Sunday"}}</tool_call>"#),
            Some(("check".into(), r#"{"day":"Sunday"}"#.into()))
        );
        assert_eq!(parse("<tool_call>not json</tool_call>"), None);
        let r = render_call("end_call", "{}");
        assert_eq!(parse(&r), Some(("end_call".into(), "{}".into())));
        assert!(describe(&[serde_json::json!({"type":"function","function":{"name":"f","description":"d","parameters":{}}})]).contains("- f: d"));
        let d = describe(&[
            serde_json::json!({"type":"function","function":{"name":"book","description":"Books.","parameters":{"properties":{"size":{"type":"integer"}}}}}),
        ]);
        assert!(
            d.contains("- book: Books. Arguments: size (integer)."),
            "{d}"
        );
        assert!(
            d.contains(r#"e.g. <tool_call>{"name": "book", "arguments": {}}</tool_call>"#),
            "{d}"
        );
        // A list of calls (SmolLM2's habit): the first.
        assert_eq!(
            parse(r#"<tool_call>[{"name": "end_call", "arguments": {}}]</tool_call>"#),
            Some(("end_call".into(), "{}".into()))
        );
    }
}
