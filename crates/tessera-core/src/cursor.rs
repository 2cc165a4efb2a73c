//! `WatchRevocations` cursors over a partitioned revocation log.
//!
//! The log is one stream per partition (`--redis-partitions`; the memory
//! store has one). Order holds within a partition, which holds every event
//! of a session and of a subject; there is no total order across partitions,
//! and none is needed: a revocation kills what it names whatever else was
//! revoked around it. A position in the whole feed is therefore one position
//! per partition, a [`Position`]. What a watcher stores is its encoding, one
//! opaque string: base64url of a version byte, the deployment id (so a
//! cursor of another deployment is refused, not misread), the partition
//! count, and per partition the `<ms>-<seq>` id of the last event delivered
//! (milliseconds as a zigzag delta from the partition before, so ~3 bytes a
//! partition: about 270 characters for 64 partitions).
//!
//! The server writes and reads these cursors; a client (the load generator
//! measuring propagation) reads them to find an event's position in its
//! partition. Both use this one codec.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use crate::partition::MAX_PARTITIONS;
use crate::revocation::{parse_cursor, RevocationEvent};

/// A position in one partition's log: (ms, seq) of the last event covered.
pub type LocalId = (u64, u64);

const VERSION: u8 = 1;
/// Longest cursor accepted (4096 partitions at their widest, in base64).
pub const MAX_CURSOR_BYTES: usize = 4096 * 24;

/// One position per partition of the revocation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position(Vec<LocalId>);

impl Position {
    /// Before every event of `partitions` partitions.
    pub fn start(partitions: u32) -> Self {
        Position(vec![(0, 0); partitions as usize])
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.0.len() as u32
    }

    /// The position in partition `p` ((0, 0) for one out of range).
    pub fn get(&self, p: u32) -> LocalId {
        self.0.get(p as usize).copied().unwrap_or((0, 0))
    }

    /// Is the event at `id` of partition `p` at or before this position?
    pub fn covers(&self, p: u32, id: LocalId) -> bool {
        id <= self.get(p)
    }

    /// Move partition `p` forward to `id` (never back); false when out of range.
    pub fn advance(&mut self, p: u32, id: LocalId) -> bool {
        match self.0.get_mut(p as usize) {
            Some(at) => {
                *at = (*at).max(id);
                true
            }
            None => false,
        }
    }

    /// Put partition `p` at `id`, forward or back; false when out of range.
    pub fn set(&mut self, p: u32, id: LocalId) -> bool {
        match self.0.get_mut(p as usize) {
            Some(at) => {
                *at = id;
                true
            }
            None => false,
        }
    }

    /// Move forward past `event`; false when its partition or cursor is not
    /// one of this position's.
    pub fn advance_past(&mut self, event: &RevocationEvent) -> bool {
        match parse_cursor(&event.cursor) {
            Some(id) => self.advance(event.partition, id),
            None => false,
        }
    }

    /// Is every partition of `self` at or before the same one of `other`?
    pub fn within(&self, other: &Position) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| a <= b)
    }

    /// The `<ms>-<seq>` form of partition `p` ("" at the start).
    pub fn local(&self, p: u32) -> String {
        match self.get(p) {
            (0, 0) => String::new(),
            (ms, seq) => format!("{ms}-{seq}"),
        }
    }

    /// The opaque cursor string of this position in `deployment`.
    pub fn encode(&self, deployment: u64) -> String {
        let mut out = Vec::with_capacity(16 + self.0.len() * 4);
        out.push(VERSION);
        out.extend_from_slice(&deployment.to_le_bytes());
        varint(&mut out, self.0.len() as u64);
        let mut prev = 0i128;
        for &(ms, seq) in &self.0 {
            let delta = i128::from(ms) - prev;
            prev = i128::from(ms);
            // zigzag over the delta, which fits in 65 bits; ms < 2^63 in practice
            let z = ((delta << 1) ^ (delta >> 127)) as u128;
            varint(&mut out, z as u64);
            varint(&mut out, seq);
        }
        B64.encode(out)
    }

    /// Parse a cursor of `deployment` with `partitions` partitions; `None`
    /// for anything else (malformed, another deployment or layout).
    pub fn decode(cursor: &str, deployment: u64, partitions: u32) -> Option<Self> {
        Self::parse(cursor)
            .filter(|(d, p)| *d == deployment && p.partitions() == partitions)
            .map(|(_, p)| p)
    }

    /// The deployment id and position of any well-formed cursor (for tests
    /// and tools; the service uses [`Position::decode`]).
    pub fn parse(cursor: &str) -> Option<(u64, Self)> {
        if cursor.len() > MAX_CURSOR_BYTES {
            return None;
        }
        let raw = B64.decode(cursor).ok()?;
        let (&version, rest) = raw.split_first()?;
        if version != VERSION || rest.len() < 8 {
            return None;
        }
        let (dep, mut rest) = rest.split_at(8);
        let deployment = u64::from_le_bytes(dep.try_into().ok()?);
        let partitions = read_varint(&mut rest)?;
        if partitions > u64::from(MAX_PARTITIONS) {
            return None;
        }
        let mut parts = Vec::with_capacity(partitions as usize);
        let mut prev = 0i128;
        for _ in 0..partitions {
            let z = i128::from(read_varint(&mut rest)?);
            let delta = (z >> 1) ^ -(z & 1);
            let ms = u64::try_from(prev + delta).ok()?;
            prev = i128::from(ms);
            parts.push((ms, read_varint(&mut rest)?));
        }
        rest.is_empty().then_some((deployment, Position(parts)))
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        let bits = u64::from(b & 0x7f);
        if shift == 63 && bits > 1 {
            return None; // past 64 bits
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_is_not_theirs() {
        let mut p = Position::start(64);
        p.advance(0, (1_790_000_000_123, 0));
        p.advance(7, (1_790_000_000_001, 3));
        p.advance(63, (u64::MAX >> 1, u64::MAX));
        let c = p.encode(42);
        assert_eq!(Position::decode(&c, 42, 64), Some(p.clone()));
        // Another deployment, another partition count, garbage, a truncation,
        // a trailing byte: all refused.
        assert_eq!(Position::decode(&c, 43, 64), None);
        assert_eq!(Position::decode(&c, 42, 32), None);
        assert_eq!(Position::decode("1790000000123-0", 42, 64), None);
        assert_eq!(Position::decode("", 42, 64), None);
        let raw = B64.decode(&c).unwrap();
        assert_eq!(
            Position::decode(&B64.encode(&raw[..raw.len() - 1]), 42, 64),
            None
        );
        let mut longer = raw.clone();
        longer.push(0);
        assert_eq!(Position::decode(&B64.encode(&longer), 42, 64), None);
        // A 64-partition cursor of today's ids stays short.
        let mut today = Position::start(64);
        for i in 0..64 {
            today.advance(i, (1_790_000_000_000 + u64::from(i) * 37, 0));
        }
        assert!(today.encode(1).len() < 300, "{}", today.encode(1).len());
    }

    /// The wire format byte by byte, so a change to it cannot pass as a
    /// round trip: version 1, deployment 42, 3 partitions at (1000, 2),
    /// (1000, 0) and (999, 5) (ms as zigzag deltas: +1000, 0, -1).
    #[test]
    fn cursors_are_read_partition_by_partition() {
        let mut raw = vec![1u8];
        raw.extend(42u64.to_le_bytes());
        raw.extend([3, 0xd0, 0x0f, 2, 0, 0, 1, 5]);
        let c = B64.encode(&raw);
        let mut want = Position::start(3);
        want.set(0, (1000, 2));
        want.set(1, (1000, 0));
        want.set(2, (999, 5));
        assert_eq!(Position::parse(&c), Some((42, want.clone())));
        assert_eq!(want.encode(42), c);
        assert_eq!(Position::parse(&B64.encode(&raw[..raw.len() - 1])), None);
        assert_eq!(Position::parse("1790000000123-0"), None);
    }

    #[test]
    fn positions_move_forward_only_and_compare_by_partition() {
        let mut a = Position::start(3);
        assert!(a.advance(1, (5, 0)));
        assert!(a.advance(1, (4, 9)));
        assert_eq!(a.get(1), (5, 0));
        assert!(!a.advance(3, (1, 0)));
        assert!(a.covers(1, (5, 0)) && !a.covers(1, (5, 1)));
        let mut b = a.clone();
        b.advance(0, (1, 0));
        assert!(a.within(&b) && !b.within(&a));
        assert_eq!(a.local(1), "5-0");
        assert_eq!(a.local(0), "");
    }
}
