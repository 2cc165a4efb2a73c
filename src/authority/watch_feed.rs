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

use tokio::sync::{mpsc, watch};
use tonic::Status;
use tracing::Instrument;

use super::tenancy::Acting;
use super::validate::{is_hidden_char, Violations, MAX_LIST_LEN, MAX_NAME_BYTES};
use super::{timestamp_ms, Authority};
use crate::authority::scope::TenantScope;
use crate::error::Error;
use crate::feed::{Feed, RingHint};
use crate::pb;
use crate::store::{parse_event_ref, Position, RevocationEvent, RevocationKind, Store};

/// The stream of a watch, as the tonic service returns it.
pub(crate) type WatchStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::RevocationEvent, Status>> + Send>>;

/// Events buffered per watcher before it counts as slow.
pub const WATCH_BUFFER: usize = 256;
/// Events read per step.
const BATCH: usize = 256;

/// `e` as sent, with `cursor` the watcher's whole position after it. A
/// token or session event carries no subject (a verifier matches it by
/// `jti` or session id); a subject event carries its subject key, and with
/// `raw_subject` (`--watch-raw-subjects`) the raw subject for verifiers
/// written before the key was sent.
fn to_proto(e: &RevocationEvent, cursor: String, raw_subject: bool) -> pb::RevocationEvent {
    let subject_kind = e.kind == RevocationKind::Subject;
    let kind = match e.kind {
        RevocationKind::Token => pb::RevocationKind::Token,
        RevocationKind::Session => pb::RevocationKind::Session,
        RevocationKind::Subject => pb::RevocationKind::Subject,
    };
    pb::RevocationEvent {
        cursor,
        kind: kind as i32,
        token_id: e.token_id.clone(),
        session_id: e.session_id.clone(),
        tenant: e.tenant.clone(),
        subject: if subject_kind && raw_subject {
            e.subject.clone()
        } else {
            String::new()
        },
        revoked_at: Some(timestamp_ms(e.revoked_at_ms)),
        issued_before: subject_kind.then(|| timestamp_ms(e.issued_before_ms)),
        expires_at: Some(timestamp_ms(e.expires_at_ms)),
        subject_key: if subject_kind {
            crate::store::subject_key(&e.tenant, &e.subject)
        } else {
            String::new()
        },
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
    /// The position a cursor names. Refused: a cursor that is malformed,
    /// of another deployment or partition count, or beyond the last event a
    /// partition's log ever had (made up): a watcher resuming from it would
    /// be told it is caught up and then hear nothing until the log passed
    /// it, a local verifier failing open meanwhile.
    async fn position_of(&self, cursor: &str, deployment: u64) -> Result<Position, Error> {
        let partitions = self.store.log_partitions();
        let after = Position::decode(cursor, deployment, partitions).ok_or(Error::CursorInvalid)?;
        if after.within(&self.feed.head()) {
            return Ok(after);
        }
        // This replica's feed may lag the store: the store decides.
        if after.within(&self.store.log_head().await?) {
            Ok(after)
        } else {
            Err(Error::CursorInvalid)
        }
    }

    /// The cursor to answer for a revocation whose event is `event` (a
    /// store's reference, "" for none): this replica's feed position with
    /// the event's partition put exactly at the event. Resuming from it
    /// delivers what follows the event in its partition (and what follows
    /// this replica's position in the others); a watcher that got the
    /// event holds a cursor with the same position in that partition.
    pub(crate) async fn cursor_after(&self, event: &str) -> Result<String, Error> {
        let Some((p, id)) = parse_event_ref(event) else {
            return Ok(String::new());
        };
        let mut at = self.feed.head();
        at.set(p, id);
        Ok(at.encode(self.store.deployment().await?))
    }

    /// The tenants a watch delivers: the caller's scope, narrowed by the
    /// request's `tenants` (one outside the scope is refused).
    fn watch_scope(&self, who: &Acting<'_>, wanted: &[String]) -> Result<TenantScope, Error> {
        let mut v = Violations::default();
        if wanted.len() > MAX_LIST_LEN {
            v.add(
                "tenants",
                format!("must have at most {MAX_LIST_LEN} entries"),
            );
        }
        if wanted
            .iter()
            .any(|t| t.len() > MAX_NAME_BYTES || t.chars().any(is_hidden_char))
        {
            v.add(
                "tenants",
                format!("entries must be at most {MAX_NAME_BYTES} bytes of printable text"),
            );
        }
        v.finish()?;
        who.scope
            .narrow(wanted)
            .map_err(|outside| self.refuse(who, &outside))
    }

    pub(crate) async fn watch(
        &self,
        request: pb::WatchRevocationsRequest,
        who: &Acting<'_>,
    ) -> Result<WatchStream, Error> {
        // Filtered here, after the log is read: the cursor moves past what
        // is left out, so it stays a position in the whole feed.
        let filter = self.watch_scope(who, &request.tenants)?;
        let deployment = self.store.deployment().await?;
        // Empty cursor: only new events, unless a snapshot was asked for, in
        // which case the whole retained log is every revocation in force.
        let snapshot = request.include_snapshot && request.after_cursor.is_empty();
        let start = if !request.after_cursor.is_empty() {
            self.position_of(&request.after_cursor, deployment).await?
        } else if snapshot {
            Position::start(self.store.log_partitions())
        } else {
            self.feed.head()
        };
        let (tx, mut rx) = mpsc::channel(WATCH_BUFFER);
        let terminal: Arc<Mutex<Option<Status>>> = Arc::default();
        let terminal_out = terminal.clone();
        let watcher = Watcher {
            store: self.store.clone(),
            feed: self.feed.clone(),
            shutdown: self.shutdown.clone(),
            tx,
            terminal,
            filter,
            deployment,
            snapshot,
            marker_pending: request.mark_caught_up,
            send_timeout: self.policy.watch_send_timeout,
            raw_subjects: self.policy.watch_raw_subjects,
        };
        tokio::spawn(watcher.run(start).instrument(tracing::info_span!("watch")));
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

/// One watcher's producer: pulls from its own cursor into its bounded
/// channel until the client leaves, the server drains, the store fails or
/// the watcher is too slow.
struct Watcher<S: Store> {
    store: Arc<S>,
    feed: Arc<Feed>,
    shutdown: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<pb::RevocationEvent, Status>>,
    /// How the stream ends when the producer gives up while the buffer is
    /// full (slow watcher): delivered after the buffered events.
    terminal: Arc<Mutex<Option<Status>>>,
    /// The tenants delivered (`Authority::watch_scope`).
    filter: TenantScope,
    deployment: u64,
    /// A snapshot watch leaves out events no longer in force.
    snapshot: bool,
    /// The caught-up marker is still to be sent (`mark_caught_up`).
    marker_pending: bool,
    send_timeout: Duration,
    raw_subjects: bool,
}

impl<S: Store> Watcher<S> {
    /// The watcher's loop from `cursor`: the next batch from the ring when
    /// it covers the cursor, else from the store's log; sent, or waited
    /// for when there is none. Replay and live are this one path.
    async fn run(mut self, mut cursor: Position) {
        metrics::gauge!(crate::telemetry::WATCHERS).increment(1.0);
        let _gauge = WatcherGauge;
        let mut hint = RingHint::default();
        let mut head = self.feed.subscribe_head();
        loop {
            let batch = match self.feed.ring_after(&cursor, &mut hint, BATCH) {
                Some(events) => Ok(events),
                None => self
                    .store
                    .read_log(&cursor, None, BATCH)
                    .await
                    .map_err(Error::from),
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    let _ = self.tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            let more = if batch.is_empty() {
                self.caught_up(&cursor, &mut head).await
            } else {
                self.send_batch(&batch, &mut cursor).await
            };
            if !more {
                return;
            }
        }
    }

    /// Nothing more to read: the caught-up marker once (if asked for),
    /// then wait until the feed head moves, a second passes, the client
    /// leaves or the server drains. `false`: the stream ends.
    async fn caught_up(&mut self, cursor: &Position, head: &mut watch::Receiver<Position>) -> bool {
        if std::mem::take(&mut self.marker_pending) {
            // Caught up with the live feed: tell the watcher.
            let marker = pb::RevocationEvent {
                cursor: cursor.encode(self.deployment),
                kind: pb::RevocationKind::Unspecified as i32,
                ..Default::default()
            };
            if self.tx.send(Ok(marker)).await.is_err() {
                return false;
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return false },
            _ = self.shutdown.changed() => {
                let _ = self.tx.send(Err(Status::unavailable("server shutting down; resume from your last cursor"))).await;
                return false;
            }
            _ = self.tx.closed() => return false,
            // Recheck now and then: the store may have events the
            // ring never saw while this replica was out of sync.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        true
    }

    /// Send `batch`, moving `cursor` past each event, whether it is sent or
    /// left out (expired in a snapshot, another tenant's). A send that
    /// waits longer than `--watch-send-timeout` ends the stream with
    /// `RESOURCE_EXHAUSTED`. `false`: the stream ends.
    async fn send_batch(&mut self, batch: &[RevocationEvent], cursor: &mut Position) -> bool {
        let now = crate::clock::now_ms();
        for event in batch {
            cursor.advance_past(event);
            if self.snapshot && event.expires_at_ms <= now {
                continue; // no longer in force; the cursor still moves
            }
            if !self.filter.allows(&event.tenant) {
                continue; // another tenant's; the cursor still moves
            }
            let sent = to_proto(event, cursor.encode(self.deployment), self.raw_subjects);
            match tokio::time::timeout(self.send_timeout, self.tx.send(Ok(sent))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return false, // the client went away
                Err(_) => {
                    tracing::info!("watcher too slow; ending its stream");
                    let status = Status::resource_exhausted(
                        "watcher too slow; resume from your last cursor",
                    );
                    *self.terminal.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
                    return false;
                }
            }
        }
        true
    }
}
