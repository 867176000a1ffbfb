//! The business webhook, one call per caller turn (design.md contract): a signed JSON POST with an
//! idempotency key, a deadline, one retry inside the deadline on connection errors and 5xx, and a
//! typed outcome — a reply, or the reason the fallback line must be spoken instead.

use callbot_core::domain::{PhoneNumber, WebhookPolicy, webhook::is_non_public};
use callbot_core::webhook_sign;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryEntry {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnRequest<'a> {
    pub bot_id: &'a str,
    pub call_sid: &'a str,
    pub turn: u32,
    pub user_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtmf: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_suggestion: Option<&'a str>,
    pub history: &'a [HistoryEntry],
    pub from: &'a str,
    pub to: &'a str,
    /// RFC 3339.
    pub timestamp: String,
    /// The bot's goal for this call (outbound `prompt` overrides it) and its context.
    pub goal: &'a str,
    pub context: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Continue,
    Hangup,
    Transfer(PhoneNumber),
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Continue => "continue",
            Action::Hangup => "hangup",
            Action::Transfer(_) => "transfer",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub say: String,
    pub action: Action,
}

/// Why there is no usable reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("timeout")]
    Timeout,
    #[error("http_{0}")]
    Status(u16),
    #[error("connect")]
    Connect,
    #[error("bad_json")]
    BadJson,
    #[error("missing_say")]
    MissingSay,
    #[error("bad_action")]
    BadAction,
    #[error("refused_target")]
    RefusedTarget,
}

#[derive(Debug, Deserialize)]
struct RawReply {
    say: Option<String>,
    action: Option<String>,
    transfer_to: Option<String>,
}

fn parse_reply(body: &[u8]) -> Result<Reply, Failure> {
    let raw: RawReply = serde_json::from_slice(body).map_err(|_| Failure::BadJson)?;
    let say = raw.say.map(|s| s.trim().to_owned()).unwrap_or_default();
    let action = match raw.action.as_deref() {
        None | Some("continue") => Action::Continue,
        Some("hangup") => Action::Hangup,
        Some("transfer") => {
            let to = raw.transfer_to.as_deref().ok_or(Failure::BadAction)?;
            Action::Transfer(PhoneNumber::parse(to).map_err(|_| Failure::BadAction)?)
        }
        Some(_) => return Err(Failure::BadAction),
    };
    // A hangup or transfer may come without words; a continue must say something.
    if say.is_empty() && action == Action::Continue {
        return Err(Failure::MissingSay);
    }
    Ok(Reply { say, action })
}

/// Refuses hosts that resolve to private or loopback addresses unless the operator allows them
/// (the URL was checked when the bot was saved; this catches DNS that changed since).
async fn target_allowed(url: &url::Url, policy: WebhookPolicy) -> bool {
    if policy.allow_private {
        return true;
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| !is_non_public(a.ip()))
        }
        Err(_) => false,
    }
}

/// Sends one turn within `deadline` (one retry inside it on connection errors and 5xx).
pub async fn send(
    http: &reqwest::Client,
    url: &url::Url,
    secret: &[u8],
    policy: WebhookPolicy,
    request: &TurnRequest<'_>,
    deadline: Duration,
) -> Result<Reply, Failure> {
    tokio::time::timeout(deadline, async {
        if !target_allowed(url, policy).await {
            return Err(Failure::RefusedTarget);
        }
        // `Bytes`: the retry re-sends the same buffer without copying it.
        let body = bytes::Bytes::from(serde_json::to_vec(request).map_err(|_| Failure::BadJson)?);
        let idem = format!("{}:{}", request.call_sid, request.turn);
        let mut last = Failure::Connect;
        for attempt in 0..2 {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let sent = http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(webhook_sign::HEADER, webhook_sign::sign(secret, ts, &body))
                .header("Idempotency-Key", &idem)
                .header("X-Callbot-Attempt", (attempt + 1).to_string())
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    let bytes = resp.bytes().await.map_err(|_| Failure::Connect)?;
                    return parse_reply(&bytes);
                }
                Ok(resp) if resp.status().is_server_error() => {
                    last = Failure::Status(resp.status().as_u16())
                }
                Ok(resp) => return Err(Failure::Status(resp.status().as_u16())),
                Err(_) => last = Failure::Connect,
            }
        }
        Err(last)
    })
    .await
    .unwrap_or(Err(Failure::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_strictly() {
        assert_eq!(
            parse_reply(br#"{"say":"Hi"}"#),
            Ok(Reply {
                say: "Hi".into(),
                action: Action::Continue
            })
        );
        assert_eq!(
            parse_reply(br#"{"say":"Bye","action":"hangup"}"#)
                .unwrap()
                .action,
            Action::Hangup
        );
        assert_eq!(
            parse_reply(br#"{"say":"","action":"transfer","transfer_to":"+15551234567"}"#)
                .unwrap()
                .action,
            Action::Transfer(PhoneNumber::parse("+15551234567").unwrap())
        );
        assert_eq!(
            parse_reply(br#"{"action":"transfer"}"#),
            Err(Failure::BadAction)
        );
        assert_eq!(
            parse_reply(br#"{"say":"x","action":"dance"}"#),
            Err(Failure::BadAction)
        );
        assert_eq!(parse_reply(br#"{"say":"  "}"#), Err(Failure::MissingSay));
        assert_eq!(parse_reply(b"<html>"), Err(Failure::BadJson));
        assert_eq!(parse_reply(br#"{"say":5}"#), Err(Failure::BadJson));
    }
}
