//! The revocation feed inside one replica: a reader that follows the store's
//! log, the in-memory revocation cache it feeds, and the ring of recent
//! events that `WatchRevocations` streams are served from.
//!
//! The log has one stream per partition (`--redis-partitions`; one in
//! memory). The store's pub/sub message only says "partition p's log grew";
//! the reader then reads that log from its position there, and every log
//! once a second. So the cache is exactly the logs, in order within each
//! partition, with no gap and no duplicate, however many notifications are
//! lost (fred drops pub/sub messages while disconnected and on lag:
//! docs/pitfalls.md). While any subscription is down the whole cache is
//! marked out of sync and the default `Verify` reads the store instead (fail
//! closed) until every partition has been read again.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::cursor::{LocalId, Position};
use crate::store::{parse_cursor, parse_event_ref, FeedSignal, RevocationEvent, Store};
pub use tessera_core::revocation::{CacheAnswer, RevocationCache};

/// Events kept in memory for watchers; older positions are read from the store.
pub const RING_CAPACITY: usize = 65_536;
/// Entries read from the log per round trip.
const READ_BATCH: usize = 1_000;
/// Safety net: read every log this often even without a notification.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Re-subscribing after a failure: exponential backoff with full jitter
/// (`tessera_core::backoff`), from under 100 ms up to 5 s between tries, so
/// a fleet does not hammer a Redis that is coming back.
const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(5);

struct Ring {
    /// Events in the order applied, with their parsed position.
    events: VecDeque<(LocalId, RevocationEvent)>,
    /// The sequence number (count of events ever applied) of `events[0]`.
    front_seq: u64,
    /// Every event after this position (per partition) is in `events`.
    base: Position,
}

/// Where a watcher stands in the ring: the sequence number of the next event
/// it has not looked at. Every event before it is covered by the watcher's
/// position, so a watcher at the live edge looks at new events only.
#[derive(Debug, Clone, Copy, Default)]
pub struct RingHint(u64);

/// One replica's view of the revocation feed.
pub struct Feed {
    cache: RevocationCache,
    ring: RwLock<Ring>,
    /// The position of the last event applied, per partition; watchers wait
    /// on changes.
    head: watch::Sender<Position>,
    /// Per partition, when it was last read to its end (Unix ms; 0 = never).
    caught_up_ms: Vec<std::sync::atomic::AtomicI64>,
}

impl Feed {
    /// The feed of a log of `partitions` partitions.
    pub fn new(partitions: u32) -> Arc<Self> {
        let (head, _) = watch::channel(Position::start(partitions));
        Arc::new(Feed {
            cache: RevocationCache::default(),
            ring: RwLock::new(Ring {
                events: VecDeque::new(),
                front_seq: 0,
                base: Position::start(partitions),
            }),
            head,
            caught_up_ms: (0..partitions).map(|_| Default::default()).collect(),
        })
    }

    /// Is the cache complete up to the latest notification of every partition?
    pub fn in_sync(&self) -> bool {
        self.cache.in_sync()
    }

    /// The position of the last event applied in each partition.
    pub fn head(&self) -> Position {
        self.head.borrow().clone()
    }

    /// Wait for the head to move.
    pub fn subscribe_head(&self) -> watch::Receiver<Position> {
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

    /// Wait (at most `timeout`) until the cache has applied the event
    /// `event` (a store's [`crate::store::event_ref`]), so a caller that
    /// revoked on this replica reads its own write here.
    pub async fn wait_applied(&self, event: &str, timeout: Duration) -> bool {
        let Some((p, target)) = parse_event_ref(event) else {
            return false;
        };
        let mut head = self.head.subscribe();
        let reached = |h: &Position| h.covers(p, target);
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

    /// Up to `limit` events not covered by `after`, if the ring holds every
    /// one of them; `None` when the caller must read the store instead.
    /// `hint` is the caller's place in the ring, moved past what it returns.
    pub fn ring_after(
        &self,
        after: &Position,
        hint: &mut RingHint,
        limit: usize,
    ) -> Option<Vec<RevocationEvent>> {
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        if after.partitions() != ring.base.partitions()
            || (0..after.partitions()).any(|p| after.get(p) < ring.base.get(p))
        {
            return None;
        }
        let skip = hint.0.saturating_sub(ring.front_seq) as usize;
        let mut out = Vec::new();
        let mut seq = ring.front_seq + skip as u64;
        for (id, ev) in ring.events.iter().skip(skip) {
            if out.len() == limit {
                break;
            }
            seq += 1;
            if !after.covers(ev.partition, *id) {
                out.push(ev.clone());
            }
        }
        hint.0 = seq;
        Some(out)
    }

    /// Apply events to the cache and ring (the feed reader's step; public
    /// for benchmarks and tests). Events of a partition the feed does not
    /// have, or with a cursor that does not parse, are not applied.
    pub fn apply(&self, events: &[RevocationEvent]) {
        if events.is_empty() {
            return;
        }
        let mut head = self.head();
        let parsed: Vec<(LocalId, &RevocationEvent)> = events
            .iter()
            .filter_map(|ev| Some((parse_cursor(&ev.cursor)?, ev)))
            .filter(|(id, ev)| head.advance(ev.partition, *id))
            .collect();
        self.cache.apply(events);
        {
            let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
            for (id, ev) in &parsed {
                ring.events.push_back((*id, (*ev).clone()));
            }
            while ring.events.len() > RING_CAPACITY {
                if let Some((id, old)) = ring.events.pop_front() {
                    ring.front_seq += 1;
                    ring.base.advance(old.partition, id);
                }
            }
        }
        let now = crate::clock::now_ms();
        for ev in events {
            let lag_ms = (now - ev.revoked_at_ms).max(0);
            metrics::histogram!(crate::telemetry::FEED_LAG).record(lag_ms as f64 / 1000.0);
            crate::trace::applied(ev, lag_ms);
        }
        self.head.send_replace(head);
    }

    /// Read the logs from the head until exhausted: partition `only`, or all.
    async fn catch_up<S: Store>(
        &self,
        store: &S,
        only: Option<u32>,
    ) -> Result<(), crate::store::StoreError> {
        loop {
            let after = self.head();
            let events = store.read_log(&after, only, READ_BATCH).await?;
            let done = events.len() < READ_BATCH;
            self.apply(&events);
            if done {
                let now = crate::clock::now_ms();
                for (p, at) in self.caught_up_ms.iter().enumerate() {
                    if only.is_none_or(|o| o as usize == p) {
                        at.store(now, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                return Ok(());
            }
        }
    }

    /// Seconds since each partition was last read to its end (`None`: never).
    pub fn partition_lag_seconds(&self, now_ms: i64) -> Vec<Option<f64>> {
        self.caught_up_ms
            .iter()
            .map(|at| match at.load(std::sync::atomic::Ordering::Relaxed) {
                0 => None,
                at => Some((now_ms - at).max(0) as f64 / 1000.0),
            })
            .collect()
    }

    /// `tessera_feed_partition_lag_seconds{partition}`: how long ago each
    /// partition's log was last read to its end (-1 before the first time).
    fn record_partition_lag(&self, now_ms: i64) {
        for (p, lag) in self.partition_lag_seconds(now_ms).into_iter().enumerate() {
            metrics::gauge!(crate::telemetry::FEED_PARTITION_LAG, "partition" => p.to_string())
                .set(lag.unwrap_or(-1.0));
        }
    }

    /// Follow the store until `shutdown` fires. Spawned once per replica.
    pub async fn run<S: Store>(
        self: Arc<Self>,
        store: Arc<S>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut expire = tokio::time::interval(Duration::from_secs(1));
        let mut backoff = tessera_core::backoff::Backoff::new(RETRY_BASE, RETRY_CAP);
        'outer: loop {
            self.set_in_sync(false);
            let mut signals = match subscribe(store.as_ref(), &mut backoff, &mut shutdown).await {
                Subscribed::Yes(rx) => rx,
                Subscribed::Retry => continue,
                Subscribed::Shutdown => break,
            };
            let mut subscribed = false;
            let mut poll = tokio::time::interval(POLL_INTERVAL);
            loop {
                let first = tokio::select! {
                    signal = signals.recv() => match signal {
                        Some(signal) => Some(signal),
                        None => continue 'outer,
                    },
                    _ = poll.tick() => None,
                    _ = expire.tick() => {
                        self.housekeeping(crate::clock::now_ms());
                        continue;
                    }
                    _ = shutdown.changed() => break 'outer,
                };
                let round = Round::drain(first, &mut signals, &mut subscribed);
                if round.lost {
                    self.set_in_sync(false);
                    tracing::warn!("revocation feed: subscription lost; verifying against the store until resynchronised");
                    if !subscribed {
                        continue;
                    }
                }
                self.read_round(store.as_ref(), &round, subscribed).await;
            }
        }
        self.set_in_sync(false);
    }

    /// Every second: drop expired entries and refresh the feed's gauges.
    fn housekeeping(&self, now: i64) {
        self.cache.expire(now);
        metrics::gauge!(crate::telemetry::CACHE_ENTRIES).set(self.cached_entries() as f64);
        metrics::gauge!(crate::telemetry::FEED_IN_SYNC).set(if self.in_sync() { 1.0 } else { 0.0 });
        self.record_partition_lag(now);
    }

    /// Read the partitions a round names, then decide whether the cache is
    /// trusted: only when subscribed *and* every partition was read after
    /// subscribing (a read of some partitions keeps trust, never gives it).
    async fn read_round<S: Store>(&self, store: &S, round: &Round, subscribed: bool) {
        let read = if round.all {
            self.catch_up(store, None).await
        } else {
            futures::future::try_join_all(
                round.parts.iter().map(|p| self.catch_up(store, Some(*p))),
            )
            .await
            .map(|_| ())
        };
        match read {
            Ok(()) => {
                let trusted = subscribed && (round.all || self.in_sync());
                if trusted && !self.in_sync() {
                    tracing::info!(
                        partitions = self.head().partitions(),
                        "revocation feed: in sync"
                    );
                }
                self.set_in_sync(trusted);
            }
            Err(e) => {
                self.set_in_sync(false);
                tracing::warn!(error = %e, "revocation feed: cannot read the log");
            }
        }
    }
}

/// What one attempt to subscribe gave.
enum Subscribed {
    Yes(tokio::sync::mpsc::Receiver<FeedSignal>),
    /// It failed and the backoff has been waited out: try again.
    Retry,
    Shutdown,
}

/// Subscribe to the store's notifications; after a failure, wait the next
/// backoff delay (or until shutdown).
async fn subscribe<S: Store>(
    store: &S,
    backoff: &mut tessera_core::backoff::Backoff,
    shutdown: &mut watch::Receiver<bool>,
) -> Subscribed {
    match store.subscribe().await {
        Ok(rx) => {
            backoff.reset();
            Subscribed::Yes(rx)
        }
        Err(e) => {
            let delay = backoff.next_delay();
            tracing::warn!(error = %e, ?delay, "revocation feed: subscribe failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => Subscribed::Retry,
                _ = shutdown.changed() => Subscribed::Shutdown,
            }
        }
    }
}

/// One round of reading: what the signals queued so far ask for.
struct Round {
    /// Read every partition.
    all: bool,
    /// Else these.
    parts: std::collections::BTreeSet<u32>,
    /// The subscription lost notifications.
    lost: bool,
}

impl Round {
    /// Everything queued meanwhile joins this round: one read per partition
    /// named, however many wake-ups named it. A poll (`first` is `None`), a
    /// wake-up that names none and a restored subscription read every
    /// partition. `subscribed` follows `Restored` and `Lost`.
    fn drain(
        first: Option<FeedSignal>,
        signals: &mut tokio::sync::mpsc::Receiver<FeedSignal>,
        subscribed: &mut bool,
    ) -> Self {
        let mut round = Round {
            all: first.is_none(),
            parts: std::collections::BTreeSet::new(),
            lost: false,
        };
        let mut next = first;
        while let Some(signal) = next.take().or_else(|| signals.try_recv().ok()) {
            match signal {
                FeedSignal::Appended(Some(p)) => {
                    round.parts.insert(p);
                }
                FeedSignal::Appended(None) => round.all = true,
                FeedSignal::Restored => {
                    *subscribed = true;
                    round.all = true;
                }
                FeedSignal::Lost => {
                    *subscribed = false;
                    round.lost = true;
                }
            }
        }
        round
    }
}
