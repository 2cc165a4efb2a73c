//! Group commit for the hot scripts (Issue's create, Refresh's rotate).
//!
//! fred flushes the socket after every EVALSHA (it never feeds scripts into
//! its write buffer), so one script call cost one `writev` on the replica, one
//! read and one Lua call set-up in Redis, and a router round trip in fred. Under
//! load that was the largest cost of an Issue after the signature.
//!
//! A [`Batcher`] owns one script. Calls queue on a channel; a task sorts them
//! into one [`lane`] per Redis node and sends what has queued on a lane as one
//! EVALSHA of the script's batch form (`scripts/batch.lua`), which runs each
//! call in order, exactly as if it had been sent alone, and replies per call.
//! A lane has one batch outstanding at most: while it is, new calls wait and
//! join the next one. An idle server therefore sends a lone call at once (no
//! timer, no added latency), and a busy one sends fewer, larger batches.
//! Redis runs the batch atomically, which is stronger than what each call
//! needs.
//!
//! On one Redis (standalone, Sentinel) there is one lane and no linger, as
//! before lanes existed. On a Cluster there is a lane per master, found from
//! fred's cached slot map. A script may touch one slot only, unless it says
//! `allow-cross-slot-keys` (Redis 7): the Cluster form does, and declares the
//! first call's keys only (they route the EVALSHA to its master); the other
//! calls' keys travel as arguments. So a master gets one EVALSHA per batch,
//! as a single Redis does, instead of one per partition (BENCHMARKS.md,
//! "Cluster linger"). A lane whose previous batch was large may also linger
//! up to [`LINGER`] for more calls. A call that reaches a master which does
//! not own its slot (a stale slot map, a slot being migrated) fails there
//! before touching anything and is sent again on its own, by slot, through
//! fred's routing, which follows `MOVED` and `ASK`.

mod lane;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fred::prelude::*;
use fred::types::cluster::ClusterRouting;
use fred::types::config::Server;
use fred::types::scripts::Script;
use fred::types::{Key, Value as RedisValue};
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;
use lane::{Lane, Next};

/// Most calls in one batch (keeps each EVALSHA, which blocks Redis while it
/// runs, well under a millisecond).
pub const MAX_BATCH: usize = 32;
/// The longest a Cluster master's lane waits for more calls after a large
/// batch: a few Redis round trips on loopback, well under the p99 of a busy
/// replica, so latency stays within the bound while batches fill.
pub const LINGER: Duration = Duration::from_micros(200);
/// Calls held in lanes at most; beyond it callers wait on the channel.
const QUEUED_MOST: usize = 1024;
/// How long a copy of the Cluster's slot map is used before taking fred's
/// current one again (a stale map costs only re-sent calls, never a wrong
/// reply).
const ROUTES_AGE: Duration = Duration::from_secs(1);
/// The tag of a call that raised an error inside a batch (`batch.lua`).
const ERROR_TAG: &[u8] = b"!error";
/// What Redis says when a script touches a key of a slot its node does not
/// serve (`scriptVerifyClusterState`).
const NOT_LOCAL: &str = "non local key";
/// Lets one EVALSHA of the batch form touch every slot of its master.
const CROSS_SLOT: &str = "#!lua flags=allow-cross-slot-keys\n";

struct Call {
    keys: Vec<Key>,
    args: Vec<RedisValue>,
    /// The arguments a deployment's calls of the script have in common (its
    /// policy's numbers), which a batch whose calls all share them sends
    /// once: every argument costs Redis a parse, a Lua string and its
    /// collection, about a thousand instructions (issue 30).
    shared: Vec<RedisValue>,
    done: oneshot::Sender<Result<RedisValue, StoreError>>,
}

impl Call {
    /// The Cluster slot of its keys (the first one's: all share a tag).
    fn slot(&self) -> u16 {
        self.keys
            .first()
            .map_or(0, |k| fred::util::redis_keyslot(k.as_bytes()))
    }
}

/// The script in its batch forms.
#[derive(Clone)]
struct Forms {
    /// Every key declared: one slot per EVALSHA on a Cluster.
    plain: Script,
    /// The Cluster form that may span its master's slots.
    cross: Option<Script>,
}

/// Sends calls of one script in batches; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    calls: mpsc::Sender<Call>,
}

impl Batcher {
    /// Start the task that sends `lua` (a batch form) on `client`. It ends
    /// when the last clone of the batcher is dropped and its calls are sent.
    pub fn spawn(client: Client, lua: &'static str) -> Self {
        let forms = Forms {
            plain: Script::from_lua(lua),
            cross: client
                .is_clustered()
                .then(|| Script::from_lua(format!("{CROSS_SLOT}{lua}"))),
        };
        let (calls, rx) = mpsc::channel(QUEUED_MOST);
        tokio::spawn(run(client, forms, rx));
        Batcher { calls }
    }

    /// One call of the script, `run(KEYS, ARGV, SHARED)` with `shared` as
    /// SHARED; its reply as the script returned it.
    pub async fn call(
        &self,
        keys: Vec<String>,
        args: Vec<RedisValue>,
        shared: Vec<RedisValue>,
    ) -> Result<RedisValue, StoreError> {
        let (done, reply) = oneshot::channel();
        let call = Call {
            keys: keys.into_iter().map(Key::from).collect(),
            args,
            shared,
            done,
        };
        self.calls.send(call).await.map_err(|_| stopped())?;
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

// === the lanes ===

/// Which lane a call joins: its master on a Cluster (from a copy of fred's
/// slot map), the one lane otherwise or while no map is known.
struct Routes {
    client: Client,
    map: Option<ClusterRouting>,
    taken: Instant,
}

impl Routes {
    fn new(client: &Client) -> Self {
        Routes {
            client: client.clone(),
            map: client.cached_cluster_state(),
            taken: Instant::now(),
        }
    }

    fn node(&mut self, call: &Call, now: Instant) -> Option<Server> {
        if !self.client.is_clustered() {
            return None;
        }
        if self.map.is_none() || now.duration_since(self.taken) > ROUTES_AGE {
            self.map = self.client.cached_cluster_state();
            self.taken = now;
        }
        self.map.as_ref()?.get_server(call.slot()).cloned()
    }

    /// A batch met a slot its master no longer serves: take the map again.
    fn expire(&mut self) {
        self.map = None;
    }
}

/// A finished batch: its lane, and whether the slot map looked stale.
struct Done {
    lane: usize,
    stale: bool,
}

async fn run(client: Client, forms: Forms, mut rx: mpsc::Receiver<Call>) {
    let linger = if client.is_clustered() {
        LINGER
    } else {
        Duration::ZERO
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut routes = Routes::new(&client);
    let mut nodes: HashMap<Option<Server>, usize> = HashMap::new();
    let mut lanes: Vec<Lane<Call>> = Vec::new();
    let mut open = true;
    while open || lanes.iter().any(|l| !l.is_idle()) {
        let now = Instant::now();
        let wake = lanes
            .iter()
            .filter_map(|l| match l.next(now, linger) {
                Next::Wait(d) => Some(now + d),
                _ => None,
            })
            .min();
        let queued: usize = lanes.iter().map(Lane::queued).sum();
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => {
                lanes[done.lane].finished(Instant::now());
                if done.stale {
                    routes.expire();
                }
            }
            call = rx.recv(), if open && queued < QUEUED_MOST => {
                let Some(call) = call else {
                    open = false;
                    continue;
                };
                let now = Instant::now();
                let mut next_call = Some(call);
                // Everything already queued joins its lane before any sends.
                for _ in queued..QUEUED_MOST {
                    let Some(call) = next_call.take() else { break };
                    let node = routes.node(&call, now);
                    let n = lanes.len();
                    let i = *nodes.entry(node).or_insert(n);
                    if i == n {
                        lanes.push(Lane::default());
                    }
                    lanes[i].push(call, now);
                    next_call = rx.try_recv().ok();
                }
            }
            () = tokio::time::sleep_until(wake.unwrap_or(now).into()), if wake.is_some() => {}
        }
        let now = Instant::now();
        for (node, &i) in &nodes {
            if lanes[i].next(now, linger) != Next::Send {
                continue;
            }
            let (calls, client, forms) = (lanes[i].take(), client.clone(), forms.clone());
            let (node, done_tx) = (node.clone(), done_tx.clone());
            tokio::spawn(async move {
                let stale = send_lane(&client, &forms, node.is_some(), calls).await;
                let _ = done_tx.send(Done { lane: i, stale });
            });
        }
    }
}

// === sending ===

/// Send one lane's batch; true when some calls met a master that does not
/// serve their slot (and were sent again by slot).
async fn send_lane(client: &Client, forms: &Forms, on_master: bool, mut calls: Vec<Call>) -> bool {
    match &forms.cross {
        Some(cross) if on_master => {
            let retry = send_cross(client, cross, calls).await;
            let stale = !retry.is_empty();
            send_by_slot(client, &forms.plain, retry).await;
            stale
        }
        Some(_) => {
            send_by_slot(client, &forms.plain, calls).await;
            false
        }
        None => {
            let n = calls.len();
            let replies = eval(client, &forms.plain, &mut calls, n, Sent::Once).await;
            deliver(calls, replies);
            false
        }
    }
}

/// One script call per Cluster slot, at once (a script may touch one slot).
async fn send_by_slot(client: &Client, script: &Script, calls: Vec<Call>) {
    futures::future::join_all(by_slot(calls).into_iter().map(|mut group| async move {
        let n = group.len();
        let replies = eval(client, script, &mut group, n, Sent::Once).await;
        deliver(group, replies);
    }))
    .await;
}

/// One EVALSHA for a master's whole batch; returns the calls whose slot that
/// master did not serve, in order, for [`send_by_slot`]. They failed at their
/// first key, before writing anything, and every script is safe to re-send.
async fn send_cross(client: &Client, script: &Script, mut calls: Vec<Call>) -> Vec<Call> {
    let replies = match eval(client, script, &mut calls, 1, Sent::MaybeAgain).await {
        Ok(replies) => replies,
        Err(e) => {
            deliver(calls, Err(e));
            return Vec::new();
        }
    };
    let mut retry = Vec::new();
    for (call, reply) in calls.into_iter().zip(replies) {
        if not_local(&reply) {
            retry.push(call);
        } else {
            let _ = call.done.send(call_result(reply));
        }
    }
    retry
}

/// `calls` grouped by the Cluster slot of their first key, in order.
fn by_slot(calls: Vec<Call>) -> Vec<Vec<Call>> {
    let mut groups: Vec<(u16, Vec<Call>)> = Vec::new();
    for call in calls {
        let slot = call.slot();
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(call),
            None => groups.push((slot, vec![call])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Whether a batch's calls may be sent again after this send (a Cluster
/// master's batch: the calls of slots it does not serve are), and so must
/// keep their keys and arguments.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    Once,
    MaybeAgain,
}

/// The batch form's arguments (`batch.lua`): the keys of the first `declared`
/// calls in KEYS, the others' keys inline before their arguments; the shared
/// arguments once when every call has the same, else after each call's own.
/// Calls sent once give up their keys and arguments (moved, not copied).
fn encode(calls: &mut [Call], declared: usize, sent: Sent) -> (Vec<Key>, Vec<RedisValue>) {
    let mut keys = Vec::with_capacity(calls.len().min(declared) * 3);
    let size: usize = calls
        .iter()
        .map(|c| c.keys.len() + c.args.len() + c.shared.len() + 3)
        .sum();
    let mut args = Vec::with_capacity(size + 6);
    let count = |n: usize| RedisValue::from(n as i64);
    args.push(count(calls.len()));
    args.push(count(declared.min(calls.len())));
    // The counts once for the batch when every call has the same (a call's
    // counts cost Redis an argument and a strtod each).
    let counts = |c: &Call| (c.keys.len(), c.args.len(), c.shared.len());
    let every = calls.first().map(counts);
    let uniform = calls.iter().all(|c| Some(counts(c)) == every);
    match every {
        Some((nk, na, ns)) if uniform => args.extend([count(nk), count(na), count(ns)]),
        _ => args.extend([-1, -1, -1].map(RedisValue::from)),
    }
    let first_shared = calls.first().map(|c| &c.shared);
    let once = calls.iter().all(|c| Some(&c.shared) == first_shared);
    match calls.first_mut() {
        Some(first) if once => {
            args.push(count(first.shared.len()));
            args.extend(take_or_clone(&mut first.shared, sent));
        }
        _ => args.push(RedisValue::from(-1)),
    }
    for (i, call) in calls.iter_mut().enumerate() {
        if !uniform {
            args.extend([call.keys.len(), call.args.len(), call.shared.len()].map(count));
        }
        let call_keys = take_or_clone(&mut call.keys, sent);
        if i < declared {
            keys.extend(call_keys);
        } else {
            args.extend(call_keys.into_iter().map(RedisValue::from));
        }
        args.extend(take_or_clone(&mut call.args, sent));
        if !once {
            args.extend(take_or_clone(&mut call.shared, sent));
        }
    }
    (keys, args)
}

/// A call's part for one send: moved out when the call is sent once, copied
/// when it may be sent again.
fn take_or_clone<T: Clone>(part: &mut Vec<T>, sent: Sent) -> Vec<T> {
    match sent {
        Sent::Once => std::mem::take(part),
        Sent::MaybeAgain => part.clone(),
    }
}

/// One EVALSHA of a batch: a reply per call, or the error of the whole.
async fn eval(
    client: &Client,
    script: &Script,
    calls: &mut [Call],
    declared: usize,
    sent: Sent,
) -> Result<Vec<RedisValue>, StoreError> {
    let (keys, args) = encode(calls, declared, sent);
    match script
        .evalsha_with_reload::<RedisValue, _, _>(client, keys, args)
        .await
    {
        Ok(RedisValue::Array(replies)) if replies.len() == calls.len() => Ok(replies),
        Ok(_) => Err(StoreError::Corrupt("unexpected batch reply".into())),
        Err(e) => Err(script_error(e)),
    }
}

/// Each call its reply, in order; a batch that failed as a whole (timeout,
/// lost connection) fails every call in it.
fn deliver(calls: Vec<Call>, replies: Result<Vec<RedisValue>, StoreError>) {
    match replies {
        Ok(replies) => {
            for (call, reply) in calls.into_iter().zip(replies) {
                let _ = call.done.send(call_result(reply));
            }
        }
        Err(e) => {
            for call in calls {
                let _ = call.done.send(Err(e.clone()));
            }
        }
    }
}

/// The error of a call whose key lives on another node.
fn not_local(reply: &RedisValue) -> bool {
    match tagged_error(reply) {
        Some(message) => message.contains(NOT_LOCAL),
        None => false,
    }
}

/// The message of a call that raised an error inside the batch.
fn tagged_error(reply: &RedisValue) -> Option<String> {
    if let RedisValue::Array(items) = reply {
        if let [tag, message] = items.as_slice() {
            if tag.as_bytes() == Some(ERROR_TAG) {
                return Some(message.as_str().unwrap_or_default().to_string());
            }
        }
    }
    None
}

/// One call's reply, or the error it raised inside the batch.
fn call_result(reply: RedisValue) -> Result<RedisValue, StoreError> {
    match tagged_error(&reply) {
        Some(message) => Err(StoreError::Unavailable(format!("script error: {message}"))),
        None => Ok(reply),
    }
}

#[cfg(test)]
mod tests;
