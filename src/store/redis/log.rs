//! The revocation log in Redis, from the reader's side: reading it after a
//! cursor, and following the pub/sub channel that says it grew. The channel
//! only *wakes* the feed reader, which then reads the durable log, so a lost
//! or lagged message loses nothing (docs/pitfalls.md, fred).

use std::collections::HashMap;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::streams::XReadValue;
use tokio::sync::{broadcast, mpsc};

use super::{key, num, unavailable};
use crate::error::StoreError;
use crate::store::schema::{self, CHANNEL};
use crate::store::{FeedSignal, RevocationEvent, RevocationKind};

/// Up to `limit` log entries strictly after `after` ("" = from the start).
pub(super) async fn read(
    client: &Client,
    after: &str,
    limit: usize,
) -> Result<Vec<RevocationEvent>, StoreError> {
    let start = if after.is_empty() {
        "-".to_owned()
    } else {
        format!("({after}")
    };
    let entries: Vec<XReadValue<String, String, String>> = client
        .xrange_values(key(schema::LOG), start, "+", Some(limit as u64))
        .await
        .map_err(unavailable)?;
    entries
        .into_iter()
        .map(|(id, fields)| event_from(id, fields))
        .collect()
}

fn event_from(id: String, fields: HashMap<String, String>) -> Result<RevocationEvent, StoreError> {
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let kind = RevocationKind::from_code(&get("k"))
        .ok_or_else(|| StoreError::Corrupt(format!("log entry {id} has no kind")))?;
    Ok(RevocationEvent {
        cursor: id,
        kind,
        token_id: get("jti"),
        session_id: get("sid"),
        tenant: get("tid"),
        subject: get("sub"),
        revoked_at_ms: num(&get("at"))?,
        issued_before_ms: num(&get("ib"))?,
        expires_at_ms: num(&get("exp"))?,
    })
}

/// Follow the channel with `subscriber` (not yet connected): signals that
/// the log grew, that notifications may have been lost, and that the
/// subscription is back. Ends when the receiver is dropped.
pub(super) fn follow(subscriber: SubscriberClient) -> mpsc::Receiver<FeedSignal> {
    let mut messages = subscriber.message_rx();
    let mut errors = subscriber.error_rx();
    let mut reconnects = subscriber.reconnect_rx();
    subscriber.connect();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        // Until the first SUBSCRIBE succeeds the reader must not trust anything.
        let mut subscribed = false;
        let mut poll = tokio::time::interval(Duration::from_millis(200));
        loop {
            if !subscribed
                && subscriber.is_connected()
                && subscriber.subscribe(CHANNEL).await.is_ok()
            {
                subscribed = true;
                if tx.send(FeedSignal::Restored).await.is_err() {
                    break;
                }
            }
            let signal = tokio::select! {
                msg = messages.recv() => match msg {
                    Ok(_) => Some(FeedSignal::Appended),
                    // Lagged behind fred's broadcast (capacity 32): notifications
                    // were dropped, not log entries; re-read the log.
                    Err(broadcast::error::RecvError::Lagged(_)) => Some(FeedSignal::Appended),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = errors.recv() => {
                    subscribed = false;
                    Some(FeedSignal::Lost)
                }
                _ = reconnects.recv() => {
                    // Re-subscribe ourselves, then re-read: anything published
                    // while we were away is in the log.
                    subscribed = false;
                    None
                }
                _ = poll.tick() => {
                    if subscribed && !subscriber.is_connected() {
                        subscribed = false;
                        Some(FeedSignal::Lost)
                    } else {
                        None
                    }
                }
                _ = tx.closed() => break,
            };
            if let Some(signal) = signal {
                // Appended signals coalesce; Lost must get through.
                let sent = match signal {
                    FeedSignal::Appended => tx.try_send(signal).is_ok() || !tx.is_closed(),
                    _ => tx.send(signal).await.is_ok(),
                };
                if !sent {
                    break;
                }
            }
        }
        let _ = subscriber.quit().await;
    });
    rx
}
