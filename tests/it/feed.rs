//! The revocation feed: fan-out across replicas, resumable watchers,
//! resynchronisation after a lost subscription, slow watchers.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::support::*;
use tessera::pb;
use tonic::Streaming;

async fn watch(c: &mut Client, after: &str, snapshot: bool) -> Streaming<pb::RevocationEvent> {
    c.watch_revocations(pb::WatchRevocationsRequest {
        after_cursor: after.into(),
        include_snapshot: snapshot,
        mark_caught_up: false,
        ..Default::default()
    })
    .await
    .expect("watch")
    .into_inner()
}

/// Read exactly `n` events (or fail after 20 s).
async fn take(stream: &mut Streaming<pb::RevocationEvent>, n: usize) -> Vec<pb::RevocationEvent> {
    let mut out = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(ev))) => out.push(ev),
            other => panic!("after {} of {n} events: {other:?}", out.len()),
        }
    }
    out
}

/// Nothing more arrives for a short while.
async fn assert_quiet(stream: &mut Streaming<pb::RevocationEvent>) {
    if let Ok(msg) = tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
        panic!("unexpected extra event: {msg:?}");
    }
}

/// Session ids of `events` by the partition they belong to (their key
/// prefix), each partition's in the order the events came.
fn by_partition(events: &[pb::RevocationEvent]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        out.entry(key_prefix_of(&e.session_id))
            .or_default()
            .push(e.session_id.clone());
    }
    out
}

/// The feed suite: 3 Tessera replicas, 20 watchers spread over them, 1,000
/// session revocations over 1,000 subjects (so over every partition) made
/// on all replicas. Every watcher gets every revocation exactly once, in
/// the same order within each partition; a cursor resumes exactly after
/// itself on any replica. Then, on each node in turn, `CLIENT KILL TYPE
/// pubsub` cuts every replica's subscription there, and revocations made
/// right after are refused by the other replicas (their caches resync from
/// the logs, and meanwhile read the store), and still reach every watcher once.
async fn feed_suite(redis_url: &str, nodes: &[&RedisServer]) {
    const REVOCATIONS: usize = 1000;
    const WATCHERS: usize = 20;
    const PER_KILL: usize = 10;
    let key = TestKey::new();
    let flags = redis_flags(
        redis_url,
        &key,
        &["--admin-listen=127.0.0.1:0", "--store-timeout=2s"],
    );
    let replicas = vec![
        Server::start(&flags).await,
        Server::start(&flags).await,
        Server::start(&flags).await,
    ];
    let mut clients = Vec::new();
    for r in &replicas {
        clients.push(r.client().await);
    }
    let mut watchers = Vec::new();
    for i in 0..WATCHERS {
        watchers.push(watch(&mut clients[i % 3], "", false).await);
    }
    // 1,000 sessions, then their revocations made across all replicas, 8 at a time.
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let mut c = clients[worker % 3].clone();
        tasks.push(tokio::spawn(async move {
            let subjects = (worker..REVOCATIONS)
                .step_by(8)
                .map(|i| format!("sess-{i}"));
            session_ids(&mut c, subjects).await
        }));
    }
    let mut sids = Vec::new();
    for t in tasks {
        sids.push(t.await.unwrap());
    }
    let expected: HashSet<String> = sids.iter().flatten().cloned().collect();
    let partitions_used = by_partition(
        &expected
            .iter()
            .map(|sid| pb::RevocationEvent {
                session_id: sid.clone(),
                ..Default::default()
            })
            .collect::<Vec<_>>(),
    )
    .len();
    assert!(partitions_used > 1, "the subjects spread over partitions");
    let mut tasks = Vec::new();
    for (worker, sids) in sids.into_iter().enumerate() {
        let mut c = clients[worker % 3].clone();
        tasks.push(tokio::spawn(async move {
            for sid in sids {
                let r = c.revoke(revoke_session_id(&sid)).await.expect("revoke");
                assert!(!r.into_inner().cursor.is_empty());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let mut reference: Option<Vec<pb::RevocationEvent>> = None;
    for (i, w) in watchers.iter_mut().enumerate() {
        let events = take(w, REVOCATIONS).await;
        let sids: HashSet<String> = events.iter().map(|e| e.session_id.clone()).collect();
        assert_eq!(
            sids, expected,
            "watcher {i} got every revocation exactly once"
        );
        let cursors: HashSet<&String> = events.iter().map(|e| &e.cursor).collect();
        assert_eq!(cursors.len(), REVOCATIONS, "no duplicate cursor");
        assert!(
            events
                .iter()
                .all(|e| e.kind == pb::RevocationKind::Session as i32 && e.expires_at.is_some()),
            "well-formed events"
        );
        match &reference {
            None => reference = Some(events),
            Some(r) => assert_eq!(
                by_partition(r),
                by_partition(&events),
                "watcher {i}: every watcher sees each partition in the same order"
            ),
        }
    }
    let mut reference = reference.unwrap();

    // Each node's pub/sub connections cut, then revocations right after.
    let mut cut = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let mut pairs = Vec::new();
        for i in 0..PER_KILL {
            pairs.push(issue(&mut clients[0], &format!("cut-{n}-{i}")).await);
        }
        let killed = node.command("CLIENT KILL TYPE pubsub").await;
        assert!(
            killed
                .trim_start_matches(':')
                .trim()
                .parse::<u32>()
                .unwrap()
                >= 1,
            "node {n}: no subscriber was connected: {killed}"
        );
        for pair in &pairs {
            clients[1]
                .revoke(revoke_session_id(&pair.session_id))
                .await
                .expect("revoke");
            cut.push(pair.session_id.clone());
        }
        // Well inside the feed's 1 s poll: a replica that trusted a cache
        // which missed the wake-ups would still accept these.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for pair in &pairs {
            for c in [0, 2] {
                match clients[c].verify(verify_request(&pair.access_token)).await {
                    Err(s)
                        if ["TOKEN_REVOKED", "STORE_UNAVAILABLE"]
                            .contains(&reason(&s).as_str()) => {}
                    other => {
                        panic!("node {n} cut: replica {c} answered {other:?} for a revoked token")
                    }
                }
            }
        }
    }
    let cut_set: HashSet<String> = cut.iter().cloned().collect();
    for (i, w) in watchers.iter_mut().enumerate() {
        let events = take(w, cut.len()).await;
        let sids: HashSet<String> = events.iter().map(|e| e.session_id.clone()).collect();
        assert_eq!(
            sids, cut_set,
            "watcher {i}: the revocations after the cuts, once each"
        );
        if i == 0 {
            reference.extend(events);
        }
        assert_quiet(w).await;
    }
    // Any cursor resumes exactly after itself, on any replica: what the
    // watcher had not yet seen, in each partition's order.
    let total = reference.len();
    for (k, at) in [0usize, total / 2, total - 2].into_iter().enumerate() {
        let mut resumed = watch(&mut clients[k % 3], &reference[at].cursor, false).await;
        let tail = take(&mut resumed, total - at - 1).await;
        assert_eq!(
            by_partition(&tail),
            by_partition(&reference[at + 1..]),
            "resumed after event {at}"
        );
        assert_quiet(&mut resumed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watcher_on_every_replica_gets_every_revocation_once() {
    let redis = RedisServer::start().await;
    feed_suite(&redis.url(), &[&redis]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watcher_gets_every_revocation_once_on_a_cluster() {
    let cluster = RedisCluster::start(3).await;
    let masters: Vec<&RedisServer> = cluster.nodes[..cluster.masters].iter().collect();
    feed_suite(&cluster.url(), &masters).await;
}

async fn watcher_resumes_from_its_last_cursor(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let a = session_ids(&mut c, (0..50).map(|i| format!("a-{i}"))).await;
    let b = session_ids(&mut c, (0..30).map(|i| format!("b-{i}"))).await;
    let mut first = watch(&mut c, "", false).await;
    for sid in &a {
        c.revoke(revoke_session_id(sid)).await.unwrap();
    }
    let seen = take(&mut first, 20).await;
    drop(first); // disconnected mid-stream
    for sid in &b {
        c.revoke(revoke_session_id(sid)).await.unwrap();
    }
    let last = seen.last().unwrap().cursor.clone();
    let mut resumed = watch(&mut c, &last, false).await;
    let missed = take(&mut resumed, 60).await;
    let sids: Vec<String> = missed.iter().map(|e| e.session_id.clone()).collect();
    let want: Vec<String> = a[20..].iter().chain(&b).cloned().collect();
    assert_eq!(sids, want, "exactly what it missed, in order");
    assert_quiet(&mut resumed).await;
    // Live events keep coming on the resumed stream.
    let c0 = issue(&mut c, "c-0").await.session_id;
    c.revoke(revoke_session_id(&c0)).await.unwrap();
    assert_eq!(take(&mut resumed, 1).await[0].session_id, c0);
}

async fn snapshot_sends_what_is_in_force_then_live(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    let s = session_ids(&mut c, ["s-1", "s-2", "bob"].map(String::from)).await;
    c.revoke(revoke_token(&pair.access_token)).await.unwrap();
    c.revoke(revoke_session_id(&s[0])).await.unwrap();
    c.revoke(revoke_subject("acme", "bob")).await.unwrap();
    // A late starter with an empty cursor and no snapshot sees only new events.
    let mut late = watch(&mut c, "", false).await;
    let mut snap = watch(&mut c, "", true).await;
    let events = take(&mut snap, 3).await;
    let kinds: Vec<i32> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            pb::RevocationKind::Token as i32,
            pb::RevocationKind::Session as i32,
            pb::RevocationKind::Subject as i32
        ]
    );
    assert_eq!(events[2].subject, "bob");
    assert!(events[2].issued_before.is_some());
    c.revoke(revoke_session_id(&s[1])).await.unwrap();
    assert_eq!(take(&mut snap, 1).await[0].session_id, s[1]);
    assert_eq!(take(&mut late, 1).await[0].session_id, s[1]);
    // Garbage cursors are refused.
    let bad = c
        .watch_revocations(pb::WatchRevocationsRequest {
            after_cursor: "nonsense".into(),
            include_snapshot: false,
            mark_caught_up: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad), "CURSOR_INVALID");
}

async fn slow_watcher_is_cut_off(backend: Backend) {
    let env = Env::new(backend).await;
    // Budgets off: 2,000 sign-ins below.
    let server = env
        .server(&[
            "--watch-send-timeout=300ms",
            "--issue-rate=off",
            "--caller-rate=Issue=off",
        ])
        .await;
    let mut c = server.client().await;
    // A client that never reads: its connection's receive window stays small.
    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();
    let mut idle = watch(&mut Client::new(channel), "", false).await;
    // Far more than the per-watcher buffer and the HTTP/2 window hold: each
    // "log out everywhere" of a subject with a session is a new event, one
    // subject each (a subject logged out holds nothing until it signs in
    // again, and each stays in force for the snapshot below).
    const EVENTS: usize = 2_000;
    let mut tasks = Vec::new();
    for task in 0..4 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EVENTS / 4 {
                let subject = format!("slow-{task}-{i}");
                issue(&mut c, &subject).await;
                c.revoke(revoke_subject("acme", &subject)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(800)).await; // let the send timeout fire
    let mut received = 0;
    let end = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), idle.message()).await;
        if next.is_err() {
            panic!("stalled after {received}");
        }
        match next.unwrap() {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("stream ended without a status after {received}"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), tonic::Code::ResourceExhausted, "{end:?}");
    assert!(
        received < EVENTS,
        "a cut-off watcher did not get everything buffered ({received})"
    );
    // It can resume: a new watcher from the start gets all of them.
    let mut again = watch(&mut c, "", true).await;
    take(&mut again, EVENTS).await;
}

on_both_stores!(
    watcher_resumes_from_its_last_cursor,
    snapshot_sends_what_is_in_force_then_live,
    slow_watcher_is_cut_off
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_subscription_resynchronises_and_fails_closed() {
    let env = Env::new(Backend::Redis).await;
    let a = env.server(&[]).await;
    let b = env.server(&[]).await;
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    let redis = env.redis.as_ref().unwrap();

    let mut pairs = Vec::new();
    for i in 0..20 {
        pairs.push(issue(&mut cb, &format!("user-{i}")).await);
    }
    for round in 0..3 {
        // Kill every pub/sub connection (A's feed among them) mid-stream.
        let killed = redis.command("CLIENT KILL TYPE pubsub").await;
        assert!(killed.starts_with(':'), "{killed}");
        for p in pairs.iter().skip(round * 5).take(5) {
            cb.revoke(revoke_token(&p.access_token)).await.unwrap();
            // Right after B answered, A must not accept it for longer than
            // the feed needs; never after it reports in sync.
            wait_revoked(&mut ca, &p.access_token).await;
        }
    }
    // Tokens not revoked still verify on A.
    for p in pairs.iter().skip(15) {
        ca.verify(verify_request(&p.access_token))
            .await
            .expect("unrevoked token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_are_forgotten_when_what_they_kill_expires() {
    let env = Env::new(Backend::Redis).await;
    let process = Process::start(&env.flags(&["--access-ttl=4s", "--leeway=0s"])).await;
    let server = process.server();
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    c.revoke(revoke_token(&pair.access_token)).await.unwrap();
    let redis = env.redis.as_ref().unwrap();
    let keys = redis.command("KEYS tessera:*:rt:*").await;
    assert!(keys.contains(":rt:"), "marker written: {keys}");
    let gauge = |text: &str| metric_with(text, "tessera_revocation_cache_entries", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen_entry = false;
    loop {
        let (_, text) = server.admin_get("/metrics").await;
        seen_entry |= gauge(&text) == Some(1.0);
        let gone_from_redis = !redis.command("KEYS tessera:*:rt:*").await.contains(":rt:");
        if seen_entry && gauge(&text) == Some(0.0) && gone_from_redis {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "entry never expired (seen: {seen_entry}):\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
