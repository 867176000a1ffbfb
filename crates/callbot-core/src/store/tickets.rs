//! Short-lived, single-use tickets: what a browser presents to open a call WebSocket instead of
//! an API key. A ticket binds a tenant and a purpose; it is stored only as a SHA-256 hash and is
//! consumed atomically on first use, so it cannot be replayed, even against another instance.

use super::StoreResult;
use crate::apikey::KeyHash;
use crate::domain::TenantId;
use async_trait::async_trait;

/// What a ticket may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketPurpose {
    /// `wss /call` and `wss /call/webrtc` (a call to a bot, or supervising a live call).
    Call,
    /// `wss /frontend-stream` (watching a live call).
    Observe,
    /// A Twilio media stream: `/voice` stores the stream token it hands out, the stream service
    /// consumes it when the stream starts, so a token opens one stream only.
    Stream,
    /// One instance opening a live call's socket on the instance that holds the call, for a
    /// client it has authenticated (never handed to clients).
    Relay,
}

impl TicketPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketPurpose::Call => "call",
            TicketPurpose::Observe => "observe",
            TicketPurpose::Stream => "stream",
            TicketPurpose::Relay => "relay",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "call" => Some(TicketPurpose::Call),
            "observe" => Some(TicketPurpose::Observe),
            "stream" => Some(TicketPurpose::Stream),
            "relay" => Some(TicketPurpose::Relay),
            _ => None,
        }
    }
}

/// A fresh ticket: `cbt_` and 40 random alphanumerics; only its hash is stored.
pub fn new_ticket() -> (String, KeyHash) {
    let raw = crate::apikey::random_token("cbt_", 40);
    let hash = KeyHash::of(&raw);
    (raw, hash)
}

#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores a ticket valid until `expires_ms` (Unix ms). Not idempotent: a hash is new each time.
    async fn put_ticket(
        &self,
        hash: &KeyHash,
        tenant: &TenantId,
        purpose: TicketPurpose,
        expires_ms: u64,
    ) -> StoreResult<()>;
    /// Consumes a ticket: atomically removes it and returns its tenant when it exists, has this
    /// purpose and has not expired at `now_ms`. A second call with the same hash returns `None`,
    /// whichever process makes it. Safe to cancel (at worst the ticket is spent).
    async fn take_ticket(
        &self,
        hash: &KeyHash,
        purpose: TicketPurpose,
        now_ms: u64,
    ) -> StoreResult<Option<TenantId>>;
}
