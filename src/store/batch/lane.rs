//! A lane: the calls queued for one Redis node (one master of a Cluster, or
//! the one Redis), with at most one batch of them outstanding, and the rule
//! that decides when the next batch leaves.
//!
//! Every batch a master receives costs it a round trip's fixed work (the
//! read, the reply, the write to its replica, `epoll_wait`) whatever its
//! size, so a busy master wants fewer, fuller batches. A lane that just sent
//! a full-ish batch may therefore wait a little (at most the linger) for as
//! many calls as last time; a lane whose last batch was a lone call is idle
//! and sends at once, so a quiet server never pays the timer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::MAX_BATCH;

/// What a lane does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Nothing to send now (empty, or a batch is outstanding: its end wakes
    /// the lane).
    Hold,
    /// Send up to [`MAX_BATCH`] queued calls now.
    Send,
    /// Wait this long at most for more calls, then send.
    Wait(Duration),
}

/// When a free lane sends. `queued` calls wait, the lane's previous batch
/// had `last` calls, the queue has been sendable for `waited`, and `linger`
/// bounds any wait (zero turns lingering off).
pub(super) fn next(
    queued: usize,
    busy: bool,
    last: usize,
    waited: Duration,
    linger: Duration,
) -> Next {
    if queued == 0 || busy {
        return Next::Hold;
    }
    // Idle pipe (the last batch was a lone call or nothing), a batch as full
    // as the previous one or as allowed, or the bound reached: send now.
    if last <= 1 || queued >= last.min(MAX_BATCH) || waited >= linger {
        return Next::Send;
    }
    Next::Wait(linger - waited)
}

/// One node's queue and its outstanding batch.
pub(super) struct Lane<C> {
    queue: VecDeque<C>,
    busy: bool,
    /// The size of the previous batch: the lane's recent load.
    last: usize,
    /// Since when the queue could have been sent (lane free, calls queued).
    ready_at: Option<Instant>,
}

impl<C> Default for Lane<C> {
    fn default() -> Self {
        Lane {
            queue: VecDeque::new(),
            busy: false,
            last: 0,
            ready_at: None,
        }
    }
}

impl<C> Lane<C> {
    pub(super) fn push(&mut self, call: C, now: Instant) {
        self.queue.push_back(call);
        self.mark_ready(now);
    }

    /// Its batch is done: the lane is free again.
    pub(super) fn finished(&mut self, now: Instant) {
        self.busy = false;
        self.mark_ready(now);
    }

    fn mark_ready(&mut self, now: Instant) {
        if !self.busy && !self.queue.is_empty() && self.ready_at.is_none() {
            self.ready_at = Some(now);
        }
    }

    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Neither queued nor outstanding calls.
    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && !self.busy
    }

    pub(super) fn next(&self, now: Instant, linger: Duration) -> Next {
        let waited = self
            .ready_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        next(self.queue.len(), self.busy, self.last, waited, linger)
    }

    /// The next batch, oldest first; the lane is busy until [`Self::finished`].
    pub(super) fn take(&mut self) -> Vec<C> {
        let n = self.queue.len().min(MAX_BATCH);
        self.busy = true;
        self.last = n;
        self.ready_at = None;
        self.queue.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Duration = Duration::from_micros(200);

    #[test]
    fn a_lone_call_on_an_idle_lane_leaves_at_once() {
        assert_eq!(next(1, false, 0, Duration::ZERO, L), Next::Send);
        assert_eq!(next(1, false, 1, Duration::ZERO, L), Next::Send);
        // Several calls after a lone one: still no timer.
        assert_eq!(next(3, false, 1, Duration::ZERO, L), Next::Send);
    }

    #[test]
    fn a_busy_lane_waits_for_as_many_calls_as_last_time_within_the_bound() {
        assert_eq!(next(3, false, 10, Duration::ZERO, L), Next::Wait(L));
        assert_eq!(
            next(3, false, 10, Duration::from_micros(150), L),
            Next::Wait(Duration::from_micros(50))
        );
        assert_eq!(next(10, false, 10, Duration::ZERO, L), Next::Send);
        assert_eq!(next(11, false, 10, Duration::ZERO, L), Next::Send);
    }

    #[test]
    fn the_linger_is_bounded() {
        for last in [2, 10, MAX_BATCH, 10 * MAX_BATCH] {
            for waited in [0, 1, 199, 200, 10_000] {
                let waited = Duration::from_micros(waited);
                match next(1, false, last, waited, L) {
                    Next::Wait(d) => assert!(waited + d <= L, "{last} {waited:?} {d:?}"),
                    Next::Send => assert!(waited >= L),
                    Next::Hold => panic!("a free lane with a call never holds"),
                }
            }
        }
        // A full batch never waits, whatever the last one was.
        assert_eq!(
            next(MAX_BATCH, false, 5 * MAX_BATCH, Duration::ZERO, L),
            Next::Send
        );
    }

    #[test]
    fn no_linger_means_no_wait_and_a_busy_lane_holds() {
        assert_eq!(
            next(1, false, 32, Duration::ZERO, Duration::ZERO),
            Next::Send
        );
        assert_eq!(next(5, true, 0, Duration::ZERO, L), Next::Hold);
        assert_eq!(next(0, false, 32, Duration::ZERO, L), Next::Hold);
    }

    #[test]
    fn a_lane_sends_oldest_first_one_batch_at_a_time() {
        let t = Instant::now();
        let mut lane = Lane::default();
        for i in 0..MAX_BATCH + 3 {
            lane.push(i, t);
        }
        assert_eq!(lane.next(t, L), Next::Send);
        assert_eq!(lane.take(), (0..MAX_BATCH).collect::<Vec<_>>());
        assert_eq!(lane.next(t, L), Next::Hold, "one batch outstanding");
        lane.finished(t);
        // The previous batch was full: three calls wait for more, bounded.
        assert_eq!(lane.next(t, L), Next::Wait(L));
        assert_eq!(lane.next(t + L, L), Next::Send);
        assert_eq!(lane.take(), vec![MAX_BATCH, MAX_BATCH + 1, MAX_BATCH + 2]);
        lane.finished(t);
        assert!(lane.is_idle());
    }
}
