//! The campaign queue: messages that ask a queue-driven dialer to look at one row of a campaign
//! once a delay has passed (the row is due, its window opens, its call may be over). On AWS the
//! queue is SQS and its consumer a Lambda function; the SQS adapter lives here.

use crate::domain::{CampaignId, TenantId};
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest delay SQS gives a message: a row that waits longer comes back early, sees it
/// is not due, and is sent again.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// One row to look at. The queue is ours alone (its policy lets only callbot's functions send),
/// so the tenant in the message is the campaign's own; the worker still reads the campaign
/// under it, so a message naming another tenant finds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMessage {
    pub tenant: TenantId,
    pub campaign: CampaignId,
    pub row: u32,
}

/// A message's body: `{"tenant": .., "campaign": .., "row": ..}`.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    tenant: &'a str,
    campaign: &'a str,
    row: u32,
}

impl RowMessage {
    pub fn to_body(&self) -> String {
        let wire = Wire {
            tenant: self.tenant.as_str(),
            campaign: self.campaign.as_str(),
            row: self.row,
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a message's body; an error says what is wrong with it.
    pub fn parse(body: &str) -> Result<Self, QueueError> {
        let bad = |e: String| QueueError(format!("a row message that is not one: {e}"));
        let w: Wire<'_> = serde_json::from_str(body).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            tenant: TenantId::parse(w.tenant).map_err(|e| bad(e.to_string()))?,
            campaign: CampaignId::parse(w.campaign).map_err(|e| bad(e.to_string()))?,
            row: w.row,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("campaign queue: {0}")]
pub struct QueueError(pub String);

/// Where rows are sent to be dialled later.
///
/// `send` does not block the runtime; it is not idempotent (a message sent twice is delivered
/// twice, which the dialer tolerates: a row is only dialled by the one claim the store admits);
/// cancelling it may leave some of the messages sent.
#[async_trait]
pub trait CampaignQueue: Send + Sync + std::fmt::Debug {
    /// Sends each message to be delivered once its delay (at most [`MAX_DELAY`]) has passed.
    async fn send(&self, messages: &[(RowMessage, Duration)]) -> Result<(), QueueError>;
}

/// The SQS adapter: SendMessageBatch, ten messages to a request, each with its own delay.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(config: &aws_config::SdkConfig, url: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(config),
            url: url.to_owned(),
        }
    }
}

/// The delay SQS is asked for, in whole seconds (0 to 900).
fn delay_secs(d: Duration) -> i32 {
    i32::try_from(d.min(MAX_DELAY).as_secs()).unwrap_or(900)
}

#[async_trait]
impl CampaignQueue for SqsQueue {
    async fn send(&self, messages: &[(RowMessage, Duration)]) -> Result<(), QueueError> {
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (m, delay))| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(m.to_body())
                        .delay_seconds(delay_secs(*delay))
                        .build()
                        .map_err(|e| QueueError(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    QueueError(format!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
                })?;
            if let Some(f) = out.failed().first() {
                return Err(QueueError(format!(
                    "{} of {} messages refused: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    f.code(),
                    f.message().unwrap_or("")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn delays_are_capped_at_the_queue_longest() {
        assert_eq!(delay_secs(Duration::from_secs(3600)), 900);
        assert_eq!(delay_secs(Duration::from_millis(1500)), 1);
        assert_eq!(delay_secs(Duration::ZERO), 0);
    }

    #[test]
    fn a_row_message_is_plain_json() {
        let m = RowMessage {
            tenant: TenantId::parse("acme").unwrap(),
            campaign: CampaignId::parse("cmp_0193a5c4e1f27c3d8a9b0c1d2e3f4a5b").unwrap(),
            row: 7,
        };
        let json: serde_json::Value = serde_json::from_str(&m.to_body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tenant": "acme", "campaign": "cmp_0193a5c4e1f27c3d8a9b0c1d2e3f4a5b", "row": 7})
        );
        assert_eq!(RowMessage::parse(&m.to_body()).unwrap(), m);
    }

    #[test]
    fn a_message_that_is_not_a_row_is_refused_with_its_fault() {
        let e = RowMessage::parse(r#"{"tenant":"acme","campaign":"cmp_x","row":1}"#).unwrap_err();
        assert!(e.to_string().contains("campaign id"), "{e}");
        assert!(RowMessage::parse("[]").is_err());
    }
}
