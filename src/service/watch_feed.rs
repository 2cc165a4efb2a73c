//! `WatchRevocations`: replay from a cursor, then live events, with no gap
//! and no duplicate at the seam.
//!
//! Each watcher is a loop that pulls from its own cursor: from the replica's
//! ring of recent events when it covers the cursor, from the store's log
//! otherwise, and waits for the feed head to move when it has caught up.
//! Replay and live are the same code path, so there is no seam to get wrong.
//! The outgoing channel is bounded; a watcher that leaves it full for longer
//! than `--watch-send-timeout` is ended with `RESOURCE_EXHAUSTED` and resumes
//! from its last cursor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::Status;
use tracing::Instrument;

use super::{timestamp_ms, Authority, WatchStream};
use crate::error::Error;
use crate::pb;
use crate::store::{parse_cursor, RevocationEvent, RevocationKind, Store};

/// Events buffered per watcher before it counts as slow.
pub const WATCH_BUFFER: usize = 256;
/// Events read per step.
const BATCH: usize = 256;

fn to_proto(e: &RevocationEvent) -> pb::RevocationEvent {
    let kind = match e.kind {
        RevocationKind::Token => pb::RevocationKind::Token,
        RevocationKind::Session => pb::RevocationKind::Session,
        RevocationKind::Subject => pb::RevocationKind::Subject,
    };
    pb::RevocationEvent {
        cursor: e.cursor.clone(),
        kind: kind as i32,
        token_id: e.token_id.clone(),
        session_id: e.session_id.clone(),
        tenant: e.tenant.clone(),
        subject: e.subject.clone(),
        revoked_at: Some(timestamp_ms(e.revoked_at_ms)),
        issued_before: (e.kind == RevocationKind::Subject)
            .then(|| timestamp_ms(e.issued_before_ms)),
        expires_at: Some(timestamp_ms(e.expires_at_ms)),
    }
}

/// Decrements the connected-watchers gauge however the watcher ends.
struct WatcherGauge;

impl Drop for WatcherGauge {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::WATCHERS).decrement(1.0);
    }
}

impl<S: Store> Authority<S> {
    /// Refuse a cursor that is malformed or beyond the last event the log
    /// ever had (from another deployment, or made up): a watcher resuming
    /// from it would be told it is caught up and then hear nothing until
    /// the log passed it, a local verifier failing open meanwhile.
    async fn check_cursor(&self, cursor: &str) -> Result<(), Error> {
        let after = parse_cursor(cursor).ok_or(Error::CursorInvalid)?;
        if parse_cursor(&self.feed.head()).is_some_and(|head| after <= head) {
            return Ok(());
        }
        // This replica's feed may lag the store: the store decides.
        let head = self.store.log_head().await?;
        match parse_cursor(&head) {
            Some(head) if after <= head => Ok(()),
            _ => Err(Error::CursorInvalid),
        }
    }

    pub(crate) async fn watch(
        &self,
        request: pb::WatchRevocationsRequest,
    ) -> Result<WatchStream, Error> {
        self.check_cursor(&request.after_cursor).await?;
        // Empty cursor: only new events, unless a snapshot was asked for, in
        // which case the whole retained log is every revocation in force.
        let snapshot = request.include_snapshot && request.after_cursor.is_empty();
        let start = if request.after_cursor.is_empty() && !snapshot {
            self.feed.head()
        } else {
            request.after_cursor
        };
        let (tx, mut rx) = mpsc::channel(WATCH_BUFFER);
        // How the stream ends when the producer gives up while the buffer is
        // full (slow watcher): delivered after the buffered events.
        let terminal: Arc<Mutex<Option<Status>>> = Arc::default();
        let terminal_out = terminal.clone();
        let store = self.store.clone();
        let feed = self.feed.clone();
        let mut shutdown = self.shutdown.clone();
        let send_timeout = self.policy.watch_send_timeout;
        let mut marker_pending = request.mark_caught_up;
        let span = tracing::info_span!("watch");
        tokio::spawn(
            async move {
                metrics::gauge!(crate::telemetry::WATCHERS).increment(1.0);
                let _gauge = WatcherGauge;
                let mut cursor = start;
                let mut head = feed.subscribe_head();
                loop {
                    let batch = match feed.ring_after(&cursor, BATCH) {
                        Some(events) => Ok(events),
                        None => store.read_log(&cursor, BATCH).await.map_err(Error::from),
                    };
                    let batch = match batch {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = tx.send(Err(Status::from(e))).await;
                            return;
                        }
                    };
                    if batch.is_empty() {
                        if std::mem::take(&mut marker_pending) {
                            // Caught up with the live feed: tell the watcher.
                            let marker = pb::RevocationEvent {
                                cursor: cursor.clone(),
                                kind: pb::RevocationKind::Unspecified as i32,
                                ..Default::default()
                            };
                            if tx.send(Ok(marker)).await.is_err() {
                                return;
                            }
                        }
                        tokio::select! {
                            changed = head.changed() => if changed.is_err() { return },
                            _ = shutdown.changed() => {
                                let _ = tx.send(Err(Status::unavailable("server shutting down; resume from your last cursor"))).await;
                                return;
                            }
                            _ = tx.closed() => return,
                            // Recheck now and then: the store may have events the
                            // ring never saw while this replica was out of sync.
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                    let now = crate::clock::now_ms();
                    for event in &batch {
                        cursor = event.cursor.clone();
                        if snapshot && event.expires_at_ms <= now {
                            continue; // no longer in force; the cursor still moves
                        }
                        match tokio::time::timeout(send_timeout, tx.send(Ok(to_proto(event)))).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return, // the client went away
                            Err(_) => {
                                tracing::info!("watcher too slow; ending its stream");
                                let status = Status::resource_exhausted(
                                    "watcher too slow; resume from your last cursor",
                                );
                                *terminal.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
                                return;
                            }
                        }
                    }
                }
            }
            .instrument(span),
        );
        Ok(Box::pin(async_stream::stream! {
            while let Some(item) = rx.recv().await {
                yield item;
            }
            let end = terminal_out.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(status) = end {
                yield Err(status);
            }
        }))
    }
}
