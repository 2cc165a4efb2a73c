//! The key layout, in one place for both stores. Redis keys are a
//! partition's prefix `tessera:{<tag>}:` (see [`super::partition`]: one hash
//! tag per partition, so every script's keys sit in one Cluster slot)
//! followed by these names; the memory store keys its maps by the same
//! names. The Lua scripts build some of them from the prefix and a
//! session's subject key or id; every key prefix a script spells must be one
//! of this file's (the test `lua_key_prefixes_are_the_schemas` below reads
//! every script and fails on one that is not).

/// The deployment's layout (a hash: `partitions`, `deployment`), written by
/// the first replica to start and checked by every other one. A key of its
/// own, outside every partition.
pub const META: &str = "tessera:meta";
/// A partition's revocation log (a Redis stream).
pub const LOG: &str = "log";

/// A partition's sharded pub/sub channel (`SPUBLISH`) that announces new
/// entries of its log: in its partition's slot, so a Cluster delivers it
/// from that slot's node only.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}revocations")
}
/// A short-lived marker written after a reuse kill when
/// `--redis-wait-replicas` is on, so `WAIT` covers the kill.
pub const DURABLE: &str = "durable";

/// A session's hash: its data, current and superseded refresh hashes,
/// expiries (layout: `common.lua`).
pub fn session(sid: &str) -> String {
    format!("s:{sid}")
}

/// Marker of a revoked session (its event's cursor).
pub fn session_marker(sid: &str) -> String {
    format!("rs:{sid}")
}

/// Marker of a revoked access token, by `jti` (its event's cursor).
pub fn token_marker(jti: &str) -> String {
    format!("rt:{jti}")
}

/// A subject's "log out everywhere" cut-off.
pub fn subject_cutoff(subject_key: &str) -> String {
    format!("ru:{subject_key}")
}

/// A subject's session index (sessions scored by how long they are kept).
pub fn subject_index(subject_key: &str) -> String {
    format!("ss:{subject_key}")
}

/// A subject's creation index: the same sessions as [`subject_index`],
/// scored by their creation (ms), for pages, the cap's oldest and
/// log-out-others' batches in time proportional to their size. Written
/// from the subject's second session on: a subject's only session is in
/// [`subject_index`] alone, and readers adopt it (`adopt_legacy` in
/// `common.lua`), which spares every first sign-in a key (issue #30).
pub fn creation_index(subject_key: &str) -> String {
    format!("sc:{subject_key}")
}

/// A subject's mark of how far the upgrade of its sessions written before the
/// creation index has got (`adopt_legacy` in `common.lua`).
pub fn adoption_mark(subject_key: &str) -> String {
    format!("sm:{subject_key}")
}

/// The successor of a session sealed for the grace window.
pub fn sealed_successor(sid: &str) -> String {
    format!("sl:{sid}")
}

/// Single-flight marker of a renewal of the token `jti`.
pub fn renewal(jti: &str) -> String {
    format!("rn:{jti}")
}

/// The replay marker of a DPoP proof (`key` is already a hash).
pub fn dpop_proof(key: &str) -> String {
    format!("dp:{key}")
}

/// A value every replica shares (`shared_value`), e.g. a DPoP nonce.
pub fn shared(name: &str) -> String {
    format!("sv:{name}")
}

/// A GCRA budget's state (Redis adds this prefix to the budget's name).
pub fn rate(name: &str) -> String {
    format!("rl:{name}")
}

/// Name of a subject's Issue budget.
pub fn issue_budget(subject_key: &str) -> String {
    format!("issue:{subject_key}")
}

/// Name of a subject's Refresh budget.
pub fn refresh_budget(subject_key: &str) -> String {
    format!("refresh:{subject_key}")
}

// === Redis script calls ===
//
// The keys and arguments of each script, in the order its header comment
// (src/store/scripts/*.lua) lists them: one place to read beside the key
// layout above.

use super::{NewSession, RenewRequest, RotateRequest, SessionData};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// === A session's data in its Redis hash ===
//
// The hash holds the fields the scripts read (`t` tenant, `u` subject, `c`
// created, `a` absolute and `e` idle expiry as milliseconds after `c`, `i`
// idle lifetime, `f` device hash, …; the whole layout is at the top of
// `common.lua`) and, in `d`, only what no other field holds, with
// one-letter names and nothing empty: with the default claims every value
// then stays under Redis's `hash-max-listpack-value` (64 bytes), so the hash
// is a listpack rather than a hash table (BENCHMARKS.md, memory per
// session). The device hash is kept as its first 22 characters: a session's
// data read back by ListSessions carries that prefix (enough to say it is
// bound), and a rotation, which only proceeds for the same device, the
// whole hash presented. Sessions written before keep their long `data`;
// both read back.

/// The `d` (data) field of a session hash.
#[derive(Serialize, Deserialize, Default)]
struct StoredData {
    #[serde(
        rename = "a",
        alias = "audience",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    audience: Vec<String>,
    #[serde(
        rename = "r",
        alias = "roles",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    roles: Vec<String>,
    #[serde(
        rename = "s",
        alias = "scopes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    scopes: Vec<String>,
    #[serde(
        rename = "c",
        alias = "custom",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    custom: Map<String, Value>,
    #[serde(rename = "t", alias = "access_ttl")]
    access_ttl: i64,
    #[serde(
        rename = "n",
        alias = "device_name",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    device_name: String,
    #[serde(
        rename = "i",
        alias = "client_id",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    client_id: String,
    #[serde(
        rename = "x",
        alias = "cert_thumbprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    cert_thumbprint: Option<String>,
    #[serde(
        rename = "k",
        alias = "dpop_jkt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    dpop_jkt: Option<String>,
}

/// `data` for a new session hash.
pub fn encode_data(d: &SessionData) -> Result<String, StoreError> {
    serde_json::to_string(&StoredData {
        audience: d.audience.clone(),
        roles: d.roles.clone(),
        scopes: d.scopes.clone(),
        custom: d.custom.clone(),
        access_ttl: d.access_ttl,
        device_name: d.device_name.clone(),
        client_id: d.client_id.clone(),
        cert_thumbprint: d.cert_thumbprint.clone(),
        dpop_jkt: d.dpop_jkt.clone(),
    })
    .map_err(|e| StoreError::Corrupt(format!("session data: {e}")))
}

/// The hash fields a session's data is rebuilt from, besides `data`.
pub struct SessionFields<'a> {
    pub sid: &'a str,
    pub data: &'a str,
    pub tenant: &'a str,
    pub subject: &'a str,
    pub created_ms: &'a str,
    pub absolute_exp_ms: &'a str,
    pub idle_ms: &'a str,
    /// "" = not bound.
    pub fingerprint_hash: &'a str,
}

/// The session's data from its hash.
pub fn decode_data(f: &SessionFields<'_>) -> Result<SessionData, StoreError> {
    let d: StoredData = serde_json::from_str(f.data)
        .map_err(|e| StoreError::Corrupt(format!("session data: {e}")))?;
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| StoreError::Corrupt(format!("expected a number, got {s:?}")))
    };
    Ok(SessionData {
        sid: f.sid.to_owned(),
        tenant: f.tenant.to_owned(),
        subject: f.subject.to_owned(),
        audience: d.audience,
        roles: d.roles,
        scopes: d.scopes,
        custom: d.custom,
        fingerprint_hash: (!f.fingerprint_hash.is_empty()).then(|| f.fingerprint_hash.to_owned()),
        access_ttl: d.access_ttl,
        idle_ms: num(f.idle_ms)?,
        created_ms: num(f.created_ms)?,
        absolute_exp_ms: num(f.absolute_exp_ms)?,
        device_name: d.device_name,
        client_id: d.client_id,
        cert_thumbprint: d.cert_thumbprint,
        dpop_jkt: d.dpop_jkt,
    })
}
use crate::store::StoreError;

/// A Redis key: a partition's prefix and a name of the layout above.
pub fn redis_key(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

/// The keys and arguments of one script call.
pub struct ScriptCall {
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

/// `create.lua` in the partition under `prefix`. `caller` is the caller's
/// budget as its whole key (in the caller's own partition) and limit, to be
/// counted in the same step: `None` when there is none, or when it was
/// counted before (on a Cluster, where a script cannot reach another slot).
pub fn create_call(
    s: &NewSession,
    prefix: &str,
    caller: Option<(String, super::RateLimit)>,
) -> Result<ScriptCall, StoreError> {
    let key = |name: &str| redis_key(prefix, name);
    let data = encode_data(&s.data)?;
    let (rate_key, interval, burst) = match &s.rate_limit {
        Some(l) => (
            key(&rate(&issue_budget(&s.subject_key))),
            l.interval_ms,
            l.burst_ms,
        ),
        None => (String::new(), 0, 0),
    };
    let (caller_key, caller_interval, caller_burst) = match caller {
        Some((key, l)) => (key, l.interval_ms, l.burst_ms),
        None => (String::new(), 0, 0),
    };
    let (cap, evict) = match s.cap {
        Some(c) => (c.max, if c.evict_oldest { "1" } else { "0" }),
        None => (0, "0"),
    };
    Ok(ScriptCall {
        keys: vec![
            key(&session(&s.data.sid)),
            key(&subject_index(&s.subject_key)),
            key(LOG),
        ],
        args: vec![
            data,
            s.refresh_hash.clone(),
            s.data.created_ms.to_string(),
            s.refresh_exp_ms.to_string(),
            s.data.absolute_exp_ms.to_string(),
            s.data.idle_ms.to_string(),
            s.subject_key.clone(),
            s.data.tenant.clone(),
            s.data.subject.clone(),
            s.data.fingerprint_hash.clone().unwrap_or_default(),
            rate_key,
            interval.to_string(),
            burst.to_string(),
            s.keep_until_ms.to_string(),
            s.data.sid.clone(),
            caller_key,
            caller_interval.to_string(),
            caller_burst.to_string(),
            s.client.ip_address.clone(),
            s.client.user_agent.clone(),
            cap.to_string(),
            evict.to_owned(),
            prefix.to_owned(),
            channel(prefix),
            s.feed.retention_ms.to_string(),
            s.feed.access_horizon_ms.to_string(),
            s.data.dpop_jkt.clone().unwrap_or_default(),
            CAP_EVICTIONS_PER_ISSUE.to_string(),
        ],
    })
}

/// Sessions one Issue evicts at most under `--session-cap-policy
/// evict-oldest` (create.lua): a subject far over the cap (after the cap
/// was lowered) comes down over a few Issues, each a short script.
pub const CAP_EVICTIONS_PER_ISSUE: usize = 16;

/// `list.lua`.
pub fn list_call(
    subject_key: &str,
    after: &str,
    limit: usize,
    now_ms: i64,
    prefix: &str,
) -> ScriptCall {
    ScriptCall {
        keys: vec![redis_key(prefix, &creation_index(subject_key))],
        args: vec![
            prefix.to_owned(),
            now_ms.to_string(),
            after.to_owned(),
            limit.to_string(),
        ],
    }
}

/// `rotate.lua`.
pub fn rotate_call(r: &RotateRequest, prefix: &str) -> ScriptCall {
    ScriptCall {
        keys: vec![
            redis_key(prefix, &session(&r.sid)),
            redis_key(prefix, &session_marker(&r.sid)),
            redis_key(prefix, LOG),
        ],
        args: vec![
            r.presented_hash.clone(),
            r.new_hash.clone(),
            r.sealed_successor.clone(),
            r.now_ms.to_string(),
            r.grace_ms.to_string(),
            channel(prefix),
            r.feed.retention_ms.to_string(),
            r.feed.access_horizon_ms.to_string(),
            // Unused: the history ring's size is common.lua's HISTORY.
            String::new(),
            prefix.to_owned(),
            r.sid.clone(),
            r.fingerprint_hash.clone().unwrap_or_default(),
            r.rate_limit.map_or(0, |l| l.interval_ms).to_string(),
            r.rate_limit.map_or(0, |l| l.burst_ms).to_string(),
            r.keep_until_ms.to_string(),
            r.client.ip_address.clone(),
            r.client.user_agent.clone(),
            r.dpop_jkt.clone().unwrap_or_default(),
            r.dpop_replay
                .as_ref()
                .map(|p| redis_key(prefix, &dpop_proof(&p.key)))
                .unwrap_or_default(),
            r.dpop_replay
                .as_ref()
                .map_or(0, |p| p.expires_at_ms)
                .to_string(),
            r.cert_thumbprint.clone().unwrap_or_default(),
            r.client_id.clone().unwrap_or_default(),
        ],
    }
}

/// `renew.lua`.
pub fn renew_call(r: &RenewRequest, prefix: &str) -> ScriptCall {
    ScriptCall {
        keys: vec![
            redis_key(prefix, &session(&r.sid)),
            redis_key(prefix, &session_marker(&r.sid)),
            redis_key(prefix, &renewal(&r.jti)),
        ],
        args: vec![
            r.now_ms.to_string(),
            if r.mint { "1" } else { "0" }.to_owned(),
            r.marker_ttl_ms.max(1).to_string(),
            prefix.to_owned(),
            r.keep_until_ms.to_string(),
            r.sid.clone(),
        ],
    }
}

mod revoke;
pub use revoke::{revoke_call, LOG_OUT_OTHERS_BATCH};

#[cfg(test)]
mod lua_tests;
