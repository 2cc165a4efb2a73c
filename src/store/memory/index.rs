//! A subject's two session indexes in memory, the `ss:` and `sc:` sorted
//! sets of the Redis store (common.lua `indexes`), kept by the same rules
//! so that both stores page, cap and log out alike (the differential test
//! compares them): members leave when revoked, a bounded number at a time
//! once past their score, or all together when the last one's score passes.

use std::collections::{BTreeSet, HashMap};

/// Members past their score pruned per write (common.lua `PRUNE`).
const PRUNE: usize = 64;

#[derive(Default)]
pub(super) struct SubjectIndex {
    /// sid → (kept until ms, created ms).
    members: HashMap<String, (i64, i64)>,
    /// (kept until ms, sid): the `ss:` index.
    by_keep: BTreeSet<(i64, String)>,
    /// (created ms, sid): the `sc:` index.
    by_created: BTreeSet<(i64, String)>,
}

impl SubjectIndex {
    /// Keep `sid` until at least `keep` ms (ZADD GT; its creation is set
    /// once, ZADD NX), then prune members past their score at `now`.
    pub(super) fn keep(&mut self, sid: &str, keep: i64, created: i64, now: i64) {
        match self.members.get_mut(sid) {
            Some((k, _)) if *k >= keep => {}
            Some((k, _)) => {
                self.by_keep.remove(&(*k, sid.to_owned()));
                *k = keep;
                self.by_keep.insert((keep, sid.to_owned()));
            }
            None => {
                self.members.insert(sid.to_owned(), (keep, created));
                self.by_keep.insert((keep, sid.to_owned()));
                self.by_created.insert((created, sid.to_owned()));
            }
        }
        let gone: Vec<String> = self
            .by_keep
            .iter()
            .take_while(|(k, _)| *k <= now)
            .take(PRUNE)
            .map(|(_, sid)| sid.clone())
            .collect();
        for sid in gone {
            self.remove(&sid);
        }
    }

    pub(super) fn remove(&mut self, sid: &str) {
        if let Some((keep, created)) = self.members.remove(sid) {
            self.by_keep.remove(&(keep, sid.to_owned()));
            self.by_created.remove(&(created, sid.to_owned()));
        }
    }

    /// Members kept past `now` (ZCOUNT ss (now +inf).
    pub(super) fn kept(&self, now: i64) -> usize {
        let past = self.by_keep.iter().take_while(|(k, _)| *k <= now).count();
        self.members.len() - past
    }

    /// Has the index itself expired (its longest-kept member is past)?
    pub(super) fn expired(&self, now: i64) -> bool {
        self.by_keep.last().is_none_or(|(k, _)| *k <= now)
    }

    /// The oldest `n` members by creation, then id.
    pub(super) fn oldest(&self, n: usize) -> Vec<String> {
        self.by_created
            .iter()
            .take(n)
            .map(|(_, sid)| sid.clone())
            .collect()
    }

    /// The oldest `n` members created at or before `until` ms.
    pub(super) fn oldest_until(&self, until: i64, n: usize) -> Vec<String> {
        self.by_created
            .iter()
            .take_while(|(c, _)| *c <= until)
            .take(n)
            .map(|(_, sid)| sid.clone())
            .collect()
    }

    /// Up to `n` members right after member (created, sid) in newest-first
    /// order, if that member is in the index: list.lua's ZREVRANK path.
    pub(super) fn after_member(
        &self,
        created: i64,
        sid: &str,
        n: usize,
    ) -> Option<Vec<(i64, String)>> {
        let at = (created, sid.to_owned());
        self.by_created.contains(&at).then(|| {
            self.by_created
                .range(..at)
                .rev()
                .take(n)
                .map(|(c, s)| (*c, s.clone()))
                .collect()
        })
    }

    /// Up to `n` members created at or before `max` ms (all when `None`),
    /// newest first (creation, then id, descending): list.lua's ZRANGE.
    pub(super) fn newest(&self, max: Option<i64>, n: usize) -> Vec<(i64, String)> {
        self.by_created
            .iter()
            .rev()
            .skip_while(|(c, _)| max.is_some_and(|m| *c > m))
            .take(n)
            .map(|(c, s)| (*c, s.clone()))
            .collect()
    }
}
