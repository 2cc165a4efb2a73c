//! Tessera on a real Redis Cluster (3 masters, 3 replicas, started by the
//! harness): two replicas act as one authority, the revocation feed
//! crosses the cluster, the partitions spread over the masters, and a
//! master's failover loses no acknowledged revocation. The store
//! conformance suite also runs on a cluster
//! (`store_conformance::on_a_redis_cluster`).

use std::time::Duration;

use crate::support::*;
use tessera::pb;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_a_redis_cluster_are_one_authority() {
    let cluster = RedisCluster::start(3).await;
    let key = TestKey::new();
    let flags = redis_flags(&cluster.url(), &key, &["--store-timeout=2s"]);
    let a = Process::start(&flags).await;
    let b = Process::start(&flags).await;
    let mut ca = a.server().client().await;
    let mut cb = b.server().client().await;

    // A watcher on A, from now.
    let mut watch = ca
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await
        .unwrap()
        .into_inner();

    let pair = issue(&mut ca, "alice").await;
    cb.verify(verify_request(&pair.access_token))
        .await
        .expect("B verifies A's token");
    let rotated = refreshed(&mut cb, &pair.refresh_token).await;
    // Within the grace window, on the other replica: the same successor.
    let again = refreshed(&mut ca, &pair.refresh_token).await;
    assert_eq!(again.refresh_token, rotated.refresh_token);
    let cursor = cb
        .revoke(revoke_session_id(&pair.session_id))
        .await
        .unwrap()
        .into_inner()
        .cursor;
    assert!(!cursor.is_empty());
    // A's cache learns it through the cluster's pub/sub and log.
    wait_revoked(&mut ca, &rotated.access_token).await;
    expect_reason(
        ca.verify(strong(&rotated.access_token)).await,
        "TOKEN_REVOKED",
    );
    let event = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the event reaches A's watcher")
        .unwrap()
        .unwrap();
    assert_eq!(event.cursor, cursor);
    assert_eq!(event.session_id, pair.session_id);
    assert_eq!(a.server().health().await, Some(ServingStatus::Serving));
    assert_eq!(b.server().health().await, Some(ServingStatus::Serving));
}

/// The master that serves the partition of session `sid`, as an index into
/// `cluster.nodes`.
pub async fn master_of_session(cluster: &RedisCluster, sid: &str) -> usize {
    let slot: u16 = cluster.nodes[0]
        .command(&format!("CLUSTER KEYSLOT {}x", key_prefix_of(sid)))
        .await
        .trim_start_matches(':')
        .trim()
        .parse()
        .expect("a slot");
    let nodes = cluster.nodes[0].command("CLUSTER NODES").await;
    for line in nodes.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
            continue;
        }
        let owns = f[8..].iter().any(|range| {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
        });
        if owns {
            let port: u16 = f[1]
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse().ok())
                .expect("a port");
            return cluster
                .nodes
                .iter()
                .position(|n| n.port == port)
                .expect("a node of ours");
        }
    }
    panic!("no master owns slot {slot}:\n{nodes}");
}

/// The failover tests' replicas: revocations wait for a replica, no grace
/// window (a replayed token is a reuse at once), no per-subject budgets.
const FAILOVER_FLAGS: &[&str] = &[
    "--store-timeout=1s",
    "--redis-wait-replicas=1",
    "--refresh-grace=0s",
    "--issue-rate=off",
    "--refresh-rate=off",
];

/// `--redis-wait-replicas 1`: Revoke answers once a replica has the
/// revocation, so killing the master right after loses none of them; Tessera
/// answers UNAVAILABLE while the slot is down and serves again once the
/// replica is promoted, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_revocations_survive_a_master_failover() {
    let mut cluster = RedisCluster::start(3).await;
    let key = TestKey::new();
    let flags = redis_flags(&cluster.url(), &key, FAILOVER_FLAGS);
    let a = Process::start(&flags).await;
    let mut c = a.server().client().await;
    let mut revoked = Vec::new();
    for i in 0..100 {
        let pair = issue(&mut c, &format!("user-{i}")).await;
        let cursor = c
            .revoke(revoke_session_id(&pair.session_id))
            .await
            .unwrap_or_else(|s| panic!("not acknowledged: {s:?}\n{}", a.log_text()))
            .into_inner()
            .cursor;
        assert!(!cursor.is_empty());
        revoked.push(pair);
    }
    // A detected reuse kills its session through the same wait.
    let stolen = issue(&mut c, "victim").await;
    refreshed(&mut c, &stolen.refresh_token).await;
    expect_reason(
        c.refresh(refresh_req(&stolen.refresh_token)).await,
        "REFRESH_TOKEN_REUSED",
    );

    // The master of the first revoked session's partition (user-0's).
    let master = master_of_session(&cluster, &revoked[0].session_id).await;
    cluster.nodes[master].kill();
    // While the slot has no master: UNAVAILABLE, never a wrong answer.
    match c.verify(strong(&revoked[0].access_token)).await {
        Err(s) => assert!(
            ["STORE_UNAVAILABLE", "TOKEN_REVOKED"].contains(&reason(&s).as_str()),
            "{s:?}"
        ),
        Ok(r) => panic!("a revoked token verified during the failover: {r:?}"),
    }
    // The replica is promoted (cluster-node-timeout 2 s); Tessera follows.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // user-0's partition is the one whose master died.
        match c.issue(issue_request("user-0")).await {
            Ok(_) => break,
            Err(s) => {
                assert_eq!(reason(&s), "STORE_UNAVAILABLE", "{s:?}");
                assert!(std::time::Instant::now() < deadline, "never served again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    for pair in &revoked {
        expect_reason(c.verify(strong(&pair.access_token)).await, "TOKEN_REVOKED");
    }
    expect_reason(
        c.verify(strong(&stolen.access_token)).await,
        "TOKEN_REVOKED",
    );
}

/// More replicas than the cluster has: Revoke says UNAVAILABLE, and the
/// revocation is still in force on the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shortfall_of_replicas_is_unavailable_not_silent() {
    let redis = RedisServer::start().await; // no replica at all
    let key = TestKey::new();
    let a = Process::start(&redis_flags(
        &redis.url(),
        &key,
        &["--store-timeout=400ms", "--redis-wait-replicas=1"],
    ))
    .await;
    let mut c = a.server().client().await;
    let pair = issue(&mut c, "alice").await;
    expect_reason(
        c.revoke(revoke_session_id(&pair.session_id)).await,
        "STORE_UNAVAILABLE",
    );
    expect_reason(c.verify(strong(&pair.access_token)).await, "TOKEN_REVOKED");
}

/// How many of the keys matching `pattern` a node holds (its own slots only).
async fn count_keys(node: &RedisServer, pattern: &str) -> u64 {
    node.command(&format!(
        "EVAL \"return #redis.call('KEYS', ARGV[1])\" 0 {pattern}"
    ))
    .await
    .trim()
    .trim_start_matches(':')
    .parse()
    .unwrap_or_else(|_| panic!("a count for {pattern}"))
}

/// The partitions spread sessions over the masters: after 3,000 subjects
/// each issue one session, every master holds 20–46 % of them, and the
/// revocation logs are spread too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_over_every_master() {
    const SUBJECTS: usize = 3000;
    let cluster = RedisCluster::start(3).await;
    let key = TestKey::new();
    let a = Process::start(&redis_flags(
        &cluster.url(),
        &key,
        &[
            "--store-timeout=2s",
            "--issue-rate=off",
            "--caller-rate=Issue=off",
        ],
    ))
    .await;
    let c = a.server().client().await;
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let subjects = (worker..SUBJECTS)
                .step_by(16)
                .map(|i| format!("spread-{i}"));
            let sids = session_ids(&mut c, subjects).await;
            // One revocation in 10, so the logs have something to spread.
            for sid in sids.iter().step_by(10) {
                c.revoke(revoke_session_id(sid)).await.expect("revoke");
            }
            sids.len()
        }));
    }
    let mut issued = 0;
    for t in tasks {
        issued += t.await.unwrap();
    }
    assert_eq!(issued, SUBJECTS);
    let mut counts = Vec::new();
    for node in &cluster.nodes[..cluster.masters] {
        counts.push(count_keys(node, "tessera:*:s:*").await);
    }
    assert_eq!(counts.iter().sum::<u64>(), SUBJECTS as u64, "{counts:?}");
    for n in &counts {
        let share = *n as f64 / SUBJECTS as f64;
        assert!((0.20..=0.46).contains(&share), "per master: {counts:?}");
    }
    for node in &cluster.nodes[..cluster.masters] {
        assert!(
            count_keys(node, "tessera:*:log").await >= 10,
            "every master holds revocation logs"
        );
    }
}

/// A replica started with another `--redis-partitions` than the one the
/// deployment's Redis records refuses to start, and says why; the layout
/// stays the first replica's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_partition_count_refuses_to_start() {
    let redis = RedisServer::start().await;
    let key = TestKey::new();
    let first = Process::start(&partition_flags(&redis, &key, "64", &[])).await;
    let mut c = first.server().client().await;
    let pair = issue(&mut c, "alice").await;

    refused_with_32_partitions(&redis, &key, &[]).await;
    // The first replica goes on serving.
    refreshed(&mut c, &pair.refresh_token).await;
    // Out of range: refused by the flag's own check.
    let out = std::process::Command::new(tessera_binary())
        .args(["serve", "--redis-partitions=4097"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--redis-partitions"));
}

/// The same refusal when the layout check's first tries time out (a busy
/// Redis; here one paused for writes, which holds the check's script past
/// the store timeout): the replica tries again and still refuses to start,
/// rather than serving NOT_SERVING with every store call failing. (Found in
/// CI, where the check could miss its 1 s deadline under load.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_check_that_times_out_at_start_is_tried_again() {
    let redis = RedisServer::start().await;
    let key = TestKey::new();
    let first = Process::start(&partition_flags(&redis, &key, "64", &[])).await;
    issue(&mut first.server().client().await, "alice").await;

    let paused = redis.command("CLIENT PAUSE 2500 WRITE").await;
    assert!(paused.starts_with("+OK"), "{paused}");
    let started = std::time::Instant::now();
    refused_with_32_partitions(&redis, &key, &["--store-timeout=300ms"]).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the refusal came only once the pause ended"
    );
}

fn partition_flags(
    redis: &RedisServer,
    key: &TestKey,
    partitions: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut flags = vec![format!("--redis-partitions={partitions}")];
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    redis_flags(&redis.url(), key, &flags)
}

/// A replica started with 32 partitions on `redis` (whose deployment has 64)
/// exits non-zero, says why, and leaves the layout as it was.
async fn refused_with_32_partitions(redis: &RedisServer, key: &TestKey, extra: &[&str]) {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(tessera_binary())
            .arg("serve")
            .args(["--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0"])
            .args(partition_flags(redis, key, "32", extra))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the second replica exits instead of serving")
    .expect("run tessera");
    assert!(!out.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("64 partitions") && stderr.contains("--redis-partitions 32"),
        "says why: {stderr}"
    );
    let meta = redis.command("HGET tessera:meta partitions").await;
    assert!(meta.contains("64"), "{meta}");
}

/// What the mixed load saw.
#[derive(Default)]
struct Seen {
    /// Refresh tokens that rotated, with when.
    rotated: Vec<(String, std::time::Instant)>,
    /// Access tokens of sessions whose revocation was acknowledged.
    revoked: Vec<String>,
    /// Error reasons, by count.
    errors: std::collections::BTreeMap<String, u64>,
}

/// A master SIGKILLed while Issue, Refresh and Revoke run on two replicas
/// (`--redis-wait-replicas 1`): the dead master's partitions answer
/// UNAVAILABLE, the replicas serve them again once the replica is promoted
/// (no restart), no acknowledged revocation is lost, and no refresh token
/// that had rotated rotates again. (Rotations are not waited for: one in the
/// last moments before the master died may be lost with it, and its user
/// signs in again; the replay check covers rotations older than 200 ms.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_mixed_load_on_two_replicas() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let mut cluster = RedisCluster::start(3).await;
    let key = TestKey::new();
    let flags = redis_flags(&cluster.url(), &key, FAILOVER_FLAGS);
    let a = Process::start(&flags).await;
    let b = Process::start(&flags).await;
    let clients = [a.server().client().await, b.server().client().await];
    let probe = issue(&mut clients[0].clone(), "probe").await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..6usize {
        let clients = clients.clone();
        let (stop, seen) = (stop.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            let mut live: Vec<pb::TokenPair> = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let mut c = clients[(w + i) % 2].clone();
                let error = match (i % 3, live.pop()) {
                    (1, Some(pair)) => match c.refresh(refresh_req(&pair.refresh_token)).await {
                        Ok(r) => {
                            let next = r.into_inner().tokens.unwrap();
                            let mut s = seen.lock().unwrap();
                            s.rotated.push((pair.refresh_token, Instant::now()));
                            live.push(next);
                            None
                        }
                        Err(s) => {
                            if reason(&s) == "STORE_UNAVAILABLE" {
                                live.push(pair); // try again later
                            }
                            Some(reason(&s))
                        }
                    },
                    (2, Some(pair)) => match c.revoke(revoke_session_id(&pair.session_id)).await {
                        Ok(_) => {
                            seen.lock().unwrap().revoked.push(pair.access_token);
                            None
                        }
                        Err(s) => {
                            live.push(pair);
                            Some(reason(&s))
                        }
                    },
                    (_, pair) => {
                        live.extend(pair);
                        match c.issue(issue_request(&format!("mixed-{w}-{i}"))).await {
                            Ok(r) => {
                                live.push(r.into_inner().tokens.unwrap());
                                None
                            }
                            Err(s) => Some(reason(&s)),
                        }
                    }
                };
                if let Some(reason) = error {
                    *seen.lock().unwrap().errors.entry(reason).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let master = master_of_session(&cluster, &probe.session_id).await;
    let killed_at = Instant::now();
    cluster.nodes[master].kill();
    // The probe's partition has no master: UNAVAILABLE on both replicas
    // until the promotion, then served again without a restart.
    let mut unavailable = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    for c in &clients {
        loop {
            match c.clone().issue(issue_request("probe")).await {
                Ok(_) => break,
                Err(s) => {
                    assert_eq!(reason(&s), "STORE_UNAVAILABLE", "{s:?}");
                    unavailable += 1;
                    assert!(Instant::now() < deadline, "never served again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    assert!(
        unavailable > 0,
        "the dead master's partition was never unavailable"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    for reason in seen.errors.keys() {
        assert!(
            [
                "STORE_UNAVAILABLE",
                "REFRESH_TOKEN_REUSED",
                "REFRESH_TOKEN_INVALID"
            ]
            .contains(&reason.as_str()),
            "unexpected errors: {:?}",
            seen.errors
        );
    }
    assert!(
        seen.rotated.len() > 20 && seen.revoked.len() > 20,
        "the load ran"
    );
    // No acknowledged revocation was lost, on either replica.
    for token in &seen.revoked {
        for c in &clients {
            expect_reason(c.clone().verify(strong(token)).await, "TOKEN_REVOKED");
        }
    }
    // No token that rotated (and had time to replicate) rotates again.
    let settled = killed_at - Duration::from_millis(200);
    for (token, at) in &seen.rotated {
        if *at > settled && *at < killed_at {
            continue;
        }
        for c in &clients {
            let again = c.clone().refresh(refresh_req(token)).await;
            assert!(again.is_err(), "a refresh token rotated twice");
        }
    }
}
