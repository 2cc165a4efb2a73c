//! Health reporting and the shutdown drain: the gRPC health statuses from
//! start-up to exit, and the order in which a shutdown stops the parts.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{oneshot, watch};
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use super::ServeError;
use crate::SERVICE_NAME;

/// The gRPC health service name of liveness: `SERVING` from start-up until
/// the shutdown drain, whatever the store does (a liveness probe must not
/// restart replicas for a Redis outage). `""` and [`SERVICE_NAME`] mean
/// readiness.
pub const LIVENESS_SERVICE: &str = "liveness";

/// What a shutdown sets off, in order.
pub(super) struct Drain {
    reporter: HealthReporter,
    /// Tells the feed, watch streams, health loop, key reload and HTTP
    /// servers to stop.
    drain_tx: watch::Sender<bool>,
    /// Tells the gRPC server to stop accepting and finish its calls.
    stop_tx: oneshot::Sender<()>,
    timeout: Duration,
}

impl Drain {
    /// Health `NOT_SERVING` for readiness (the health loop turns it on)
    /// and `SERVING` for liveness: the port is bound and the process
    /// answers. Returns the drain, the health service, and what the gRPC
    /// server waits on to stop.
    pub(super) async fn new(
        drain_tx: watch::Sender<bool>,
        timeout: Duration,
    ) -> (Drain, HealthServer<HealthService>, oneshot::Receiver<()>) {
        let reporter = HealthReporter::new();
        let health = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
            .await;
        let (stop_tx, stop_rx) = oneshot::channel();
        let drain = Drain {
            reporter,
            drain_tx,
            stop_tx,
            timeout,
        };
        (drain, health, stop_rx)
    }

    pub(super) fn reporter(&self) -> HealthReporter {
        self.reporter.clone()
    }

    /// Run `server` until `shutdown` resolves; then every health status
    /// `NOT_SERVING`, the drain signal, the server's graceful stop, and at
    /// most the drain timeout for calls in flight.
    pub(super) async fn run(
        self,
        server: BoxFuture<'static, Result<(), tonic::transport::Error>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Drain {
            reporter,
            drain_tx,
            stop_tx,
            timeout,
        } = self;
        let deadline = async move {
            shutdown.await;
            tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
            for service in ["", SERVICE_NAME, LIVENESS_SERVICE] {
                reporter
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
            let _ = drain_tx.send(true);
            let _ = stop_tx.send(());
            tokio::time::sleep(timeout).await;
        };
        tokio::select! {
            result = server => result?,
            () = deadline => tracing::warn!(drain_timeout = ?timeout, "drain deadline passed; exiting with calls in flight"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}
