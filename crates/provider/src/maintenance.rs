//! The provider's housekeeping, every few seconds: cancel the authorizations that expired
//! uncaptured (as a card network releases a hold nobody captured), and forget the idempotency
//! keys and the finished webhook deliveries older than their 24 hours.

use std::sync::Arc;
use std::time::Duration;

use platform::Shutdown;
use tokio_util::sync::CancellationToken;

use crate::idempotency::RETENTION;
use crate::service::{Provider, now_ms, now_s};

/// How often the housekeeping runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaintenancePace {
    pub every: Duration,
}

impl Default for MaintenancePace {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(2),
        }
    }
}

/// The task for `Started::task`.
pub fn task(provider: Arc<Provider>, pace: MaintenancePace) -> impl FnOnce(&Shutdown) + Send {
    move |shutdown: &Shutdown| {
        let token = shutdown.token();
        shutdown.spawn(run(provider, pace, token));
    }
}

pub async fn run(provider: Arc<Provider>, pace: MaintenancePace, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pace.every) => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = once(&provider) => {}
        }
    }
}

/// One round; failures are logged and tried again next round.
pub async fn once(provider: &Provider) {
    if let Err(e) = provider.expire_authorizations(now_s()).await {
        tracing::warn!(error = %e, "provider: cannot expire authorizations");
    }
    let cutoff = now_ms().saturating_sub(i64::try_from(RETENTION.as_millis()).unwrap_or(0));
    match provider.store().forget_requests(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(keys = n, "provider: idempotency keys expired"),
        Err(e) => tracing::warn!(error = %e, "provider: cannot forget idempotency keys"),
    }
    if let Err(e) = provider.store().forget_deliveries(cutoff).await {
        tracing::warn!(error = %e, "provider: cannot forget finished deliveries");
    }
}
