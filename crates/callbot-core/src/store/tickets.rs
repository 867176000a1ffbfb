//! Short-lived, single-use tickets: what a browser presents to open a call WebSocket instead of
//! an API key. A ticket binds a tenant and a purpose, and the purposes that act on one live call
//! (`supervise`, `relay`) bind that call too; it is stored only as a SHA-256 hash and is consumed
//! atomically on first use, and only for exactly what it was issued for, so it cannot be replayed
//! or turned on another call, even against another instance.

use super::StoreResult;
use crate::apikey::KeyHash;
use crate::domain::{CallSid, TenantId};
use async_trait::async_trait;

/// What a ticket may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketPurpose {
    /// `wss /call` and `wss /call/webrtc`: a new call to a bot (never an existing call).
    Call,
    /// `wss /call?id=<sid>`: supervising this one live call (its commands act on the call).
    Supervise(CallSid),
    /// `wss /frontend-stream` (watching live calls).
    Observe,
    /// A Twilio media stream: `/voice` stores the stream token it hands out, the stream service
    /// consumes it when the stream starts, so a token opens one stream only.
    Stream,
    /// One instance opening this live call's socket on the instance that holds the call, for a
    /// client it has authenticated (never handed to clients).
    Relay(CallSid),
}

impl TicketPurpose {
    /// How the purpose is stored: its name, and `:<call sid>` for one bound to a call. A ticket
    /// is taken only when this matches exactly.
    pub fn key(&self) -> String {
        match self {
            TicketPurpose::Call => "call".into(),
            TicketPurpose::Supervise(sid) => format!("supervise:{sid}"),
            TicketPurpose::Observe => "observe".into(),
            TicketPurpose::Stream => "stream".into(),
            TicketPurpose::Relay(sid) => format!("relay:{sid}"),
        }
    }

    /// The purpose's name (`call`, `supervise`, ...), without the call.
    pub fn name(&self) -> &'static str {
        match self {
            TicketPurpose::Call => "call",
            TicketPurpose::Supervise(_) => "supervise",
            TicketPurpose::Observe => "observe",
            TicketPurpose::Stream => "stream",
            TicketPurpose::Relay(_) => "relay",
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
        purpose: &TicketPurpose,
        expires_ms: u64,
    ) -> StoreResult<()>;
    /// Consumes a ticket: atomically removes it and returns its tenant when it exists, has this
    /// purpose (the same call, for a purpose bound to one) and has not expired at `now_ms`. A second call with the same hash returns `None`,
    /// whichever process makes it. Safe to cancel (at worst the ticket is spent).
    async fn take_ticket(
        &self,
        hash: &KeyHash,
        purpose: &TicketPurpose,
        now_ms: u64,
    ) -> StoreResult<Option<TenantId>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_bound_to_a_call_name_it() {
        let a = CallSid::parse("CA0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(TicketPurpose::Call.key(), "call");
        assert_eq!(
            TicketPurpose::Supervise(a.clone()).key(),
            format!("supervise:{a}")
        );
        assert_eq!(TicketPurpose::Relay(a).name(), "relay");
    }
}
