//! Wall-clock time in the units tokens and the store use.
//!
//! Instants that replicas compare with each other — a session's creation
//! against a subject's "log out everywhere" cut-off, an access token's `iat`
//! against that cut-off, a rotation against the grace window — must come
//! from one clock, or a replica whose clock runs ahead issues sessions and
//! tokens that survive a logout made through one whose clock runs behind.
//! That clock is the store's: a replica on Redis measures its offset to
//! Redis `TIME` before it serves and every health tick after (the GCRA
//! limiter reads `TIME` itself), and [`now_ms`] is this host's clock
//! corrected by that offset. The in-memory store is one process: offset 0.
//! The offset is process-wide, as a process serves one authority.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Unix time in milliseconds on the authority's clock (the store's).
pub fn now_ms() -> i64 {
    local_ms().saturating_add(OFFSET_MS.load(Ordering::Relaxed))
}

/// Unix time in milliseconds on this host's clock.
pub fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The current correction of this host's clock, ms.
pub fn offset_ms() -> i64 {
    OFFSET_MS.load(Ordering::Relaxed)
}

/// Most round-trip time (ms) of an exchange used to measure the offset: the
/// estimate is off by at most half of it.
pub const MAX_SYNC_RTT_MS: i64 = 50;

/// Adopt the offset measured by one exchange: asked at `sent` and answered
/// at `received` (local ms), the store said `server` (its ms). Returns the
/// offset, or `None` when the round trip was too slow to trust.
pub fn sync(sent: i64, server: i64, received: i64) -> Option<i64> {
    if received - sent > MAX_SYNC_RTT_MS || received < sent {
        return None;
    }
    let offset = server - (sent + received) / 2;
    OFFSET_MS.store(offset, Ordering::Relaxed);
    Some(offset)
}
