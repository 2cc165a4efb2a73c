//! Revocation propagation: cursor → when Revoke returned on A, and cursor →
//! when the event arrived at a watcher on B. An event that arrives before
//! A's response counts as 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_client::pb;
use tessera_core::cursor::Position;
use tessera_core::partition::of_subject;
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
    let (_, at) = Position::parse(cursor)?;
    let subject_key = tessera_core::revocation::subject_key(tenant, subject);
    // The server's rule: a `revoke` run with `--watch-addr` on a partitioned
    // store only matches its events because both place subjects by it.
    let p = of_subject(&subject_key, at.partitions());
    Some((p, at.get(p)))
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

    /// An event is keyed by its subject's partition and the cursor's
    /// position there, whatever the other partitions say.
    #[test]
    fn events_are_keyed_by_their_subjects_partition() {
        // alice of acme is in partition 1 of 3.
        let mut at = Position::start(3);
        at.set(0, (1000, 2));
        at.set(1, (1000, 0));
        at.set(2, (999, 5));
        let c = at.encode(42);
        assert_eq!(event_key(&c, "acme", "alice"), Some((1, (1000, 0))));
        assert_eq!(event_key("1790000000123-0", "acme", "alice"), None);
    }
}
