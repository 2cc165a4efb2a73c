//! Redis-specific behaviour: outages, several replicas on one Redis, and
//! housekeeping (every key has a TTL).

use std::time::{Duration, Instant};

use crate::support::*;
use tessera::pb;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_and_recovers_without_restart() {
    let mut env = Env::new(Backend::Redis).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let before = issue(&mut c, "alice").await;

    env.redis.as_mut().unwrap().kill();
    server.wait_health(ServingStatus::NotServing).await;

    // Every stateful RPC answers UNAVAILABLE quickly; nothing hangs or panics.
    let started = Instant::now();
    let s = expect_reason(c.issue(issue_request("bob")).await, "STORE_UNAVAILABLE");
    assert_eq!(s.code(), tonic::Code::Unavailable);
    expect_reason(
        c.refresh(refresh_req(&before.refresh_token)).await,
        "STORE_UNAVAILABLE",
    );
    expect_reason(
        c.verify(strong(&before.access_token)).await,
        "STORE_UNAVAILABLE",
    );
    expect_reason(
        c.revoke(revoke_session_id(&before.session_id)).await,
        "STORE_UNAVAILABLE",
    );
    // The revocation cache lost its feed: default Verify fails closed.
    expect_reason(
        c.verify(verify_request(&before.access_token)).await,
        "STORE_UNAVAILABLE",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "calls took {:?}",
        started.elapsed()
    );
    // Stateless answers keep working.
    c.get_jwks(pb::GetJwksRequest::default())
        .await
        .expect("jwks without a store");

    env.redis.as_mut().unwrap().restart().await;
    let recovered = server.wait_health(ServingStatus::Serving).await;
    assert!(
        recovered < Duration::from_secs(5),
        "recovery took {recovered:?}"
    );
    let after = issue(&mut c, "carol").await;
    // Give the feed reader its resubscription; then default Verify works again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.verify(verify_request(&after.access_token)).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "verify never recovered: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.refresh(refresh_req(&after.refresh_token))
        .await
        .expect("refresh after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_redis_act_as_one_authority() {
    let env = Env::new(Backend::Redis).await;
    let a = env.server(&[]).await;
    let b = env.server(&[]).await;
    let mut ca = a.client().await;
    let mut cb = b.client().await;

    let pair = issue(&mut ca, "alice").await;
    cb.verify(verify_request(&pair.access_token))
        .await
        .expect("B verifies A's token");
    let rotated = cb
        .refresh(refresh_req(&pair.refresh_token))
        .await
        .expect("refresh on B")
        .into_inner()
        .tokens
        .unwrap();
    // A grace retry on A gets B's successor.
    let retry = ca
        .refresh(refresh_req(&pair.refresh_token))
        .await
        .expect("grace retry on A")
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(retry.refresh_token, rotated.refresh_token);
    assert_eq!(retry.access_token, rotated.access_token);

    cb.revoke(pb::RevokeRequest {
        target: Some(pb::revoke_request::Target::Token(
            rotated.refresh_token.clone(),
        )),
        reason: "test".into(),
        ..Default::default()
    })
    .await
    .expect("revoke on B");
    expect_reason(
        ca.verify(strong(&rotated.access_token)).await,
        "TOKEN_REVOKED",
    );
    expect_reason(ca.verify(strong(&pair.access_token)).await, "TOKEN_REVOKED");
    // And through the feed, without a store read, within moments.
    wait_revoked(&mut ca, &rotated.access_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_written_has_a_ttl() {
    let env = Env::new(Backend::Redis).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let p = issue(&mut c, "alice").await;
    let q = issue(&mut c, "bob").await;
    let r = issue(&mut c, "carol").await;
    c.refresh(refresh_req(&p.refresh_token)).await.unwrap();
    let mut v = verify_request(&p.access_token);
    v.renew = true;
    c.verify(v).await.unwrap();
    for revoke in [
        revoke_token(&q.access_token),
        revoke_session_id(&r.session_id),
        revoke_subject("acme", "alice"),
    ] {
        c.revoke(revoke).await.unwrap();
    }
    let redis = env.redis.as_ref().unwrap();
    let keys = redis.command("KEYS *").await;
    let names: Vec<&str> = keys.lines().filter(|l| l.starts_with("tessera:")).collect();
    assert!(names.len() >= 5, "{keys}");
    for name in names {
        let ttl = redis.command(&format!("PTTL {name}")).await;
        if name.ends_with(":log") {
            continue; // the log is trimmed by age on every append instead
        }
        if name == "tessera:meta" {
            continue; // the deployment's layout: kept for the deployment's life
        }
        let ms: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
        assert!(ms > 0, "{name} has no TTL ({ttl})");
    }
}

/// Records the commands clients send to a Redis (MONITOR), without the ones
/// scripts run inside Redis.
struct Monitor {
    lines: std::sync::Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    async fn start(redis: &RedisServer) -> Monitor {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(redis.url().trim_start_matches("redis://"))
            .await
            .expect("connect redis");
        s.write_all(b"MONITOR\r\n").await.expect("monitor");
        let mut ok = [0u8; 5];
        s.read_exact(&mut ok).await.expect("+OK");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = lines.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Monitor { lines, task }
    }

    /// Upper-case names of the commands clients sent, in order; what runs on
    /// timers, not per call, left out: health checks (TIME, which also
    /// syncs the replica's clock) and the feed's once-a-second safety-net
    /// read of the log (XRANGE).
    async fn stop(self) -> Vec<String> {
        self.stop_full()
            .await
            .iter()
            .filter_map(|args| args.first())
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| c != "TIME" && c != "XRANGE")
            .collect()
    }

    /// Every command clients sent, with its arguments (scripts' own left out).
    async fn stop_full(self) -> Vec<Vec<String>> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.task.abort();
        let text = self.lines.lock().unwrap().clone();
        text.lines()
            .filter(|l| !l.contains(" lua] "))
            .filter_map(|l| l.split_once("] \""))
            .map(|(_, rest)| {
                rest.trim_end_matches('"')
                    .split("\" \"")
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }
}

/// Redis round trips per RPC (issue 8), as Redis sees them: default Verify
/// none, strong Verify one read, Issue and Refresh one script call each
/// (on one Redis, with the default caller budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_rpc() {
    let env = Env::new(Backend::Redis).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let redis = env.redis.as_ref().unwrap();
    let pair = issue(&mut c, "trips").await;

    let m = Monitor::start(redis).await;
    for _ in 0..20 {
        c.verify(verify_request(&pair.access_token)).await.unwrap();
    }
    assert_eq!(m.stop().await, Vec::<String>::new(), "default Verify");

    let m = Monitor::start(redis).await;
    for _ in 0..5 {
        c.verify(strong(&pair.access_token)).await.unwrap();
    }
    assert_eq!(m.stop().await, vec!["MGET"; 5], "strong Verify");

    let m = Monitor::start(redis).await;
    for i in 0..5 {
        issue(&mut c, &format!("trips-{i}")).await;
    }
    // One each, the caller's Issue budget (on by default) counted in the
    // same script: on one Redis a script reaches the caller's partition too
    // (a Cluster counts it in a call of its own first).
    assert_eq!(m.stop().await, vec!["EVALSHA"; 5], "Issue");

    // The first Refresh loads its script (NOSCRIPT, SCRIPT LOAD, EVALSHA).
    let mut token = refreshed(&mut c, &pair.refresh_token).await.refresh_token;
    let m = Monitor::start(redis).await;
    for _ in 0..5 {
        token = refreshed(&mut c, &token).await.refresh_token;
    }
    assert_eq!(m.stop().await, vec!["EVALSHA"; 5], "Refresh");
}

/// The session hash's memory layout (BENCHMARKS.md, memory per session): a
/// session with the default claims bound to a device is a listpack of
/// one-letter fields with a 22-character device hash, within jemalloc's
/// 224-byte class (`MEMORY USAGE` 344 B with the layout before, ~312 now);
/// its rotations add a generation, a rotation instant and one 16-character
/// ring slot each, and the ring stops at 17 slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_hash_stays_a_small_listpack() {
    let env = Env::new(Backend::Redis).await;
    let server = env.server(&["--refresh-grace=0s"]).await;
    let mut c = server.client().await;
    let mut request = issue_request("user-12345");
    request.roles = vec!["user".into()];
    request.device_fingerprint = "device-12345".into();
    let pair = c.issue(request).await.unwrap().into_inner().tokens.unwrap();
    let redis = env.redis.as_ref().unwrap();
    let key = format!("{}s:{}", key_prefix_of(&pair.session_id), pair.session_id);
    let fields = |reply: String| -> Vec<String> {
        let mut names: Vec<String> = reply
            .lines()
            .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    };
    let usage = |reply: String| -> i64 { reply.trim().trim_start_matches(':').parse().unwrap() };
    let encoding = || async {
        let reply = redis.command(&format!("OBJECT ENCODING {key}")).await;
        reply.lines().nth(1).unwrap_or_default().to_owned()
    };
    assert_eq!(encoding().await, "listpack");
    assert_eq!(
        fields(redis.command(&format!("HKEYS {key}")).await),
        ["a", "c", "d", "e", "f", "h", "i", "k", "t", "u"]
    );
    let device = redis.command(&format!("HGET {key} f")).await;
    assert_eq!(device.lines().nth(1).map(str::len), Some(22), "{device}");
    let fresh = usage(redis.command(&format!("MEMORY USAGE {key}")).await);
    assert!(fresh <= 320, "a fresh session takes {fresh} B");

    let mut token = pair.refresh_token;
    for _ in 0..20 {
        token = c
            .refresh(refresh_on(&token, "device-12345"))
            .await
            .unwrap()
            .into_inner()
            .tokens
            .unwrap()
            .refresh_token;
    }
    assert_eq!(encoding().await, "listpack", "after 20 rotations");
    let names = fields(redis.command(&format!("HKEYS {key}")).await);
    let ring = names.iter().filter(|n| n.starts_with('o')).count();
    assert_eq!(ring, 17, "{names:?}");
    assert_eq!(names.len(), 10 + 2 + 17, "{names:?}");
    let rotated = usage(redis.command(&format!("MEMORY USAGE {key}")).await);
    assert!(
        rotated <= 740,
        "after 20 rotations a session takes {rotated} B"
    );
}

/// Revoke access token `jti` of acme's `subject` in `store` directly: one
/// event in the log of that subject's partition.
async fn revoke_token_in(store: &tessera::store::redis::RedisStore, jti: &str, subject: &str) {
    use tessera::store::*;
    let now = tessera::clock::now_ms();
    let request = RevokeRequest {
        target: RevokeTarget::Token {
            jti: jti.to_owned(),
            sid: String::new(),
            tenant: "acme".into(),
            subject: subject.to_owned(),
            exp_ms: now + 60_000,
        },
        now_ms: now,
        feed: FeedPolicy {
            retention_ms: 600_000,
            access_horizon_ms: 60_000,
            subject_horizon_ms: 60_000,
        },
        traceparent: String::new(),
    };
    store.revoke(&request).await.unwrap().unwrap();
}

/// Move `after` past a page of the log, asserting that no event of it comes
/// again or out of order within its partition.
fn advance_over(after: &mut tessera::store::Position, page: &[tessera::store::RevocationEvent]) {
    for event in page {
        let id = tessera::store::parse_cursor(&event.cursor).unwrap();
        assert!(
            !after.covers(event.partition, id),
            "{} again or out of order",
            event.token_id
        );
        after.advance_past(event);
    }
}

/// Reading every partition's log in pages (a snapshot, a resync) asks Redis
/// for about a page per page, wherever the events sit: before, each page
/// asked each of P logs for a whole page and kept one page of what came
/// back (P times the reads on a backlog). Every event comes once, in order
/// within its partition, and every page but the last is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_every_log_reads_about_what_it_returns() {
    use tessera::store::redis::RedisStore;
    use tessera::store::*;
    let redis = RedisServer::start().await;
    let store = RedisStore::connect(&redis.url(), Duration::from_secs(2), 4)
        .await
        .unwrap();
    // 400 events: most in one partition's log, the rest spread.
    let parts = tessera::store::partition::Partitions::new(4).unwrap();
    let mut subjects: Vec<String> = Vec::new();
    let (mut crowded, mut others) = (0, 0);
    for i in 0.. {
        let subject = format!("s{i}");
        let p = parts.of_subject(&subject_key("acme", &subject));
        if p == 0 && crowded < 300 {
            crowded += 1;
        } else if p != 0 && others < 100 {
            others += 1;
        } else if crowded == 300 && others == 100 {
            break;
        } else {
            continue;
        }
        subjects.push(subject);
    }
    for (i, subject) in subjects.iter().enumerate() {
        revoke_token_in(&store, &format!("j{i}"), subject).await;
    }

    let monitor = Monitor::start(&redis).await;
    let mut after = Position::start(4);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.read_log(&after, None, 25).await.unwrap();
        pages += 1;
        advance_over(&mut after, &page);
        for event in &page {
            seen.push(event.token_id.clone());
        }
        if page.len() < 25 {
            break;
        }
        assert!(pages < 100, "no end");
    }
    let asked: u64 = monitor
        .stop_full()
        .await
        .iter()
        .filter(|args| args[0].eq_ignore_ascii_case("XRANGE"))
        .map(|args| args.last().unwrap().parse::<u64>().unwrap())
        .sum();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 400, "every event once");
    assert_eq!(pages, 17, "16 full pages and an empty one");
    // The COUNTs asked for, summed: ~630 now (a page asks each open log
    // for its share, empty or not), 17 x 4 x 25 = 1,700 before.
    assert!(asked <= 800, "asked Redis for {asked} entries to read 400");
}

/// With more partitions than a page has room (P = 8, pages of 3), each log
/// is asked for one entry and the oldest are kept, whichever logs hold them:
/// before, the lowest-numbered logs filled every page and the others waited
/// for their whole backlog. Every event still comes once, in order within
/// its partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_more_logs_than_room_a_page_takes_the_oldest() {
    use tessera::store::redis::RedisStore;
    use tessera::store::*;
    const P: u32 = 8;
    let redis = RedisServer::start().await;
    let store = RedisStore::connect(&redis.url(), Duration::from_secs(2), P)
        .await
        .unwrap();
    let parts = tessera::store::partition::Partitions::new(P).unwrap();
    // Two events per log, written from the last log to the first, each in a
    // millisecond of its own: the high-numbered logs hold the oldest.
    let mut order = Vec::new();
    for p in (0..P).rev() {
        let subject = (0..)
            .map(|i| format!("s{i}"))
            .find(|s| parts.of_subject(&subject_key("acme", s)) == p)
            .unwrap();
        for n in 0..2 {
            revoke_token_in(&store, &format!("p{p}-{n}"), &subject).await;
            order.push(format!("p{p}-{n}"));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut after = Position::start(P);
    let mut pages = Vec::new();
    loop {
        let page = store.read_log(&after, None, 3).await.unwrap();
        advance_over(&mut after, &page);
        let done = page.len() < 3;
        // No order across logs is promised: a page is compared as a set.
        let mut ids: Vec<String> = page.into_iter().map(|e| e.token_id).collect();
        ids.sort();
        pages.push(ids);
        if done {
            break;
        }
        assert!(pages.len() < 20, "no end");
    }
    // Each page holds the oldest entries at the head of each log.
    assert_eq!(pages[0], ["p5-0", "p6-0", "p7-0"], "{pages:?}");
    assert_eq!(pages[1], ["p5-1", "p6-1", "p7-1"], "{pages:?}");
    let mut seen: Vec<String> = pages.concat();
    assert_eq!(seen.len(), 16, "{pages:?}");
    seen.sort();
    order.sort();
    assert_eq!(seen, order, "every event once");
}
