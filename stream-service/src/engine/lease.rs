//! Keeps a store lease alive while its holder lives (a call, an observer socket): renewed every
//! [`LEASE_RENEW`], released when done; if the process dies, the lease lapses on its own within
//! [`callbot_core::store::leases::LEASE_TTL_MS`]. [`Presence`]: the pair a call holds.

use callbot_core::store::Store;
use callbot_core::store::leases::{LEASE_RENEW, LEASE_TTL_MS, now_ms};
use std::sync::Arc;

#[derive(Debug)]
pub struct LeaseKeeper {
    store: Arc<dyn Store>,
    scope: String,
    holder: String,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts renewing `holder`'s lease of `scope` (already acquired, or to be reinstated when it
    /// lapsed: the holder is live, so it keeps its place even over the limit).
    pub fn start(store: Arc<dyn Store>, scope: String, holder: String) -> Self {
        let task = {
            let (store, scope, holder) = (store.clone(), scope.clone(), holder.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    let until = now_ms() + LEASE_TTL_MS;
                    match store.renew_lease(&scope, &holder, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(%scope, %holder, "lease had lapsed; taking it again");
                            let _ = store
                                .acquire_lease(&scope, &holder, u32::MAX, until, now_ms())
                                .await;
                        }
                        Err(e) => tracing::warn!(%scope, error = %e, "renewing a lease failed"),
                    }
                }
            })
        };
        Self {
            store,
            scope,
            holder,
            task,
        }
    }

    /// Takes a lease that has no limit (a record of where something is, not a place) and keeps it.
    pub async fn acquire_unlimited(store: Arc<dyn Store>, scope: String, holder: String) -> Self {
        let now = now_ms();
        if let Err(e) = store
            .acquire_lease(&scope, &holder, u32::MAX, now + LEASE_TTL_MS, now)
            .await
        {
            tracing::warn!(%scope, error = %e, "taking a lease failed; renewing will retry");
        }
        Self::start(store, scope, holder)
    }

    /// Stops renewing and gives the lease back.
    pub async fn release(self) {
        self.task.abort();
        if let Err(e) = self.store.release_lease(&self.scope, &self.holder).await {
            tracing::warn!(scope = %self.scope, error = %e, "releasing a lease failed; it lapses on its own");
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The call's leases in the store while it lives: its route (sockets that name it on another
/// instance, `/frontend-stream` and `/call?id=`, are relayed here) and its place among its
/// tenant's concurrent calls (taken by `/voice`, `/outbound-call` or the socket's `invite`).
#[derive(Debug)]
pub struct Presence {
    route: LeaseKeeper,
    lease: LeaseKeeper,
}

impl Presence {
    pub async fn enter(state: &crate::StreamState, call: &callbot_core::store::CallRecord) -> Self {
        let route = LeaseKeeper::acquire_unlimited(
            state.store.clone(),
            callbot_core::store::leases::route_scope(&call.sid),
            state.settings.instance_base(),
        )
        .await;
        let lease = LeaseKeeper::start(
            state.store.clone(),
            callbot_core::store::leases::calls_scope(&call.tenant),
            call.sid.to_string(),
        );
        Self { route, lease }
    }

    pub async fn leave(self) {
        self.lease.release().await;
        self.route.release().await;
    }
}
