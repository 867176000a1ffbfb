//! The registry of live calls in this process: what `/call/lists` shows, what `/call/kill/{id}`
//! stops, what `/frontend-stream` subscribes to.

use super::events::EventBus;
use callbot_core::domain::{BotId, CallSid, TenantId};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct LiveCall {
    pub sid: CallSid,
    pub tenant: TenantId,
    pub bot: BotId,
    /// The end-user label of an outbound call; inbound calls count against the tenant (`None`).
    pub user: Option<String>,
    pub started_ms: u64,
    pub events: EventBus,
    pub kill: CancellationToken,
    /// The leg the call runs over.
    pub channel: callbot_core::domain::Channel,
    /// The call's queue, for commands (`/call` supervisors): see [`LiveCall::command`].
    pub(crate) commands: tokio::sync::mpsc::Sender<crate::engine::turn::ToCall>,
}

impl LiveCall {
    /// Hands `cmd` to the call's engine; false when the call has ended.
    pub async fn command(&self, cmd: crate::engine::command::Command) -> bool {
        self.commands
            .send(crate::engine::turn::ToCall::Command(cmd))
            .await
            .is_ok()
    }

    /// Tells the call's engine what answered it (the carrier's machine detection); false when
    /// the call has ended.
    pub async fn answered(&self, answered_by: callbot_core::domain::AnsweredBy) -> bool {
        self.commands
            .send(crate::engine::turn::ToCall::Answered(answered_by))
            .await
            .is_ok()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveCallView {
    pub call_sid: String,
    pub bot_id: String,
    pub user_id: Option<String>,
    pub started_at_ms: u64,
}

#[derive(Debug, Clone, Default)]
pub struct LiveCalls {
    inner: Arc<Mutex<HashMap<CallSid, LiveCall>>>,
}

/// Removes the call from the registry when dropped.
#[derive(Debug)]
pub struct Registration {
    calls: LiveCalls,
    sid: CallSid,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.calls.lock().remove(&self.sid);
    }
}

impl LiveCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallSid, LiveCall>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a call (limits are the store's leases, which hold across instances).
    pub fn register(&self, call: LiveCall) -> Registration {
        let sid = call.sid.clone();
        self.lock().insert(sid.clone(), call);
        Registration {
            calls: self.clone(),
            sid,
        }
    }

    pub fn get(&self, tenant: &TenantId, sid: &CallSid) -> Option<LiveCall> {
        self.lock()
            .get(sid)
            .filter(|c| &c.tenant == tenant)
            .cloned()
    }

    pub fn list(&self, tenant: &TenantId) -> Vec<LiveCallView> {
        let mut v: Vec<_> = self
            .lock()
            .values()
            .filter(|c| &c.tenant == tenant)
            .map(|c| LiveCallView {
                call_sid: c.sid.to_string(),
                bot_id: c.bot.to_string(),
                user_id: c.user.clone(),
                started_at_ms: c.started_ms,
            })
            .collect();
        v.sort_by_key(|c| c.started_at_ms);
        v
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The call `sid`, whoever's it is (callers have checked the tenant).
    pub fn by_sid(&self, sid: &CallSid) -> Option<LiveCall> {
        self.lock().get(sid).cloned()
    }

    /// Asks every live call to end (shutdown).
    pub fn kill_all(&self) {
        for c in self.lock().values() {
            c.kill.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(t: &str, user: Option<&str>) -> LiveCall {
        LiveCall {
            sid: CallSid::generate(),
            tenant: TenantId::parse(t).unwrap(),
            bot: BotId::generate(),
            user: user.map(String::from),
            started_ms: 0,
            events: EventBus::new(),
            kill: CancellationToken::new(),
            channel: callbot_core::domain::Channel::Twilio,
            commands: tokio::sync::mpsc::channel(1).0,
        }
    }

    #[test]
    fn calls_are_listed_per_tenant_and_removed_on_drop() {
        let live = LiveCalls::default();
        let a: Vec<_> = (0..3)
            .map(|_| live.register(call("t", Some("u"))))
            .collect();
        let other = call("t2", Some("u"));
        let (sid, tenant) = (other.sid.clone(), other.tenant.clone());
        let _other_tenant = live.register(other);
        assert_eq!(live.list(&TenantId::parse("t").unwrap()).len(), 3);
        assert!(live.get(&TenantId::parse("t").unwrap(), &sid).is_none());
        assert!(live.get(&tenant, &sid).is_some());
        drop(a);
        assert_eq!(live.len(), 1);
    }
}
