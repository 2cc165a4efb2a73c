//! Group commit for the hot scripts (Issue's create, Refresh's rotate).
//!
//! fred flushes the socket after every EVALSHA (it never feeds scripts into
//! its write buffer), so one script call cost one `writev` on the replica, one
//! read and one Lua call set-up in Redis, and a router round trip in fred. Under
//! load that was the largest cost of an Issue after the signature.
//!
//! A [`Batcher`] owns one script. Calls queue on a channel; a task sends what
//! has queued as one EVALSHA of the script's batch form (`scripts/batch.lua`),
//! which runs each call in order, exactly as if it had been sent alone, and
//! replies per call. At most [`IN_FLIGHT`] batches are outstanding: while
//! they are, new calls wait and join the next batch. An idle server therefore
//! sends a lone call at once (no timer, no added latency), and a busy one sends
//! fewer, larger batches. Redis runs the batch atomically, which is stronger
//! than what each call needs.

use std::sync::Arc;

use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value as RedisValue;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::store::StoreError;

/// Most calls in one batch (keeps each EVALSHA, which blocks Redis while it
/// runs, well under a millisecond).
pub const MAX_BATCH: usize = 32;
/// Batches outstanding at once. One measured best on loopback (Issue 29.2 k/s
/// against 27.1 k/s with two: larger batches, fewer system calls). It caps a
/// replica at [`MAX_BATCH`] calls of each script per Redis round trip: with
/// Redis a millisecond away, ~32 k Issues/s, about what one core of a replica
/// serves. A replica with many cores far from its Redis would want two.
pub const IN_FLIGHT: usize = 1;
/// The tag of a call that raised an error inside a batch (`batch.lua`).
const ERROR_TAG: &[u8] = b"!error";

struct Call {
    keys: Vec<String>,
    args: Vec<String>,
    done: oneshot::Sender<Result<RedisValue, StoreError>>,
}

/// Sends calls of one script in batches; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    calls: mpsc::Sender<Call>,
}

impl Batcher {
    /// Start the task that sends `script` (a batch form) on `client`. It ends
    /// when the last clone of the batcher is dropped.
    pub fn spawn(client: Client, script: Script) -> Self {
        let (calls, rx) = mpsc::channel(1024);
        tokio::spawn(run(client, script, rx));
        Batcher { calls }
    }

    /// One call of the script; its reply as the script returned it.
    pub async fn call(
        &self,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<RedisValue, StoreError> {
        let (done, reply) = oneshot::channel();
        self.calls
            .send(Call { keys, args, done })
            .await
            .map_err(|_| stopped())?;
        reply.await.map_err(|_| stopped())?
    }
}

/// A failed script call: a reply that did not parse means corrupt data, any
/// other failure an unavailable store.
pub fn script_error(e: Error) -> StoreError {
    if *e.kind() == ErrorKind::Parse {
        StoreError::Corrupt(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the Redis store is shutting down".into())
}

async fn run(client: Client, script: Script, mut rx: mpsc::Receiver<Call>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Wait for a free slot first: calls arriving meanwhile join this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut calls = vec![first];
        while calls.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(call) => calls.push(call),
                Err(_) => break,
            }
        }
        let (client, script) = (client.clone(), script.clone());
        tokio::spawn(async move {
            // One EVALSHA may only touch one Cluster slot: a batch is sent
            // as one script call per partition (slot) it holds, at once.
            let groups = if client.is_clustered() {
                by_slot(calls)
            } else {
                vec![calls]
            };
            futures::future::join_all(groups.into_iter().map(|g| send(&client, &script, g))).await;
            drop(slot);
        });
    }
}

/// `calls` grouped by the Cluster slot of their first key, in order.
fn by_slot(calls: Vec<Call>) -> Vec<Vec<Call>> {
    let mut groups: Vec<(u16, Vec<Call>)> = Vec::new();
    for call in calls {
        let slot = call
            .keys
            .first()
            .map_or(0, |k| fred::util::redis_keyslot(k.as_bytes()));
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(call),
            None => groups.push((slot, vec![call])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

async fn send(client: &Client, script: &Script, calls: Vec<Call>) {
    let mut keys = Vec::with_capacity(calls.len() * 3);
    let mut args = Vec::with_capacity(calls.len() * 16 + 1);
    args.push(calls.len().to_string());
    let mut waiting = Vec::with_capacity(calls.len());
    for call in calls {
        args.push(call.keys.len().to_string());
        args.push(call.args.len().to_string());
        keys.extend(call.keys);
        args.extend(call.args);
        waiting.push(call.done);
    }
    let replies = match script
        .evalsha_with_reload::<RedisValue, _, _>(client, keys, args)
        .await
    {
        Ok(RedisValue::Array(replies)) if replies.len() == waiting.len() => Ok(replies),
        Ok(_) => Err(StoreError::Corrupt("unexpected batch reply".into())),
        Err(e) => Err(script_error(e)),
    };
    match replies {
        Ok(replies) => {
            for (done, reply) in waiting.into_iter().zip(replies) {
                let _ = done.send(call_result(reply));
            }
        }
        // The whole batch failed (timeout, lost connection): every call in it.
        Err(e) => {
            for done in waiting {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}

/// One call's reply, or the error it raised inside the batch.
fn call_result(reply: RedisValue) -> Result<RedisValue, StoreError> {
    if let RedisValue::Array(items) = &reply {
        if let [tag, message] = items.as_slice() {
            if tag.as_bytes() == Some(ERROR_TAG) {
                return Err(StoreError::Unavailable(format!(
                    "script error: {}",
                    message.as_str().unwrap_or_default()
                )));
            }
        }
    }
    Ok(reply)
}
