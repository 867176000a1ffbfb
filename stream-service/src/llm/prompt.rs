//! What the model is told. One system prompt from the bot's goal and context, the call's own
//! instructions (an outbound call's `prompt`), the date and the rules of phone speech; then the
//! conversation as the caller heard it. The system prompt only changes between days, so a
//! call's requests share their prefix and a server with a prompt cache (the local worker)
//! evaluates only what is new each turn.

use super::ChatMessage;
use crate::engine::webhook::HistoryEntry;

/// The parts of the system prompt.
#[derive(Debug, Clone)]
pub struct PromptParts<'a> {
    pub goal: &'a str,
    pub context: &'a str,
    /// Instructions for this call only (outbound `prompt`).
    pub instructions: Option<&'a str>,
    /// `YYYY-MM-DD` (UTC).
    pub date: &'a str,
}

pub fn system_prompt(p: &PromptParts<'_>) -> String {
    let mut s = format!(
        "You are the voice of a business on a phone call. Today is {}.\nYour goal: {}\n",
        p.date, p.goal
    );
    if !p.context.trim().is_empty() {
        s.push_str(&format!("Facts you may use: {}\n", p.context.trim()));
    }
    if let Some(i) = p.instructions.filter(|i| !i.trim().is_empty()) {
        s.push_str(&format!("Instructions for this call: {}\n", i.trim()));
    }
    s.push_str(
        "Rules: you are speaking, not writing. Answer in one or two short sentences. \
         No markdown, no lists, no emojis. Never invent facts that are not given above; \
         if you do not know, say so and offer to help otherwise.",
    );
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
/// `HISTORY_WINDOW` entries at most), the caller's words.
pub fn messages(system: String, history: &[HistoryEntry], caller: &str) -> Vec<ChatMessage> {
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
        out.push(ChatMessage::User(caller.to_owned()));
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
            date: "2026-12-01",
        };
        let s = system_prompt(&p);
        assert!(s.contains("Take reservations") && s.contains("Open 5-10"));
        assert!(s.contains("Confirm Friday's booking") && s.contains("2026-12-01"));
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
        let m = messages(s.clone(), &h, "Table for two");
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], ChatMessage::System(s));
        assert!(matches!(&m[1], ChatMessage::Assistant { content: Some(c), .. } if c == "Hello!"));
        assert_eq!(m[3], ChatMessage::User("Table for two".into()));
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
