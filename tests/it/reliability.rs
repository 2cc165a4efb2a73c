//! Fault injection with real processes on loopback: Redis crashes with and
//! without AOF, Redis killed under load, a replica killed mid-refresh, and
//! network stalls to Redis. Each test prints its figures (`--nocapture`);
//! docs/reliability.md records the last ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use tonic_health::pb::health_check_response::ServingStatus;

async fn durability_with(fsync: &str) {
    let redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", fsync]).await;
    let key = TestKey::new();
    let flags = vec![
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", key.path.display()),
        format!("--redis-url={}", redis.url()),
        "--store-timeout=500ms".to_owned(),
    ];
    let mut redis = redis;
    let server = Server::start(&flags).await;
    let mut c = server.client().await;
    let mut live = Vec::new();
    let mut revoked = Vec::new();
    for i in 0..40 {
        let pair = issue(&mut c, &format!("user-{i}")).await;
        if i % 2 == 0 {
            c.revoke(revoke_session_id(&pair.session_id)).await.unwrap();
            revoked.push(pair);
        } else {
            live.push(pair);
        }
    }
    // A subject revocation, too.
    let carol = issue(&mut c, "carol").await;
    c.revoke(revoke_subject("acme", "carol")).await.unwrap();
    // Crash (SIGKILL) and restart Redis on the same AOF.
    redis.kill();
    redis.restart().await;
    server.wait_health(ServingStatus::Serving).await;
    let mut lost = 0;
    for p in &live {
        if c.refresh(refresh_req(&p.refresh_token)).await.is_err() {
            lost += 1;
        }
    }
    for p in revoked.iter().chain([&carol]) {
        expect_reason(c.verify(strong(&p.access_token)).await, "TOKEN_REVOKED");
        wait_revoked(&mut c, &p.access_token).await;
        assert!(c.refresh(refresh_req(&p.refresh_token)).await.is_err());
    }
    println!("appendfsync {fsync}: {} sessions, {} revocations acknowledged before a Redis SIGKILL; lost after restart: {lost} sessions, 0 revocations", live.len(), revoked.len() + 1);
    assert_eq!(lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_everysec_under_light_load_keeps_what_was_acknowledged() {
    durability_with("everysec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_always_keeps_everything_acknowledged_across_a_redis_crash() {
    durability_with("always").await;
}

#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    by_reason: BTreeMap<String, u64>,
    slowest: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_mixed_load() {
    let mut env = Env::new(Backend::Redis).await;
    let server = env
        .server(&["--issue-rate=off", "--refresh-rate=off"])
        .await;
    let mut c = server.client().await;
    let valid = issue(&mut c, "alice").await;
    let mut old = tessera::tokens::verify(
        &env.key.keyset(),
        &valid.access_token,
        tessera::clock::now_ms() / 1000,
        &tessera::tokens::VerifyPolicy {
            issuer: "tessera-test".into(),
            leeway: 30,
        },
    )
    .unwrap();
    old.exp = tessera::clock::now_ms() / 1000 - 3600;
    old.iat = old.exp - 900;
    old.nbf = old.iat;
    let expired = tessera::tokens::mint(&env.key.keyset(), &old).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicBool::new(false));
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let mut load = Vec::new();
    for w in 0..6 {
        let mut c = c.clone();
        let (stop, during, tally) = (stop.clone(), during.clone(), tally.clone());
        let (valid, expired) = (valid.access_token.clone(), expired.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let t0 = Instant::now();
                let result = match (w + i) % 4 {
                    0 => c
                        .issue(issue_request(&format!("load-{w}")))
                        .await
                        .map(|_| ()),
                    1 => c.verify(verify_request(&expired)).await.map(|_| ()),
                    _ => c.verify(verify_request(&valid)).await.map(|_| ()),
                };
                let took = t0.elapsed();
                if during.load(Ordering::SeqCst) {
                    let mut t = tally.lock().unwrap();
                    t.slowest = t.slowest.max(took);
                    match result {
                        Ok(()) => t.ok += 1,
                        Err(s) => *t.by_reason.entry(reason(&s)).or_default() += 1,
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    during.store(true, Ordering::SeqCst);
    env.redis.as_mut().unwrap().kill();
    server.wait_health(ServingStatus::NotServing).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    during.store(false, Ordering::SeqCst);
    let outage = std::mem::take(&mut *tally.lock().unwrap());
    env.redis.as_mut().unwrap().restart().await;
    let t0 = Instant::now();
    server.wait_health(ServingStatus::Serving).await;
    // Full service: a new session issues, refreshes and verifies.
    let fresh = loop {
        match c.issue(issue_request("after")).await {
            Ok(r) => break r.into_inner().tokens.unwrap(),
            Err(e) => assert!(t0.elapsed() < Duration::from_secs(5), "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    refreshed(&mut c, &fresh.refresh_token).await;
    let recovery = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    println!("Redis killed under mixed load: during the outage {outage:?}; full service {recovery:?} after restart");
    assert!(
        outage.slowest < Duration::from_secs(2),
        "a call waited {:?}",
        outage.slowest
    );
    // Judgeable without the store: expired tokens are still refused as such.
    assert!(outage.by_reason.get("TOKEN_EXPIRED").copied().unwrap_or(0) > 0);
    // Everything that needs revocation state or a write failed closed.
    assert!(
        outage
            .by_reason
            .get("STORE_UNAVAILABLE")
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert_eq!(
        outage
            .by_reason
            .keys()
            .filter(|r| *r != "TOKEN_EXPIRED" && *r != "STORE_UNAVAILABLE")
            .count(),
        0,
        "{outage:?}"
    );
    assert!(
        recovery < Duration::from_secs(2),
        "recovery took {recovery:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_refresh_loses_nothing() {
    let redis = RedisServer::start().await;
    let key = TestKey::new();
    let flags = vec![
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", key.path.display()),
        format!("--redis-url={}", redis.url()),
        "--refresh-rate=off".to_owned(),
        "--issue-rate=off".to_owned(),
    ];
    let mut a = Process::start(&flags).await;
    let b = Process::start(&flags).await;
    let ca = a.server().client().await;
    let mut cb = b.server().client().await;
    // 16 clients each keep one session alive by refreshing on A.
    let mut sessions = Vec::new();
    for i in 0..16 {
        sessions.push(issue(&mut cb, &format!("user-{i}")).await.refresh_token);
    }
    let killed = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for token in sessions {
        let (mut ca, mut cb, killed) = (ca.clone(), cb.clone(), killed.clone());
        clients.push(tokio::spawn(async move {
            let mut token = token;
            let mut retried = 0;
            for _ in 0..200 {
                let next = if killed.load(Ordering::SeqCst) {
                    cb.refresh(refresh_req(&token)).await
                } else {
                    match ca.refresh(refresh_req(&token)).await {
                        Ok(r) => Ok(r),
                        // A died under us: the same token, once, on B. The
                        // grace window makes this safe whether or not A rotated.
                        Err(e)
                            if e.code() == tonic::Code::Unavailable
                                || e.code() == tonic::Code::Unknown
                                || e.code() == tonic::Code::Cancelled =>
                        {
                            retried += 1;
                            cb.refresh(refresh_req(&token)).await
                        }
                        Err(e) => Err(e),
                    }
                };
                token = next
                    .map_err(|e| format!("{e:?}"))?
                    .into_inner()
                    .tokens
                    .unwrap()
                    .refresh_token;
            }
            Ok::<_, String>((token, retried))
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.signal("KILL");
    killed.store(true, Ordering::SeqCst);
    let mut retries = 0;
    for t in clients {
        let (last, retried) = t.await.unwrap().expect("every refresh chain completes");
        retries += retried;
        refreshed(&mut cb, &last).await; // and the chain is still alive
    }
    let _ = a.wait_exit(Duration::from_secs(5)).await;
    println!("replica SIGKILL mid-refresh: 16 chains × 200 refreshes completed, {retries} calls retried on the other replica, 0 lost");
}

/// A TCP proxy on loopback that can stall all traffic (connections stay
/// open, no byte moves) — what a network partition looks like to a client.
struct StallProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl StallProxy {
    async fn start(target: u16) -> StallProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pump(ri, wo, flag.clone()));
                tokio::spawn(pump(ro, wi, flag.clone()));
            }
        });
        StallProxy { port, stalled }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_stall_to_redis_times_out_and_recovers() {
    let redis = RedisServer::start().await;
    let proxy = StallProxy::start(redis.port).await;
    let key = TestKey::new();
    let server = Server::start(&[
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", key.path.display()),
        format!("--redis-url=redis://127.0.0.1:{}", proxy.port),
        "--store-timeout=300ms".to_owned(),
    ])
    .await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "alice").await;
    let clients_before = redis.command("CLIENT LIST").await.lines().count();

    proxy.stalled.store(true, Ordering::SeqCst);
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let t0 = Instant::now();
        let r = c.issue(issue_request(&format!("stalled-{i}"))).await;
        slowest = slowest.max(t0.elapsed());
        assert_eq!(reason(&r.unwrap_err()), "STORE_UNAVAILABLE");
        let t0 = Instant::now();
        let r = c.verify(strong(&pair.access_token)).await;
        slowest = slowest.max(t0.elapsed());
        assert_eq!(reason(&r.unwrap_err()), "STORE_UNAVAILABLE");
    }
    server.wait_health(ServingStatus::NotServing).await;
    proxy.stalled.store(false, Ordering::SeqCst);
    let t0 = Instant::now();
    server.wait_health(ServingStatus::Serving).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.issue(issue_request("after-stall")).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "never recovered: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.verify(strong(&pair.access_token))
        .await
        .expect("verify after the stall");
    let recovery = t0.elapsed();
    // No pile-up of connections (each would be a leaked task).
    let clients_after = redis.command("CLIENT LIST").await.lines().count();
    println!("network stall: slowest call {slowest:?} (timeout 300 ms); recovered {recovery:?} after; Redis clients {clients_before} → {clients_after}");
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    assert!(
        clients_after <= clients_before + 2,
        "{clients_before} → {clients_after}"
    );
}
