//! Which partition of the revocation log (and of the store's keyspace) a
//! subject belongs to. The server places a subject's sessions and events by
//! this rule, and a client that reads a composite `WatchRevocations` cursor
//! finds a subject's position there by the same one: the two must agree, so
//! the rule is written once, here.

/// Most partitions: what two base64url characters can name (a session id
/// carries its partition in its first two characters).
pub const MAX_PARTITIONS: u32 = 4096;

/// The partition of a subject key (or any name) among `count` (≥ 1; 0 is
/// taken as 1): the first 32 bits of its SHA-256, little-endian, modulo
/// `count`.
pub fn of_subject(name: &str, count: u32) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(name.as_bytes());
    u32::from_le_bytes([d[0], d[1], d[2], d[3]]) % count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::subject_key;

    /// Vectors: the server placed these subjects here before the rule moved
    /// to the core, so their sessions and events stay where they are.
    #[test]
    fn subjects_fall_in_their_partitions() {
        for (tenant, subject, key, of64, of7) in [
            ("bench", "bench-rv-abc-0", "3nZKHytEm7TUkWpZLf5Ep-", 58, 6),
            ("acme", "alice", "3qTq6uqiznO-LDZvXQ6gE_", 1, 5),
        ] {
            let k = subject_key(tenant, subject);
            assert_eq!(k, key);
            assert_eq!(of_subject(&k, 64), of64, "{subject}");
            assert_eq!(of_subject(&k, 7), of7, "{subject}");
            assert_eq!(of_subject(&k, 1), 0, "{subject}");
            assert_eq!(of_subject(&k, 0), 0, "{subject}");
        }
    }

    #[test]
    fn subjects_spread_over_partitions() {
        let mut seen = vec![0u32; 64];
        for i in 0..6400 {
            seen[of_subject(&format!("subject-{i}"), 64) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50 && n < 160), "{seen:?}");
    }
}
