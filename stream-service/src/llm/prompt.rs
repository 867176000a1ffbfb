//! What the model is told. One system prompt from the bot's goal and context, the call's own
//! instructions (an outbound call's `prompt`), its variables, the moment it started and the rules
//! of phone speech; then the conversation as the caller heard it. The system prompt is built once
//! per call, so a call's requests share their prefix and a server with a prompt cache (the local
//! worker) evaluates only what is new each turn.

use super::ChatMessage;
use crate::engine::webhook::HistoryEntry;
use callbot_core::domain::Variables;

/// The parts of the system prompt.
#[derive(Debug, Clone)]
pub struct PromptParts<'a> {
    pub goal: &'a str,
    pub context: &'a str,
    /// Instructions for this call only (outbound `prompt`).
    pub instructions: Option<&'a str>,
    /// The call's variables and built-ins: the day and time (in the bot's time zone) open the
    /// prompt, the others are listed as details of the call.
    pub variables: &'a Variables,
}

/// Built-ins the prompt states in words rather than in the list of details.
const SPOKEN: [&str; 3] = ["date", "time", "weekday"];

/// How a reply sounds. Measured with `callbot bench answers`: a small model keeps closer to the
/// facts with a few short rules right after them than with a long block of rules and examples.
const RULES: &str = "Answer the caller in one short spoken sentence, using only the facts. \
     If the facts do not say, answer that you are not sure. No lists, no markdown.";

/// The bot's part first (the same for all its calls, so a prompt cache can keep it): who it is,
/// its facts and the rules of phone speech; then what is this call's own: the moment, its
/// details, its instructions.
pub fn system_prompt(p: &PromptParts<'_>) -> String {
    let mut s = String::with_capacity(1024);
    s.push_str(&format!(
        "You are the receptionist of a business on the phone. {}\n",
        p.goal.trim()
    ));
    if !p.context.trim().is_empty() {
        s.push_str(&format!("Facts: {}\n", p.context.trim()));
    }
    s.push_str(RULES);
    s.push('\n');
    let v = |name| p.variables.get(name).unwrap_or_default();
    if !v("date").is_empty() {
        s.push_str(&format!(
            "It is {}, {}, {}.\n",
            v("weekday"),
            v("date"),
            v("time")
        ));
    }
    let details: Vec<String> = p
        .variables
        .iter()
        .filter(|(name, _)| !SPOKEN.contains(name))
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    if !details.is_empty() {
        s.push_str(&format!("Details of this call: {}\n", details.join("; ")));
    }
    if let Some(i) = p.instructions.filter(|i| !i.trim().is_empty()) {
        s.push_str(&format!("Instructions for this call: {}\n", i.trim()));
    }
    s.truncate(s.trim_end().len());
    s
}

/// History entries sent at most; beyond that the oldest are dropped `HISTORY_STEP` at a time, so
/// the prompt's prefix (and the server's cache of it) stays the same for several turns.
pub const HISTORY_WINDOW: usize = 24;
const HISTORY_STEP: usize = 12;

/// The part of the history the model sees.
pub fn window(history: &[HistoryEntry]) -> &[HistoryEntry] {
    if history.len() <= HISTORY_WINDOW {
        return history;
    }
    let drop = ((history.len() - HISTORY_WINDOW - 1) / HISTORY_STEP + 1) * HISTORY_STEP;
    &history[drop..]
}

/// The messages for one reply: the system prompt, the conversation as heard (its last
/// `HISTORY_WINDOW` entries at most), the caller's words. `facts`: repeated just before the
/// caller's words (for the small embedded model, which heeds the last message far more than
/// its system prompt: `callbot bench answers` measured 6 of 20 cases right with it, 1 without).
/// Only the newest message carries them, so the cached prefix of earlier turns stays the same.
pub fn messages(
    system: String,
    history: &[HistoryEntry],
    caller: &str,
    facts: Option<&str>,
) -> Vec<ChatMessage> {
    let history = window(history);
    let mut out = Vec::with_capacity(history.len() + 2);
    out.push(ChatMessage::System(system));
    for h in history {
        out.push(match h.role {
            "user" => ChatMessage::User(h.content.clone()),
            _ => ChatMessage::Assistant {
                content: Some(h.content.clone()),
                tool_calls: Vec::new(),
            },
        });
    }
    if !caller.is_empty() {
        out.push(ChatMessage::User(match facts.map(str::trim) {
            Some(f) if !f.is_empty() => format!("(Facts: {f})\n{caller}"),
            _ => caller.to_owned(),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_has_the_parts_and_history_keeps_its_order() {
        let p = PromptParts {
            goal: "Take reservations",
            context: "Open 5-10",
            instructions: Some("Confirm Friday's booking"),
            variables: &Variables::parse(
                &serde_json::json!({"name": "Ana", "party": 4}),
                "variables",
            )
            .unwrap(),
        };
        let s = system_prompt(&p);
        assert!(s.contains("Take reservations") && s.contains("Open 5-10"));
        assert!(s.contains("Confirm Friday's booking"));
        assert!(
            s.contains("Details of this call: name: Ana; party: 4"),
            "{s}"
        );
        let h = vec![
            HistoryEntry {
                role: "bot",
                content: "Hello!".into(),
            },
            HistoryEntry {
                role: "user",
                content: "Hi".into(),
            },
        ];
        let m = messages(s.clone(), &h, "Table for two", None);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], ChatMessage::System(s.clone()));
        assert!(matches!(&m[1], ChatMessage::Assistant { content: Some(c), .. } if c == "Hello!"));
        assert_eq!(m[3], ChatMessage::User("Table for two".into()));
        let m = messages(s.clone(), &h, "Table for two", Some("Open 5-10"));
        assert_eq!(
            m[3],
            ChatMessage::User("(Facts: Open 5-10)\nTable for two".into())
        );
        assert!(
            matches!(&m[2], ChatMessage::User(c) if c == "Hi"),
            "history unchanged"
        );
    }

    #[test]
    fn long_histories_slide_in_steps() {
        let h: Vec<HistoryEntry> = (0..40)
            .map(|i| HistoryEntry {
                role: if i % 2 == 0 { "bot" } else { "user" },
                content: i.to_string(),
            })
            .collect();
        assert_eq!(window(&h[..24]).len(), 24);
        // 25..36 entries: the first 12 go; the start stays put while the call grows.
        assert_eq!(window(&h[..25])[0].content, "12");
        assert_eq!(window(&h[..36])[0].content, "12");
        assert_eq!(window(&h[..37])[0].content, "24");
        assert!(window(&h).len() <= HISTORY_WINDOW);
    }
}
