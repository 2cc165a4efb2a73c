//! gRPC health and readiness: SERVING only while the store answers and the
//! revocation cache is in sync; each tick also adopts the store's clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::feed::Feed;
use crate::store::Store;
use crate::{clock, telemetry, SERVICE_NAME};

/// How often the store is pinged for the health status.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// Ping the store and, when it has a clock, adopt its time (see
/// [`clock`]): the health task does this every tick. Returns whether the
/// store answered.
pub(crate) async fn ping_and_sync_clock<S: Store>(store: &S, timeout: Duration) -> bool {
    let sent = clock::local_ms();
    let answer = tokio::time::timeout(timeout, store.ping()).await;
    let received = clock::local_ms();
    match answer {
        Ok(Ok(Some(server_ms))) => {
            if let Some(offset) = clock::sync(sent, server_ms, received) {
                metrics::gauge!(telemetry::CLOCK_OFFSET).set(offset as f64 / 1000.0);
            }
            true
        }
        Ok(Ok(None)) => true,
        Ok(Err(_)) | Err(_) => false,
    }
}

/// Follow the store's health until `drain` fires: publish it on `store_ok`
/// (for `/readyz`) and as the gRPC health of `""` and the service.
pub(crate) async fn follow<S: Store>(
    store: Arc<S>,
    feed: Arc<Feed>,
    reporter: HealthReporter,
    store_ok_tx: watch::Sender<bool>,
    mut drain: watch::Receiver<bool>,
    timeout: Duration,
) {
    let mut last = None;
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = drain.changed() => return,
        }
        let store_ok = ping_and_sync_clock(store.as_ref(), timeout).await;
        store_ok_tx.send_replace(store_ok);
        // SERVING needs the store and a revocation cache in sync with
        // the feed (an out-of-sync replica would put every Verify on
        // the store, so it takes itself out of rotation until resynced).
        let ok = store_ok && feed.in_sync();
        if last != Some(ok) {
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            if ok {
                tracing::info!("store answers: SERVING");
            } else {
                tracing::warn!("store does not answer: NOT_SERVING");
            }
            reporter.set_service_status("", status).await;
            reporter.set_service_status(SERVICE_NAME, status).await;
            last = Some(ok);
        }
    }
}
