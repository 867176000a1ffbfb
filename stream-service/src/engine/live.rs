//! The registry of live calls in this process: what `/call/lists` shows, what `/call/kill/{id}`
//! stops, what `/frontend-stream` subscribes to, and the per-user limit on live streams.

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
    /// Commands for the call's engine (`/call` supervisors).
    pub commands: tokio::sync::mpsc::Sender<crate::engine::command::Command>,
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

    /// Registers a call unless its user (or, inbound, its tenant) already has `limit` live calls.
    pub fn register(&self, call: LiveCall, limit: u32) -> Result<Registration, usize> {
        let mut map = self.lock();
        let same = map
            .values()
            .filter(|c| c.tenant == call.tenant && c.user == call.user)
            .count();
        if same >= limit as usize {
            return Err(same);
        }
        let sid = call.sid.clone();
        map.insert(sid.clone(), call);
        Ok(Registration {
            calls: self.clone(),
            sid,
        })
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
    fn limit_per_user_and_release_on_drop() {
        let live = LiveCalls::default();
        let a: Vec<_> = (0..3)
            .map(|_| live.register(call("t", Some("u")), 3).unwrap())
            .collect();
        assert!(live.register(call("t", Some("u")), 3).is_err());
        let _other_user = live.register(call("t", Some("v")), 3).unwrap();
        let _other_tenant = live.register(call("t2", Some("u")), 3).unwrap();
        drop(a);
        assert_eq!(live.len(), 2);
        assert!(live.register(call("t", Some("u")), 3).is_ok());
        assert!(live.list(&TenantId::parse("t").unwrap()).len() == 1);
    }
}
