//! Differential test of the two stores: the same random sequences of
//! operations — issue, rotate (current, just-rotated and older tokens,
//! guesses, wrong devices), renew, revoke by token, session and subject,
//! revocation-state reads — with the clock stepping forward, run against the
//! memory store and Redis; every answer must be the same. The rules live in
//! the Lua scripts and in `memory.rs` twice; this is what keeps them one.
//!
//! The virtual clock only moves forward and stays within the horizons, so
//! nothing Redis expires by its own (real) clock can differ from what the
//! memory store expires by the virtual one. Rate limits are off: Redis
//! counts them on its own clock.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Map;
use tessera::store::memory::MemoryStore;
use tessera::store::redis::RedisStore;
use tessera::store::*;

use crate::support::RedisServer;

const FEED: FeedPolicy = FeedPolicy {
    retention_ms: 600_000,
    access_horizon_ms: 120_000,
    subject_horizon_ms: 600_000,
};
const SEEDS: u64 = 60;
const STEPS: usize = 80;
const IDLE_MS: i64 = 4_000;
const ABSOLUTE_MS: i64 = 15_000;
const GRACE_MS: i64 = 1_000;

/// A session as the test knows it: every refresh hash it was given, newest
/// last, and the tokens (`jti`) minted for it.
struct Known {
    sid: String,
    subject: String,
    fingerprint: Option<String>,
    dpop: Option<String>,
    cert: Option<String>,
    client_id: String,
    hashes: Vec<String>,
    jtis: Vec<String>,
}

/// One answer, with what legitimately differs (cursors' formats) left out.
fn rotate_answer(o: RotateOutcome) -> String {
    match o {
        RotateOutcome::Rotated(r) => format!(
            "rotated {} gen {} at {} exp {}",
            r.data.sid, r.generation, r.rotated_at_ms, r.refresh_exp_ms
        ),
        RotateOutcome::Grace { rotation, sealed } => format!(
            "grace gen {} at {} sealed {sealed}",
            rotation.generation, rotation.rotated_at_ms
        ),
        RotateOutcome::Reused { .. } => "reused".into(),
        RotateOutcome::Invalid => "invalid".into(),
        RotateOutcome::FingerprintMismatch => "fingerprint".into(),
        RotateOutcome::BindingMismatch => "binding".into(),
        RotateOutcome::ProofReplayed => "replayed".into(),
        RotateOutcome::RateLimited { .. } => "limited".into(),
    }
}

async fn run_seed(seed: u64, memory: &MemoryStore, redis: &RedisStore) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = tessera::clock::now_ms();
    let mut known: Vec<Known> = Vec::new();
    let subjects = ["ada", "bob", "cy"];
    for step in 0..STEPS {
        now += rng.gen_range(0..600);
        let at = |what: &str| format!("seed {seed} step {step}: {what}");
        let op = if known.is_empty() {
            0
        } else {
            rng.gen_range(0..10)
        };
        match op {
            0 | 1 => {
                let subject = subjects[rng.gen_range(0..subjects.len())].to_owned();
                // In its subject's partition, as Issue makes them.
                let parts = partition::Partitions::new(partition::DEFAULT_PARTITIONS).unwrap();
                let sid = parts.sid_in(
                    parts.of_subject(&subject_key("acme", &subject)),
                    &format!("d{seed}-{step}"),
                );
                let fingerprint = rng.gen_bool(0.3).then(|| "fp".to_owned());
                let dpop = rng.gen_bool(0.2).then(|| format!("jkt-{sid}"));
                let cert = (step % 5 == 0).then(|| format!("x5t-{step}"));
                // Sometimes issued to a client (with a quote: JSON-escaped).
                let client_id = match step % 3 {
                    0 => String::new(),
                    1 => "web \"app\"".to_owned(),
                    _ => "mobile".to_owned(),
                };
                let hash = format!("h-{sid}-0");
                let refresh_exp_ms = now + IDLE_MS;
                let new = NewSession {
                    data: SessionData {
                        sid: sid.clone(),
                        tenant: "acme".into(),
                        subject: subject.clone(),
                        audience: vec!["api".into()],
                        roles: vec![],
                        scopes: vec![],
                        custom: Map::new(),
                        fingerprint_hash: fingerprint.clone(),
                        access_ttl: 60,
                        idle_ms: IDLE_MS,
                        created_ms: now,
                        absolute_exp_ms: now + ABSOLUTE_MS,
                        device_name: format!("device {step}"),
                        client_id: client_id.clone(),
                        cert_thumbprint: cert.clone(),
                        dpop_jkt: dpop.clone(),
                    },
                    refresh_hash: hash.clone(),
                    refresh_exp_ms,
                    keep_until_ms: keep_until_ms(refresh_exp_ms, now, &FEED),
                    subject_key: subject_key("acme", &subject),
                    rate_limit: None,
                    caller_rate: None,
                    client: ClientInfo {
                        ip_address: format!("10.0.0.{}", step % 250),
                        user_agent: String::new(),
                    },
                    // Sometimes a cap of 2 live sessions, evicting or refusing.
                    cap: rng.gen_bool(0.3).then(|| SessionCap {
                        max: 2,
                        evict_oldest: rng.gen_bool(0.5),
                    }),
                    feed: FEED,
                };
                let a = memory.create_session(&new).await.unwrap();
                let b = redis.create_session(&new).await.unwrap();
                // Event ids differ between the stores; the evictions must not.
                let strip = |o: CreateOutcome| match o {
                    CreateOutcome::Created { evicted, .. } => CreateOutcome::Created {
                        evicted,
                        cursor: String::new(),
                    },
                    other => other,
                };
                let created = matches!(a, CreateOutcome::Created { .. });
                assert_eq!(strip(a), strip(b), "{}", at("create"));
                if !created {
                    continue;
                }
                known.push(Known {
                    sid,
                    subject,
                    fingerprint,
                    dpop,
                    cert,
                    client_id,
                    hashes: vec![hash],
                    jtis: vec![format!("j{seed}-{step}")],
                });
            }
            2..=4 => {
                let k = rng.gen_range(0..known.len());
                let s = &mut known[k];
                let n = s.hashes.len();
                let presented = match rng.gen_range(0..10) {
                    0..=5 => s.hashes[n - 1].clone(),
                    6 | 7 if n >= 2 => s.hashes[n - 2].clone(),
                    8 => s.hashes[rng.gen_range(0..n)].clone(),
                    _ => format!("guess-{step}"),
                };
                let new_hash = format!("h-{}-{step}", s.sid);
                let fingerprint = if rng.gen_bool(0.8) {
                    s.fingerprint.clone()
                } else {
                    Some("other".into())
                };
                let request = RotateRequest {
                    sid: s.sid.clone(),
                    presented_hash: presented,
                    new_hash: new_hash.clone(),
                    sealed_successor: format!("sealed-{new_hash}"),
                    now_ms: now,
                    grace_ms: GRACE_MS,
                    fingerprint_hash: fingerprint,
                    rate_limit: None,
                    feed: FEED,
                    keep_until_ms: now + FEED.access_horizon_ms,
                    client: ClientInfo {
                        ip_address: String::new(),
                        user_agent: format!("agent {step}"),
                    },
                    dpop_jkt: match &s.dpop {
                        Some(j) if rng.gen_bool(0.8) => Some(j.clone()),
                        Some(_) => None,
                        None => rng.gen_bool(0.1).then(|| "stray".to_owned()),
                    },
                    cert_thumbprint: match &s.cert {
                        Some(x) if rng.gen_bool(0.7) => Some(x.clone()),
                        Some(_) if rng.gen_bool(0.5) => Some("x5t-other".to_owned()),
                        Some(_) => None,
                        None => rng.gen_bool(0.1).then(|| "x5t-stray".to_owned()),
                    },
                    client_id: match rng.gen_range(0..4) {
                        0 => Some(s.client_id.clone()),
                        1 => Some("another client".to_owned()),
                        _ => None,
                    },
                    // Sometimes a proof, sometimes one this session saw before
                    // (the replay set is per partition in Redis: per session here).
                    dpop_replay: rng.gen_bool(0.5).then(|| ProofUse {
                        key: format!("proof-{}-{}", s.sid, rng.gen_range(0..4)),
                        expires_at_ms: now + 60_000,
                    }),
                };
                let a = rotate_answer(memory.rotate(&request).await.unwrap());
                let b = rotate_answer(redis.rotate(&request).await.unwrap());
                assert_eq!(a, b, "{}", at("rotate"));
                if a.starts_with("rotated") {
                    s.hashes.push(new_hash);
                    s.jtis.push(format!("j{seed}-{step}"));
                }
            }
            5 => {
                let s = &known[rng.gen_range(0..known.len())];
                let request = RenewRequest {
                    sid: s.sid.clone(),
                    jti: s.jtis[rng.gen_range(0..s.jtis.len())].clone(),
                    mint: rng.gen_bool(0.5),
                    now_ms: now,
                    // Longer than the run: Redis expires it by its own clock.
                    marker_ttl_ms: 600_000,
                    keep_until_ms: now + FEED.access_horizon_ms,
                };
                let a = memory.renew(&request).await.unwrap();
                let b = redis.renew(&request).await.unwrap();
                assert_eq!(a, b, "{}", at("renew"));
            }
            6 | 7 => {
                let s = &known[rng.gen_range(0..known.len())];
                let target = match rng.gen_range(0..5) {
                    4 => RevokeTarget::SubjectExcept {
                        tenant: "acme".into(),
                        subject: s.subject.clone(),
                        keep_sid: s.sid.clone(),
                    },
                    0 => RevokeTarget::Token {
                        jti: s.jtis[rng.gen_range(0..s.jtis.len())].clone(),
                        sid: s.sid.clone(),
                        tenant: "acme".into(),
                        subject: s.subject.clone(),
                        // Already dead, or alive past the run: a marker
                        // that Redis would expire by its own clock within
                        // the run cannot be compared.
                        exp_ms: if rng.gen_bool(0.2) {
                            now - rng.gen_range(0..1_000)
                        } else {
                            now + rng.gen_range(60_000..120_000)
                        },
                    },
                    1 => RevokeTarget::Session {
                        sid: s.sid.clone(),
                        refresh_hash: None,
                    },
                    2 => RevokeTarget::Session {
                        sid: s.sid.clone(),
                        refresh_hash: Some(s.hashes[rng.gen_range(0..s.hashes.len())].clone()),
                    },
                    _ => RevokeTarget::Subject {
                        tenant: "acme".into(),
                        subject: if rng.gen_bool(0.9) {
                            s.subject.clone()
                        } else {
                            "nobody".into()
                        },
                    },
                };
                let request = RevokeRequest {
                    target,
                    now_ms: now,
                    feed: FEED,
                    traceparent: String::new(),
                };
                let a = memory.revoke(&request).await.unwrap().is_some();
                let b = redis.revoke(&request).await.unwrap().is_some();
                assert_eq!(a, b, "{}: {:?}", at("revoke"), request.target);
            }
            _ => {
                let s = &known[rng.gen_range(0..known.len())];
                let jti = &s.jtis[rng.gen_range(0..s.jtis.len())];
                let skey = subject_key("acme", &s.subject);
                let a = memory
                    .revocation_state(jti, &s.sid, &skey, now)
                    .await
                    .unwrap();
                let b = redis
                    .revocation_state(jti, &s.sid, &skey, now)
                    .await
                    .unwrap();
                assert_eq!(a, b, "{}", at("revocation state"));
            }
        }
    }
    // Every subject's sessions list alike, page by page.
    for subject in subjects {
        let skey = subject_key("acme", subject);
        let mut after = String::new();
        loop {
            let a = memory.list_sessions(&skey, &after, 2, now).await.unwrap();
            let b = redis.list_sessions(&skey, &after, 2, now).await.unwrap();
            assert_eq!(a, b, "seed {seed}: sessions of {subject} after {after:?}");
            if a.next.is_empty() {
                break;
            }
            after = a.next;
        }
    }
    // The logs hold the same events, in the same order within each of
    // Redis's partitions (the memory store has one log).
    let a = memory
        .read_log(&Position::start(1), None, 10_000)
        .await
        .unwrap();
    let b = redis
        .read_log(&Position::start(redis.log_partitions()), None, 10_000)
        .await
        .unwrap();
    let by_partition = |events: Vec<RevocationEvent>, of: &dyn Fn(&RevocationEvent) -> u32| {
        let mut out: Vec<(u32, RevocationEvent)> = events
            .into_iter()
            .map(|mut e| {
                let p = of(&e);
                e.cursor.clear();
                e.partition = 0;
                (p, e)
            })
            .collect();
        out.sort_by_key(|(p, _)| *p); // stable: keeps the order within one
        out
    };
    let parts = redis.partitions().clone();
    let a = by_partition(a, &|e| match e.session_id.as_str() {
        "" => parts.of_subject(&subject_key(&e.tenant, &e.subject)),
        sid => parts.of_sid(sid).unwrap(),
    });
    let b = by_partition(b, &|e| e.partition);
    assert_eq!(a, b, "seed {seed}: the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_redis_answer_alike() {
    let server = RedisServer::start().await;
    for seed in 0..SEEDS {
        server.command("FLUSHALL").await;
        let redis = RedisStore::connect(
            &server.url(),
            std::time::Duration::from_secs(2),
            partition::DEFAULT_PARTITIONS,
        )
        .await
        .expect("connect");
        let memory = Arc::new(MemoryStore::new());
        run_seed(seed, &memory, &redis).await;
    }
}
