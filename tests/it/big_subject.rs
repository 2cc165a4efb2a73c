//! Issue #32, defect 1: one subject with many sessions must not stall the
//! store for everyone. A page of ListSessions, "log out my other devices"
//! and the session cap cost each call time in proportion to its own work,
//! never to the subject's size: on Redis, with 20,000 sessions, a page, a
//! cap eviction and every call of log-out-others (beside a page and an
//! unrelated Issue) cost Redis well under 10 ms each. (Before: every page
//! read and sorted the whole index, ~190 ms at 20,000; log-out-others was
//! one script of every revocation; the cap read every session of the
//! subject on each Issue.)
//!
//! Measured as Redis's own CPU time (`INFO cpu`) per script call (`INFO
//! commandstats`), not with SLOWLOG as the issue proposed: SLOWLOG times
//! wall clock, and on CI's 2 shared cores a 20-session script was once
//! descheduled for 107 ms. Each test has its Redis to itself, so the CPU it
//! used between two readings is this test's.

use std::time::Instant;

use crate::store_conformance::{fixture, now, redis_fixture, session, sid, Fixture, FEED};
use crate::support::{Backend, RedisServer};
use tessera::store::*;

const MANY: usize = 20_000;

/// Label of the `i`-th session of the big subject (created `i` ms after the first).
fn label(subject: &str, i: usize) -> String {
    format!("{subject}-{i:05}")
}

async fn fill<S: Store>(s: &S, subject: &str, t0: i64) {
    let news: Vec<NewSession> = (0..MANY)
        .map(|i| session(&label(subject, i), subject, t0 + i as i64))
        .collect();
    for chunk in news.chunks(1_000) {
        let created = futures::future::join_all(chunk.iter().map(|n| s.create_session(n))).await;
        assert!(created
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| *o == CreateOutcome::CREATED)));
    }
}

/// Redis's CPU time so far (user + system, seconds) and its script calls.
async fn meter(redis: &RedisServer) -> (f64, u64) {
    let field = |text: &str, name: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(str::to_owned))
    };
    let cpu = redis.command("INFO cpu").await;
    let secs = |name| {
        field(&cpu, name)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in {cpu}"))
    };
    let stats = redis.command("INFO commandstats").await;
    let calls = field(&stats, "cmdstat_evalsha:calls=")
        .and_then(|v| v.split(',').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    (secs("used_cpu_user:") + secs("used_cpu_sys:"), calls)
}

/// Redis CPU per script call since `before`, ms, and the calls.
async fn per_call_ms(redis: &RedisServer, before: (f64, u64)) -> (f64, u64) {
    let after = meter(redis).await;
    let calls = after.1 - before.1;
    assert!(calls > 0, "no script call measured");
    ((after.0 - before.0) * 1000.0 / calls as f64, calls)
}

/// Well under the 10 ms the issue allows a store call (and ~20x below the
/// 190 ms a page cost before at this size).
const MAX_CALL_MS: f64 = 10.0;

async fn many_sessions_cost_each_call_a_page<S: Store>(s: &S, redis: Option<&RedisServer>) {
    let subject = if redis.is_some() { "big-r" } else { "big-m" };
    let skey = subject_key("acme", subject);
    // Created one a millisecond, ending now: the newest is the last.
    let t0 = now() - MANY as i64;
    fill(s, subject, t0).await;
    let t = now();

    // Pages, newest first, each continuing where the last stopped.
    // (50: the service's default page.)
    let before = match redis {
        Some(redis) => Some(meter(redis).await),
        None => None,
    };
    let first = s.list_sessions(&skey, "", 50, t).await.unwrap();
    if let (Some(redis), Some(before)) = (redis, before) {
        // (Its calls: the page's script, and the layout check of a store's
        // first call.)
        let (ms, calls) = per_call_ms(redis, before).await;
        let total = ms * calls as f64;
        println!("a page of 50 of {MANY}: {total:.2} ms of Redis CPU");
        assert!(total < MAX_CALL_MS, "a page: {total} ms in {calls} calls");
    }
    assert_eq!(first.sessions.len(), 50);
    assert_eq!(first.sessions[0].data.sid, sid(&label(subject, MANY - 1)));
    assert_eq!(first.sessions[49].data.sid, sid(&label(subject, MANY - 50)));
    let second = s.list_sessions(&skey, &first.next, 50, t).await.unwrap();
    assert_eq!(second.sessions[0].data.sid, sid(&label(subject, MANY - 51)));

    // The cap on a subject far over it: a few of the oldest go per Issue.
    let mut capped = session(&format!("{subject}-capped"), subject, t);
    capped.cap = Some(SessionCap {
        max: 100,
        evict_oldest: true,
    });
    let before = match redis {
        Some(redis) => Some(meter(redis).await),
        None => None,
    };
    let CreateOutcome::Created { evicted, .. } = s.create_session(&capped).await.unwrap() else {
        panic!("evict-oldest creates");
    };
    if let (Some(redis), Some(before)) = (redis, before) {
        let (ms, calls) = per_call_ms(redis, before).await;
        let total = ms * calls as f64;
        println!(
            "an Issue evicting {}: {total:.2} ms of Redis CPU",
            evicted.len()
        );
        assert!(
            total < MAX_CALL_MS,
            "an Issue at the cap: {total} ms in {calls} calls"
        );
    }
    let oldest: Vec<String> = (0..schema::CAP_EVICTIONS_PER_ISSUE)
        .map(|i| sid(&label(subject, i)))
        .collect();
    assert_eq!(evicted, oldest, "the oldest, oldest first");

    // Log-out-others, a page and an unrelated Issue at the same time.
    let keep = sid(&label(subject, 12_345));
    let others = RevokeRequest {
        target: RevokeTarget::SubjectExcept {
            tenant: "acme".into(),
            subject: subject.into(),
            keep_sid: keep.clone(),
        },
        now_ms: t + 1,
        feed: FEED,
        traceparent: String::new(),
    };
    let unrelated = session(&format!("{subject}-bystander"), "bystander", t + 1);
    let before = match redis {
        Some(redis) => Some(meter(redis).await),
        None => None,
    };
    let started = Instant::now();
    let (revoked, page, bystander) = tokio::join!(
        s.revoke(&others),
        s.list_sessions(&skey, &second.next, 50, t + 1),
        async {
            let at = Instant::now();
            let outcome = s.create_session(&unrelated).await.unwrap();
            (outcome, at.elapsed())
        }
    );
    println!(
        "log-out-others of {MANY}: {:?}; the bystander's Issue: {:?}",
        started.elapsed(),
        bystander.1
    );
    assert!(revoked.unwrap().is_some());
    assert!(page.is_ok());
    assert_eq!(bystander.0, CreateOutcome::CREATED);
    if let (Some(redis), Some(before)) = (redis, before) {
        // Every call bounded: ~1,000 batches, none holding Redis long.
        let (ms, calls) = per_call_ms(redis, before).await;
        println!("log-out-others, a page, an Issue: {calls} calls, {ms:.3} ms of Redis CPU each");
        assert!(
            calls as usize > MANY / schema::LOG_OUT_OTHERS_BATCH,
            "{calls} calls"
        );
        assert!(ms < MAX_CALL_MS / 4.0, "{ms} ms a call");
    }

    // Only the kept session is left.
    let left = s.list_sessions(&skey, "", 50, t + 2).await.unwrap();
    let left: Vec<String> = left.sessions.into_iter().map(|v| v.data.sid).collect();
    assert_eq!(left, vec![keep]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_cost_each_call_a_page_memory() {
    let Fixture::Memory(s) = fixture(Backend::Memory).await else {
        unreachable!()
    };
    many_sessions_cost_each_call_a_page(&*s, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_cost_each_call_a_page_redis() {
    let (s, server) = redis_fixture().await;
    many_sessions_cost_each_call_a_page(&*s, Some(&server)).await;
}
