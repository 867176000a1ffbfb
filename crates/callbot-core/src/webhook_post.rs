//! Signed POSTs to a tenant's webhook: the body signed (`webhook_sign`), an idempotency key, a
//! deadline with one retry inside it on connection errors and 5xx, the target checked against
//! the webhook policy, and the answer's size capped. Used for call turns, tool calls, notices and
//! post-call events alike.

use crate::domain::WebhookPolicy;
use crate::{outbound, webhook_sign};
use serde::Serialize;
use std::time::Duration;

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
    #[error("too_large")]
    TooLarge,
}

/// Largest answer read from a webhook.
pub const MAX_ANSWER: usize = 256 * 1024;

/// POSTs any signed JSON body (turns, tool calls, notices) within `deadline`, with one retry on
/// connection errors and 5xx; returns the 2xx answer's body.
pub async fn post_signed(
    http: &reqwest::Client,
    url: &url::Url,
    secret: &[u8],
    policy: WebhookPolicy,
    request: &impl Serialize,
    idem: &str,
    deadline: Duration,
) -> Result<bytes::Bytes, Failure> {
    tokio::time::timeout(deadline, async {
        // Names are checked by the client's resolver on the addresses it connects to.
        if !outbound::literal_allowed(url, policy) {
            return Err(Failure::RefusedTarget);
        }
        // `Bytes`: the retry re-sends the same buffer without copying it.
        let body = bytes::Bytes::from(serde_json::to_vec(request).map_err(|_| Failure::BadJson)?);
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
                .header("Idempotency-Key", idem)
                .header("X-Callbot-Attempt", (attempt + 1).to_string())
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(mut resp) if resp.status().is_success() => {
                    let mut body = Vec::new();
                    while let Some(chunk) = resp.chunk().await.map_err(|_| Failure::Connect)? {
                        body.extend_from_slice(&chunk);
                        if body.len() > MAX_ANSWER {
                            return Err(Failure::TooLarge);
                        }
                    }
                    return Ok(bytes::Bytes::from(body));
                }
                Ok(resp) if resp.status().is_server_error() => {
                    last = Failure::Status(resp.status().as_u16())
                }
                Ok(resp) => return Err(Failure::Status(resp.status().as_u16())),
                Err(e) if outbound::is_refused(&e) => return Err(Failure::RefusedTarget),
                Err(_) => last = Failure::Connect,
            }
        }
        Err(last)
    })
    .await
    .unwrap_or(Err(Failure::Timeout))
}
