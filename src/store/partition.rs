//! Partitions of the keyspace (`--redis-partitions`).
//!
//! Every key belongs to one of P partitions, and every partition's keys share
//! one Redis Cluster hash tag, so each script touches one slot and stays
//! atomic while the partitions spread over the masters.
//!
//! - A session belongs to the partition of its (tenant, subject): that
//!   subject's sessions, its "log out everywhere" cut-off, its session index
//!   and its Issue and Refresh budgets live there together, and so do the
//!   revocation markers of its tokens.
//! - A session id carries its partition in its first two characters (base64url,
//!   so P ≤ 4096), and a refresh token carries its session id: Refresh,
//!   Revoke by session or refresh token, renewal and strong Verify go
//!   straight to their partition, with no lookup. An id whose prefix is not a
//!   partition is refused before any call to the store.
//! - Anything else named by a string (a caller's budget, a DPoP proof's replay
//!   marker, a shared value) goes by the hash of its name.
//!
//! The hash tags (two characters for 64 partitions) are chosen so that
//! partition `i` hashes into the `i`-th of P equal slot ranges: slots are given to masters in contiguous ranges, so the
//! partitions spread over the masters as evenly as the slots do, whatever P.
//! The tags depend on P only, never on the Cluster, and so are stable.

/// The default `--redis-partitions`.
pub const DEFAULT_PARTITIONS: u32 = 64;
/// The partition rule (SHA-256 of a subject key, modulo the count) and its
/// limit are the token core's: clients reading composite cursors place a
/// subject by the same rule.
pub use tessera_core::partition::{of_subject, MAX_PARTITIONS};
/// Redis Cluster's slot count.
const SLOTS: u32 = 16384;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn digit(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|i| i as u32)
}

/// The partitioning of one deployment.
#[derive(Debug, Clone)]
pub struct Partitions {
    count: u32,
    /// Per partition, the key prefix `tessera:{<tag>}:`.
    prefixes: Vec<String>,
}

impl Partitions {
    /// `count` partitions (1..=[`MAX_PARTITIONS`]).
    pub fn new(count: u32) -> Result<Self, String> {
        if !(1..=MAX_PARTITIONS).contains(&count) {
            return Err(format!(
                "--redis-partitions must be between 1 and {MAX_PARTITIONS}, not {count}"
            ));
        }
        let prefixes = tags(count)
            .into_iter()
            .map(|tag| format!("tessera:{{{tag}}}:"))
            .collect();
        Ok(Partitions { count, prefixes })
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The key prefix of partition `p` (`p` < count).
    pub fn prefix(&self, p: u32) -> &str {
        &self.prefixes[(p % self.count) as usize]
    }

    /// The partition of a subject, by its subject key (a base64url SHA-256,
    /// see [`super::subject_key`]).
    pub fn of_subject(&self, subject_key: &str) -> u32 {
        of_subject(subject_key, self.count)
    }

    /// The partition of any other name: by a hash of it.
    pub fn of_name(&self, name: &str) -> u32 {
        of_subject(name, self.count)
    }

    /// The partition a session id names; `None` when its prefix names none.
    pub fn of_sid(&self, sid: &str) -> Option<u32> {
        let b = sid.as_bytes();
        if b.len() < 3 {
            return None;
        }
        let p = digit(b[0])? * 64 + digit(b[1])?;
        (p < self.count).then_some(p)
    }

    /// A new random session id in partition `p`: its two-character prefix
    /// and 120 random bits (22 characters, the length of ids before).
    pub fn new_sid(&self, p: u32) -> String {
        self.sid_in(p, &super::random_b64::<15>())
    }

    /// The session id `rest` in partition `p`: `rest` after `p`'s prefix.
    pub fn sid_in(&self, p: u32, rest: &str) -> String {
        let p = p % self.count;
        let mut sid = String::with_capacity(2 + rest.len());
        sid.push(ALPHABET[(p / 64) as usize] as char);
        sid.push(ALPHABET[(p % 64) as usize] as char);
        sid.push_str(rest);
        sid
    }

    /// The key prefix of a session id's partition.
    pub fn sid_prefix(&self, sid: &str) -> Option<&str> {
        self.of_sid(sid).map(|p| self.prefix(p))
    }
}

/// The hash tags of `count` partitions: the first base64url strings, in
/// order of length and then of the alphabet, that hash into each
/// partition's slot range (2 characters for the default 64). Short, because
/// every key name carries its tag.
fn tags(count: u32) -> Vec<String> {
    let mut tags: Vec<Option<String>> = vec![None; count as usize];
    let mut left = count as usize;
    'lengths: for len in 1..=4u32 {
        for n in 0..64usize.pow(len) {
            let tag: String = (0..len)
                .rev()
                .map(|i| ALPHABET[(n / 64usize.pow(i)) % 64] as char)
                .collect();
            let slot = u32::from(fred::util::redis_keyslot(tag.as_bytes()));
            // Partition p's range is [p·S/P, (p+1)·S/P), rounded down.
            let mut p = slot * count / SLOTS;
            while (p + 1) * SLOTS / count <= slot {
                p += 1;
            }
            while p * SLOTS / count > slot {
                p -= 1;
            }
            let entry = &mut tags[p as usize];
            if entry.is_none() {
                *entry = Some(tag);
                left -= 1;
                if left == 0 {
                    break 'lengths;
                }
            }
        }
    }
    tags.into_iter().map(Option::unwrap_or_default).collect()
}

/// A random deployment id (in Redis beside the partition count).
pub fn new_deployment_id() -> u64 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_partition_hashes_into_its_own_slot_range() {
        for count in [1, 3, 64, 1000, MAX_PARTITIONS] {
            let parts = Partitions::new(count).unwrap();
            for i in 0..count {
                let prefix = parts.prefix(i);
                let slot = u32::from(fred::util::redis_keyslot(prefix.as_bytes()));
                assert!(
                    i * SLOTS / count <= slot && slot < (i + 1) * SLOTS / count,
                    "{count}: {prefix} in slot {slot}"
                );
            }
            if count == 64 {
                assert!(parts.prefix(0).len() <= "tessera:{ab}:".len());
            }
        }
        assert!(Partitions::new(0).is_err());
        assert!(Partitions::new(MAX_PARTITIONS + 1).is_err());
    }

    #[test]
    fn session_ids_carry_their_partition() {
        let parts = Partitions::new(64).unwrap();
        for p in [0, 1, 63] {
            let sid = parts.new_sid(p);
            assert_eq!(sid.len(), 22);
            assert_eq!(parts.of_sid(&sid), Some(p));
        }
        let big = Partitions::new(4096).unwrap();
        assert_eq!(big.of_sid(&big.new_sid(4095)), Some(4095));
        // Out of range, not base64url, too short.
        assert_eq!(parts.of_sid("B_aaaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(parts.of_sid("!Aaaaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(parts.of_sid("AA"), None);
        assert_eq!(parts.of_sid(""), None);
    }
}
