//! Revocation propagation: cursor → when Revoke returned on A, and cursor →
//! when the event arrived at a watcher on B. An event that arrives before
//! A's response counts as 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use tessera_client::pb;
use tokio::task::JoinHandle;

use super::report::percentile;
use super::{setup, BenchArgs, Scenario};

/// A subject revocation's event, the same on both sides: its subject's
/// partition and its position there. (Cursors are composite and each
/// replica's own; Revoke's puts the event's partition exactly at the event,
/// and so does the cursor a watcher gets with the event.)
pub type EventKey = Option<(u32, (u64, u64))>;

/// When each event was sent (Revoke answered) or arrived (at the watcher).
pub type Sent = Arc<Mutex<HashMap<EventKey, Instant>>>;

pub fn event_key(cursor: &str, tenant: &str, subject: &str) -> EventKey {
    let at = parse_cursor(cursor)?;
    let subject_key = tessera_core::revocation::subject_key(tenant, subject);
    let p = of_subject(&subject_key, at.len() as u32);
    Some((p, at.get(p as usize).copied().unwrap_or((0, 0))))
}

/// The partition of a subject key among `count`: the first 32 bits of its
/// SHA-256, modulo `count`. The server's rule (its store's partitions),
/// spelled again here so the bench needs no server crate; the tests below
/// pin it to vectors, and a `revoke` run with `--watch-addr` on a
/// partitioned store only matches its events if the two agree.
fn of_subject(name: &str, count: u32) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(name.as_bytes());
    u32::from_le_bytes([d[0], d[1], d[2], d[3]]) % count.max(1)
}

/// The per-partition positions of a `WatchRevocations` cursor: base64url of
/// a version byte (1), the deployment id (8 bytes), the partition count
/// and per partition `<ms>-<seq>` (varints, ms a zigzag delta from the
/// partition before). Read-only; the server's cursor module writes them.
fn parse_cursor(cursor: &str) -> Option<Vec<(u64, u64)>> {
    let raw = B64.decode(cursor).ok()?;
    let (&version, rest) = raw.split_first()?;
    if version != 1 || rest.len() < 8 {
        return None;
    }
    let mut rest = &rest[8..];
    let partitions = read_varint(&mut rest)?;
    if partitions > 4096 {
        return None;
    }
    let mut parts = Vec::with_capacity(partitions as usize);
    let mut prev = 0i128;
    for _ in 0..partitions {
        let z = i128::from(read_varint(&mut rest)?);
        let ms = u64::try_from(prev + ((z >> 1) ^ -(z & 1))).ok()?;
        prev = i128::from(ms);
        parts.push((ms, read_varint(&mut rest)?));
    }
    rest.is_empty().then_some(parts)
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        let bits = u64::from(b & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The two sides of a `revoke` run with `--watch-addr`.
pub struct Propagation {
    sent: Sent,
    arrived: Sent,
    watcher: Option<JoinHandle<()>>,
}

impl Propagation {
    /// Start watching `--watch-addr` (for `revoke` only).
    pub async fn start(args: &BenchArgs) -> Result<Self, String> {
        let (sent, arrived) = (Sent::default(), Sent::default());
        let mut watcher = None;
        if let (Scenario::Revoke, Some(w)) = (args.scenario, args.watch_addr) {
            let client = setup::client(setup::connect(w).await?, &args.api_key)?;
            let mut stream = client
                .watch(pb::WatchRevocationsRequest::default())
                .await
                .map_err(|e| format!("watch failed: {e}"))?;
            let arrived = arrived.clone();
            watcher = Some(tokio::spawn(async move {
                while let Ok(Some(ev)) = stream.message().await {
                    arrived.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        event_key(&ev.cursor, &ev.tenant, &ev.subject),
                        Instant::now(),
                    );
                }
            }));
        }
        Ok(Propagation {
            sent,
            arrived,
            watcher,
        })
    }

    pub fn sent(&self) -> Sent {
        self.sent.clone()
    }

    /// Stop watching (after letting the last events arrive) and summarise:
    /// `None` when no event was matched.
    pub async fn finish(self, watched: bool) -> Option<Value> {
        if let Some(w) = self.watcher {
            tokio::time::sleep(Duration::from_millis(500)).await;
            w.abort();
        }
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let arrived = self.arrived.lock().unwrap_or_else(|p| p.into_inner());
        let mut prop: Vec<u32> = sent
            .iter()
            .filter_map(|(cursor, t0)| {
                arrived
                    .get(cursor)
                    .map(|t1| t1.saturating_duration_since(*t0).as_micros() as u32)
            })
            .collect();
        let missing = if watched { sent.len() - prop.len() } else { 0 };
        prop.sort_unstable();
        (!prop.is_empty()).then(|| {
            json!({
                "events": prop.len(),
                "missing": missing,
                "p50": percentile(&prop, 0.50),
                "p99": percentile(&prop, 0.99),
                "max": percentile(&prop, 1.0),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors of the server's `store::partition::of_subject` (SHA-256's
    /// first four bytes, little-endian, modulo the count).
    #[test]
    fn subjects_fall_in_the_servers_partitions() {
        for (tenant, subject, key, of64, of7) in [
            ("bench", "bench-rv-abc-0", "3nZKHytEm7TUkWpZLf5Ep-", 58, 6),
            ("acme", "alice", "3qTq6uqiznO-LDZvXQ6gE_", 1, 5),
        ] {
            let k = tessera_core::revocation::subject_key(tenant, subject);
            assert_eq!(k, key);
            assert_eq!(of_subject(&k, 64), of64, "{subject}");
            assert_eq!(of_subject(&k, 7), of7, "{subject}");
        }
    }

    #[test]
    fn cursors_are_read_partition_by_partition() {
        // Version 1, deployment 42, 3 partitions: (1000, 2), (1000, 0), (999, 5).
        let mut raw = vec![1u8];
        raw.extend(42u64.to_le_bytes());
        raw.extend([3, 0xd0, 0x0f, 2, 0, 0, 1, 5]);
        let c = B64.encode(&raw);
        assert_eq!(parse_cursor(&c), Some(vec![(1000, 2), (1000, 0), (999, 5)]));
        assert_eq!(parse_cursor(&B64.encode(&raw[..raw.len() - 1])), None);
        assert_eq!(parse_cursor("1790000000123-0"), None);
        let key = event_key(&c, "acme", "alice");
        assert_eq!(
            key,
            Some((1, (1000, 0))),
            "alice is in partition 1 of 3? {key:?}"
        );
    }
}
