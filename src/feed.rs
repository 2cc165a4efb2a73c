//! The revocation feed inside one replica: a reader that follows the store's
//! log, the in-memory revocation cache it feeds, and the ring of recent
//! events that `WatchRevocations` streams are served from.
//!
//! The store's pub/sub message only says "the log grew"; the reader then
//! reads the log from its last cursor. So the cache is exactly the log, in
//! order, with no gap and no duplicate, however many notifications are lost
//! (fred drops pub/sub messages while disconnected and on lag: docs/pitfalls.md).
//! While the subscription is down the cache is marked out of sync and the
//! default `Verify` reads the store instead (fail closed).

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{parse_cursor, FeedSignal, RevocationEvent, Store};
pub use tessera_core::revocation::{CacheAnswer, RevocationCache};

/// Events kept in memory for watchers; older positions are read from the store.
pub const RING_CAPACITY: usize = 65_536;
/// Entries read from the log per round trip.
const READ_BATCH: usize = 1_000;
/// Safety net: read the log this often even without a notification.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

struct Ring {
    events: VecDeque<RevocationEvent>,
    /// Every event after this cursor (up to the head) is in `events`.
    base: (u64, u64),
}

/// One replica's view of the revocation feed.
pub struct Feed {
    cache: RevocationCache,
    ring: RwLock<Ring>,
    /// The cursor of the last event applied; watchers wait on changes.
    head: watch::Sender<String>,
}

impl Feed {
    pub fn new() -> Arc<Self> {
        let (head, _) = watch::channel(String::new());
        Arc::new(Feed {
            cache: RevocationCache::default(),
            ring: RwLock::new(Ring {
                events: VecDeque::new(),
                base: (0, 0),
            }),
            head,
        })
    }

    /// Is the cache complete up to the latest notification?
    pub fn in_sync(&self) -> bool {
        self.cache.in_sync()
    }

    /// The cursor of the last event applied ("" before any).
    pub fn head(&self) -> String {
        self.head.borrow().clone()
    }

    /// Wait for the head to move.
    pub fn subscribe_head(&self) -> watch::Receiver<String> {
        self.head.subscribe()
    }

    /// Declare the cache complete (or not). The server's feed reader does
    /// this itself; a local verifier fed by `WatchRevocations` calls it when
    /// the stream has caught up, and with `false` when the stream breaks.
    pub fn set_in_sync(&self, in_sync: bool) {
        self.cache.set_in_sync(in_sync);
    }

    /// Drop entries whose tokens have expired.
    pub fn expire(&self, now_ms: i64) {
        self.cache.expire(now_ms);
    }

    /// Wait (at most `timeout`) until the cache has applied `cursor`, so a
    /// caller that revoked on this replica reads its own write here.
    pub async fn wait_applied(&self, cursor: &str, timeout: Duration) -> bool {
        let Some(target) = parse_cursor(cursor) else {
            return false;
        };
        let mut head = self.head.subscribe();
        let reached = |h: &String| parse_cursor(h).is_some_and(|h| h >= target);
        tokio::time::timeout(timeout, head.wait_for(reached))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Does the cache say a token is revoked?
    pub fn check(
        &self,
        jti: &str,
        sid: &str,
        subject_key: &str,
        iat: i64,
        now_ms: i64,
    ) -> CacheAnswer {
        self.cache.check(jti, sid, subject_key, iat, now_ms)
    }

    /// Number of cached revocations (for tests and metrics).
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    /// Up to `limit` events after `after` if the ring covers that position;
    /// `None` when the caller must read the store instead.
    pub fn ring_after(&self, after: &str, limit: usize) -> Option<Vec<RevocationEvent>> {
        let after = parse_cursor(after)?;
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        if after < ring.base {
            return None;
        }
        let start = ring
            .events
            .partition_point(|e| parse_cursor(&e.cursor).is_some_and(|c| c <= after));
        Some(
            ring.events
                .iter()
                .skip(start)
                .take(limit)
                .cloned()
                .collect(),
        )
    }

    /// Apply events to the cache and ring (the feed reader's step; public
    /// for benchmarks and tests).
    pub fn apply(&self, events: &[RevocationEvent]) {
        if events.is_empty() {
            return;
        }
        self.cache.apply(events);
        {
            let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
            for ev in events {
                ring.events.push_back(ev.clone());
            }
            while ring.events.len() > RING_CAPACITY {
                if let Some(old) = ring.events.pop_front() {
                    ring.base = parse_cursor(&old.cursor).unwrap_or(ring.base);
                }
            }
        }
        let now = crate::clock::now_ms();
        for ev in events {
            let lag = (now - ev.revoked_at_ms).max(0) as f64 / 1000.0;
            metrics::histogram!(crate::telemetry::FEED_LAG).record(lag);
        }
        if let Some(last) = events.last() {
            self.head.send_replace(last.cursor.clone());
        }
    }

    /// Read the log from the head until it is exhausted.
    async fn catch_up<S: Store>(&self, store: &S) -> Result<(), crate::error::StoreError> {
        loop {
            let after = self.head();
            let events = store.read_log(&after, READ_BATCH).await?;
            let done = events.len() < READ_BATCH;
            self.apply(&events);
            if done {
                return Ok(());
            }
        }
    }

    /// Follow the store until `shutdown` fires. Spawned once per replica.
    pub async fn run<S: Store>(
        self: Arc<Self>,
        store: Arc<S>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut expire = tokio::time::interval(Duration::from_secs(1));
        'outer: loop {
            self.set_in_sync(false);
            let mut signals = match store.subscribe().await {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation feed: subscribe failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = shutdown.changed() => break,
                    }
                }
            };
            let mut subscribed = false;
            let mut poll = tokio::time::interval(POLL_INTERVAL);
            loop {
                tokio::select! {
                    signal = signals.recv() => match signal {
                        Some(FeedSignal::Appended) => {}
                        Some(FeedSignal::Restored) => subscribed = true,
                        Some(FeedSignal::Lost) => {
                            subscribed = false;
                            self.set_in_sync(false);
                            tracing::warn!("revocation feed: subscription lost; verifying against the store until resynchronised");
                            continue;
                        }
                        None => continue 'outer,
                    },
                    _ = poll.tick() => {}
                    _ = expire.tick() => {
                        let now = crate::clock::now_ms();
                        self.cache.expire(now);
                        metrics::gauge!(crate::telemetry::CACHE_ENTRIES).set(self.cached_entries() as f64);
                        metrics::gauge!(crate::telemetry::FEED_IN_SYNC).set(if self.in_sync() { 1.0 } else { 0.0 });
                        continue;
                    }
                    _ = shutdown.changed() => break 'outer,
                }
                match self.catch_up(store.as_ref()).await {
                    Ok(()) => {
                        // Trusted only when subscribed *and* read after subscribing.
                        if subscribed && !self.in_sync() {
                            tracing::info!(cursor = %self.head(), "revocation feed: in sync");
                        }
                        self.set_in_sync(subscribed);
                    }
                    Err(e) => {
                        self.set_in_sync(false);
                        tracing::warn!(error = %e, "revocation feed: cannot read the log");
                    }
                }
            }
        }
        self.set_in_sync(false);
    }
}
