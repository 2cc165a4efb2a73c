//! Reconnect delays: exponential backoff with full jitter. The n-th retry in
//! a row waits a uniformly random time in `[0, min(cap, base · 2ⁿ))`, so a
//! fleet of replicas or verifiers that lost their server at the same moment
//! does not come back in step and hammer it while it recovers.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The delay before retry number `attempt` (0 for the first retry), given
/// `unit`, a number drawn uniformly from `[0, 1)`. Pure, for tests.
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(31)).min(cap);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ceiling.mul_f64(unit)
}

/// A number in `[0, 1)`, random enough for jitter (std's per-instance
/// random hash keys; no cryptographic use).
pub fn random_unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Retries in a row of one connection, and their delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next retry; each call doubles the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let delay = full_jitter(self.attempt, self.base, self.cap, random_unit());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// The connection worked: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_ceiling_doubles_up_to_the_cap_and_the_delay_is_drawn_below_it() {
        let (base, cap) = (100 * MS, 5_000 * MS);
        // unit just under 1 gives the ceiling; 0 gives no wait.
        let ceiling = |n| full_jitter(n, base, cap, 1.0);
        assert_eq!(ceiling(0), 100 * MS);
        assert_eq!(ceiling(1), 200 * MS);
        assert_eq!(ceiling(3), 800 * MS);
        assert_eq!(ceiling(6), cap);
        assert_eq!(ceiling(u32::MAX), cap, "no overflow");
        assert_eq!(full_jitter(4, base, cap, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(2, base, cap, 0.5), 200 * MS);
        assert_eq!(full_jitter(2, base, cap, f64::NAN), Duration::ZERO);
        assert_eq!(full_jitter(2, base, cap, 7.0), 400 * MS);
    }

    #[test]
    fn delays_are_spread_and_bounded() {
        let mut b = Backoff::new(100 * MS, 1_000 * MS);
        let first: Vec<Duration> = (0..50)
            .map(|_| {
                b.reset();
                b.next_delay()
            })
            .collect();
        assert!(first.iter().all(|d| *d < 100 * MS));
        let distinct: std::collections::BTreeSet<_> = first.iter().collect();
        assert!(distinct.len() > 10, "jittered: {first:?}");
        for _ in 0..40 {
            assert!(b.next_delay() <= 1_000 * MS);
        }
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
