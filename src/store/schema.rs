//! The key layout, in one place for both stores. Redis keys are
//! [`KEY_PREFIX`] followed by these names (one hash tag, so every script's
//! keys sit in one Cluster slot); the memory store keys its maps by the same
//! names. The Lua scripts build four of them from the prefix and a
//! session's subject key (`ru:`, `ss:`, `sl:`, `rl:refresh:` in
//! `common.lua`, `rotate.lua`, `renew.lua`): keep those in step with this file.

/// Prefix of every Redis key; `{t}` is the Cluster hash tag.
pub const KEY_PREFIX: &str = "tessera:{t}:";
/// The Redis pub/sub channel that announces new log entries.
pub const CHANNEL: &str = "tessera:{t}:revocations";
/// The revocation log (a Redis stream).
pub const LOG: &str = "log";

/// A session's hash: its data, current and previous refresh hashes, expiries.
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

/// The successor of a session sealed for the grace window.
pub fn sealed_successor(sid: &str) -> String {
    format!("sl:{sid}")
}

/// Single-flight marker of a renewal of the token `jti`.
pub fn renewal(jti: &str) -> String {
    format!("rn:{jti}")
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
