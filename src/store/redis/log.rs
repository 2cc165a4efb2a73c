//! The revocation logs in Redis, from the reader's side: reading them after
//! a position, and following the sharded pub/sub channels that say they
//! grew (one stream and one channel per partition). A channel only *wakes*
//! the feed reader, which then reads the durable log, so a lost or lagged
//! message loses nothing (docs/pitfalls.md, fred).

use std::collections::HashMap;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::streams::XReadValue;
use tokio::sync::{broadcast, mpsc};

use super::{key, num, unavailable};
use crate::store::partition::Partitions;
use crate::store::schema;
use crate::store::StoreError;
use crate::store::{parse_cursor, FeedSignal, Position, RevocationEvent, RevocationKind};

/// Up to `limit` log entries after `after`: of partition `only`, or of
/// every partition. Fewer than `limit` only when every log read is
/// exhausted.
///
/// Every partition is asked for an equal share of `limit` at once; the
/// ones that filled their share are asked again for a share of what room
/// is left, until the room or the full partitions run out. So a backlog
/// (a snapshot, a resync) reads about `limit` entries per call, wherever
/// they sit, instead of `limit` from each of P logs to keep `limit` of
/// them. (With more partitions than room, each is asked for one: at most
/// P − `limit` entries are read and left for the next call, and the oldest
/// are kept, whichever logs hold them: no log waits for the others' backlog.)
pub(super) async fn read(
    client: &Client,
    parts: &Partitions,
    after: &Position,
    only: Option<u32>,
    limit: usize,
) -> Result<Vec<RevocationEvent>, StoreError> {
    // (partition, XRANGE start) of the logs that may hold more.
    let mut open: Vec<(u32, String)> = match only {
        Some(p) if p < parts.count() => vec![p],
        Some(_) => vec![],
        None => (0..parts.count()).collect(),
    }
    .into_iter()
    .map(|p| match after.local(p) {
        l if l.is_empty() => (p, "-".to_owned()),
        l => (p, format!("({l}")),
    })
    .collect();
    let mut out = Vec::new();
    while !open.is_empty() && out.len() < limit {
        let share = ((limit - out.len()) / open.len()).max(1);
        let reads = open.iter().map(|(p, start)| async move {
            let entries: Vec<XReadValue<String, String, String>> = client
                .xrange_values(
                    key(parts.prefix(*p), schema::LOG),
                    start.as_str(),
                    "+",
                    Some(share as u64),
                )
                .await
                .map_err(unavailable)?;
            entries
                .into_iter()
                .map(|(id, fields)| event_from(*p, id, fields))
                .collect::<Result<Vec<_>, _>>()
        });
        let read = futures::future::try_join_all(reads).await?;
        let taken = oldest_first(&read, limit - out.len());
        let mut next = Vec::new();
        for (((p, _), events), taken) in open.iter().zip(read).zip(taken) {
            if events.len() == share && taken == share {
                next.push((*p, format!("({}", events[taken - 1].cursor)));
            }
            out.extend(events.into_iter().take(taken));
        }
        open = next;
    }
    Ok(out)
}

/// How many of each log's entries `read` (each in log order) to take to fill
/// `room`: all of them when they fit, else the `room` oldest by their ids'
/// instants, which are a prefix of each log.
fn oldest_first(read: &[Vec<RevocationEvent>], room: usize) -> Vec<usize> {
    let mut taken: Vec<usize> = read.iter().map(Vec::len).collect();
    if taken.iter().sum::<usize>() <= room {
        return taken;
    }
    let mut ids: Vec<((u64, u64), usize)> = read
        .iter()
        .enumerate()
        .flat_map(|(i, events)| {
            events
                .iter()
                .map(move |e| (parse_cursor(&e.cursor).unwrap_or((u64::MAX, 0)), i))
        })
        .collect();
    ids.sort_unstable();
    taken.fill(0);
    for (_, i) in ids.into_iter().take(room) {
        taken[i] += 1;
    }
    taken
}

fn event_from(
    partition: u32,
    id: String,
    fields: HashMap<String, String>,
) -> Result<RevocationEvent, StoreError> {
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let kind = RevocationKind::from_code(&get("k"))
        .ok_or_else(|| StoreError::Corrupt(format!("log entry {id} has no kind")))?;
    Ok(RevocationEvent {
        cursor: id,
        partition,
        kind,
        token_id: get("jti"),
        session_id: get("sid"),
        tenant: get("tid"),
        subject: get("sub"),
        subject_key: String::new(),
        revoked_at_ms: num(&get("at"))?,
        issued_before_ms: num(&get("ib"))?,
        expires_at_ms: num(&get("exp"))?,
        // Absent from entries written before traces were kept: "".
        traceparent: get("tp"),
    })
}

/// Follow every partition's channel with `subscriber` (not yet connected):
/// signals that a log grew, that notifications may have been lost, and that
/// the subscriptions are back. Ends when the receiver is dropped.
///
/// `SSUBSCRIBE` names channels of one slot only, so each partition is
/// subscribed on its own. A Redis that moves a slot away (resharding) ends
/// its subscription with a `SUNSUBSCRIBE` that fred drops silently; every
/// subscription is therefore renewed every [`RENEW`] (a no-op on the node
/// that still has it), and the feed reads every log each second anyway.
pub(super) fn follow(
    subscriber: SubscriberClient,
    parts: &Partitions,
) -> mpsc::Receiver<FeedSignal> {
    let (channels, by_channel) = channels(parts);
    let mut messages = subscriber.message_rx();
    let mut errors = subscriber.error_rx();
    let mut reconnects = subscriber.reconnect_rx();
    subscriber.connect();
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        // Until the first SUBSCRIBE succeeds the reader must not trust anything.
        let mut subscribed = false;
        let mut poll = tokio::time::interval(Duration::from_millis(200));
        let mut renew = tokio::time::interval(RENEW);
        let mut overflowed = false;
        loop {
            if !subscribed
                && subscriber.is_connected()
                && subscribe_all(&subscriber, &channels).await
            {
                subscribed = true;
                if tx.send(FeedSignal::Restored).await.is_err() {
                    break;
                }
            }
            let signal = tokio::select! {
                msg = messages.recv() => match msg {
                    Ok(m) => Some(FeedSignal::Appended(by_channel.get(&*m.channel).copied())),
                    // Lagged behind fred's broadcast (capacity 32): notifications
                    // were dropped, not log entries; re-read every log.
                    Err(broadcast::error::RecvError::Lagged(_)) => Some(FeedSignal::Appended(None)),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = errors.recv() => {
                    subscribed = false;
                    Some(FeedSignal::Lost)
                }
                _ = reconnects.recv() => {
                    // A connection (of one node, on a Cluster) was lost and is
                    // back: notifications may be missing. Re-subscribe
                    // ourselves, then re-read: anything published while we
                    // were away is in the log.
                    subscribed = false;
                    Some(FeedSignal::Lost)
                }
                _ = poll.tick() => {
                    if subscribed && !subscriber.is_connected() {
                        subscribed = false;
                        Some(FeedSignal::Lost)
                    } else if std::mem::take(&mut overflowed) {
                        Some(FeedSignal::Appended(None))
                    } else {
                        None
                    }
                }
                _ = renew.tick() => {
                    if subscribed && !subscribe_all(&subscriber, &channels).await {
                        subscribed = false;
                        Some(FeedSignal::Lost)
                    } else {
                        None
                    }
                }
                _ = tx.closed() => break,
            };
            if let Some(signal) = signal {
                if !forward(&tx, signal, &mut overflowed).await {
                    break;
                }
            }
        }
        let _ = subscriber.quit().await;
    });
    rx
}

/// Every partition's channel, and the partition of each.
fn channels(parts: &Partitions) -> (Vec<String>, HashMap<String, u32>) {
    let channels: Vec<String> = (0..parts.count())
        .map(|p| schema::channel(parts.prefix(p)))
        .collect();
    let by_channel = channels
        .iter()
        .enumerate()
        .map(|(p, c)| (c.clone(), p as u32))
        .collect();
    (channels, by_channel)
}

/// Hand a signal to the feed reader; false once it is gone. Appended
/// signals coalesce: one that finds the queue full becomes an "any
/// partition" wake-up (`overflowed`), sent with the next signal or at the
/// next tick. Lost must get through.
async fn forward(tx: &mpsc::Sender<FeedSignal>, signal: FeedSignal, overflowed: &mut bool) -> bool {
    match signal {
        FeedSignal::Appended(_) => match tx.try_send(if *overflowed {
            FeedSignal::Appended(None)
        } else {
            signal
        }) {
            Ok(()) => {
                *overflowed = false;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                *overflowed = true;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        },
        _ => tx.send(signal).await.is_ok(),
    }
}

/// How often every subscription is renewed (see [`follow`]).
const RENEW: Duration = Duration::from_secs(5);

/// `SSUBSCRIBE` each channel (one slot per command), all at once so the
/// follower loop waits one round trip rather than P of them; false if any
/// failed.
async fn subscribe_all(subscriber: &SubscriberClient, channels: &[String]) -> bool {
    futures::future::join_all(channels.iter().map(|c| subscriber.ssubscribe(c.as_str())))
        .await
        .iter()
        .all(Result::is_ok)
}
