//! Refused calls (a wrong or missing API key, a caller not allowed the
//! RPC), counted and logged without letting a flood of them flood the log.
//!
//! Every refusal counts in `tessera_calls_refused_total{reason}`. Its log
//! line ("call refused", INFO) and its `caller_denied` audit event, which
//! carries the peer's address as `client_ip`, are written for at most
//! [`LINES_PER_SECOND`] refusals per second and reason on this replica;
//! the first refusal of the next second that is written is preceded by one
//! WARN line, "refused calls not logged", with how many were left out.
//! 3,000 calls with a wrong key thus write a few dozen lines, not 6,000.
//!
//! The same bound ([`admitted`]) holds for the other refusals anyone can
//! provoke in bulk: budget refusals (`RATE_LIMITED`, `SESSION_LIMIT`: the
//! "call failed" line, and `rate_limited` audit events, which the token
//! endpoint's public clients can cause); they are counted by their own
//! metrics (`tessera_refresh_total{outcome}`, `tessera_rpc_duration_seconds`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Refusals logged per second and reason.
pub const LINES_PER_SECOND: u32 = 10;

/// Per reason: (the second, lines written in it, refusals left out since
/// the last line).
type Windows = HashMap<&'static str, (i64, u32, u64)>;

fn windows() -> &'static Mutex<Windows> {
    static W: OnceLock<Mutex<Windows>> = OnceLock::new();
    W.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `Some(left out before this one)` when this refusal may be written.
fn admit(reason: &'static str, second: i64) -> Option<u64> {
    let mut w = windows().lock().unwrap_or_else(|p| p.into_inner());
    let entry = w.entry(reason).or_insert((second, 0, 0));
    if entry.0 != second {
        entry.0 = second;
        entry.1 = 0;
    }
    if entry.1 >= LINES_PER_SECOND {
        entry.2 += 1;
        return None;
    }
    entry.1 += 1;
    Some(std::mem::take(&mut entry.2))
}

/// May one more line of `key` (a reason or an audit event name) be written
/// this second? When a second's first line follows left-out ones, a WARN
/// line says how many.
pub fn admitted(key: &'static str) -> bool {
    let second = crate::clock::now_ms().div_euclid(1000);
    match admit(key, second) {
        None => false,
        Some(0) => true,
        Some(left_out) => {
            tracing::warn!(reason = key, left_out, "refused calls not logged");
            true
        }
    }
}

/// A call refused for its caller: counted, and logged and audited within
/// the rate above (`caller_denied`, its outcome the reason). `event` says
/// who (the caller's name and tenant scope when known, the peer's address)
/// and, for a tenant refusal, what the call was about. Never a key.
pub fn refused(reason: &'static str, event: &crate::audit::Event<'_>) {
    metrics::counter!(crate::telemetry::CALLS_REFUSED, "reason" => reason).increment(1);
    crate::trace::record_reason(reason);
    if admitted(reason) {
        tracing::info!(
            rpc = event.rpc,
            reason,
            client_ip = event.client_ip,
            "call refused"
        );
    }
    // Bounded by `audit::emit` itself.
    crate::audit::emit(crate::audit::Kind::CallerDenied, reason, event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_rate_per_second_and_reason_then_a_count() {
        let reason = "TEST_REASON_ONLY";
        let written = (0..100).filter(|_| admit(reason, 7).is_some()).count();
        assert_eq!(written, LINES_PER_SECOND as usize);
        // Another reason has its own budget.
        assert_eq!(admit("TEST_OTHER_REASON", 7), Some(0));
        // The next second: written again, with the count left out.
        assert_eq!(admit(reason, 8), Some(100 - u64::from(LINES_PER_SECOND)));
        assert_eq!(admit(reason, 8), Some(0));
    }
}
