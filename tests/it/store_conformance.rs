//! One conformance suite, two stores: the in-memory store must keep the same
//! semantics as the Redis scripts (docs/conventions.md §2).

use std::sync::Arc;

use crate::support::{Backend, RedisServer};
use serde_json::Map;
use tessera::store::memory::MemoryStore;
use tessera::store::partition::{Partitions, DEFAULT_PARTITIONS};
use tessera::store::redis::RedisStore;
use tessera::store::*;

/// The partitioning the suite's Redis stores use.
fn partitions() -> Partitions {
    Partitions::new(DEFAULT_PARTITIONS).unwrap()
}

/// Session ids by their label in the tests: `session` gives each the prefix
/// of its subject's partition, as Issue does.
static SIDS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The session id of the session labelled `label` (the label itself for a
/// session never created: an id that names no partition).
pub(crate) fn sid(label: &str) -> String {
    SIDS.lock()
        .unwrap()
        .get(label)
        .cloned()
        .unwrap_or_else(|| label.to_owned())
}

/// The Redis key prefix of a labelled session's partition.
fn key_prefix(label: &str) -> String {
    let parts = partitions();
    parts.sid_prefix(&sid(label)).unwrap().to_owned()
}

pub(crate) const FEED: FeedPolicy = FeedPolicy {
    retention_ms: 60_000,
    access_horizon_ms: 30_000,
    subject_horizon_ms: 3_600_000,
};

pub(crate) fn now() -> i64 {
    tessera::clock::now_ms()
}

pub(crate) fn session(label: &str, subject: &str, now: i64) -> NewSession {
    let parts = partitions();
    let full = parts.sid_in(parts.of_subject(&subject_key("acme", subject)), label);
    let known = SIDS.lock().unwrap().insert(label.into(), full.clone());
    assert!(
        known.is_none_or(|k| k == full),
        "{label} labels two subjects"
    );
    let sid = label;
    NewSession {
        data: SessionData {
            sid: full,
            tenant: "acme".into(),
            subject: subject.into(),
            audience: vec!["api".into()],
            roles: vec![],
            scopes: vec!["read".into()],
            custom: Map::new(),
            fingerprint_hash: None,
            access_ttl: 900,
            idle_ms: 600_000,
            created_ms: now,
            absolute_exp_ms: now + 3_600_000,
            device_name: String::new(),
            client_id: String::new(),
            cert_thumbprint: None,
            dpop_jkt: None,
        },
        refresh_hash: format!("h0-{sid}"),
        refresh_exp_ms: now + 600_000,
        keep_until_ms: keep_until_ms(now + 600_000, now, &FEED),
        subject_key: subject_key("acme", subject),
        rate_limit: None,
        caller_rate: None,
        client: ClientInfo::default(),
        cap: None,
        feed: FEED,
    }
}

fn rotate(sid: &str, presented: &str, new: &str, now: i64, grace_ms: i64) -> RotateRequest {
    RotateRequest {
        sid: self::sid(sid),
        presented_hash: presented.into(),
        new_hash: new.into(),
        sealed_successor: format!("sealed-{new}"),
        now_ms: now,
        grace_ms,
        fingerprint_hash: None,
        rate_limit: None,
        feed: FEED,
        keep_until_ms: now + FEED.access_horizon_ms,
        client: ClientInfo::default(),
        dpop_jkt: None,
        cert_thumbprint: None,
        client_id: None,
        dpop_replay: None,
    }
}

/// A store and whatever keeps it alive.
pub(crate) enum Fixture {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>, RedisServer),
}

pub(crate) async fn fixture(backend: Backend) -> Fixture {
    match backend {
        Backend::Memory => Fixture::Memory(Arc::new(MemoryStore::new())),
        Backend::Redis => {
            let server = RedisServer::start().await;
            let store = RedisStore::connect(
                &server.url(),
                std::time::Duration::from_secs(2),
                DEFAULT_PARTITIONS,
            )
            .await
            .unwrap();
            Fixture::Redis(Arc::new(store), server)
        }
    }
}

/// The Redis store alone, for the tests of what only Redis does; keep the
/// server alive as long as the store.
pub(crate) async fn redis_fixture() -> (Arc<RedisStore>, RedisServer) {
    match fixture(Backend::Redis).await {
        Fixture::Redis(s, server) => (s, server),
        Fixture::Memory(_) => unreachable!("asked for Redis"),
    }
}

/// Create `count` sessions of `subject`, labelled `{prefix}{i}`, created at
/// `at(i)`.
async fn create_many(
    s: &RedisStore,
    prefix: &str,
    subject: &str,
    count: i64,
    at: impl Fn(i64) -> i64,
) {
    for i in 0..count {
        s.create_session(&session(&format!("{prefix}{i}"), subject, at(i)))
            .await
            .unwrap();
    }
}

macro_rules! with_store {
    ($backend:expr, |$s:ident| $body:expr) => {
        match fixture($backend).await {
            Fixture::Memory($s) => $body,
            Fixture::Redis($s, _server) => $body,
        }
    };
}

async fn rotation_semantics<S: Store>(s: Arc<S>) {
    let t = now();
    assert_eq!(
        s.create_session(&session("s1", "alice", t)).await.unwrap(),
        CreateOutcome::CREATED
    );
    let RotateOutcome::Rotated(r1) = s
        .rotate(&rotate("s1", "h0-s1", "h1", t, 5_000))
        .await
        .unwrap()
    else {
        panic!("first rotation must rotate");
    };
    assert_eq!(r1.generation, 1);
    assert_eq!(r1.data.subject, "alice");
    assert_eq!(r1.rotated_at_ms, t);
    // Within the grace window: the same successor, sealed as the winner stored it.
    match s
        .rotate(&rotate("s1", "h0-s1", "other", t + 10, 5_000))
        .await
        .unwrap()
    {
        RotateOutcome::Grace { rotation, sealed } => {
            assert_eq!(rotation, r1);
            assert_eq!(sealed, "sealed-h1");
        }
        other => panic!("expected grace, got {other:?}"),
    }
    // Unknown secret of a known session: invalid, and not revoked.
    assert_eq!(
        s.rotate(&rotate("s1", "nope", "x", t + 20, 5_000))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    let RotateOutcome::Rotated(r2) = s
        .rotate(&rotate("s1", "h1", "h2", t + 30, 5_000))
        .await
        .unwrap()
    else {
        panic!("the successor rotates");
    };
    assert_eq!(r2.generation, 2);
    // h0 is now two generations old: reuse, session revoked.
    let RotateOutcome::Reused { cursor } = s
        .rotate(&rotate("s1", "h0-s1", "x", t + 40, 5_000))
        .await
        .unwrap()
    else {
        panic!("expected reuse");
    };
    assert!(parse_event_ref(&cursor).is_some());
    assert_eq!(
        s.rotate(&rotate("s1", "h2", "h3", t + 50, 5_000))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    let state = s
        .revocation_state("any", &sid("s1"), &subject_key("acme", "alice"), now())
        .await
        .unwrap();
    assert!(state.session);
    assert_eq!(
        s.rotate(&rotate("missing", "h", "x", t, 5_000))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
}

/// The refresh hash of generation `g` of session `sid` in these tests.
fn generation_hash(sid: &str, g: u32) -> String {
    if g == 0 {
        format!("h0-{sid}")
    } else {
        format!("{sid}-h{g}")
    }
}

/// Session `sid` rotated 20 times: h0 → … → h20 (current), h19 previous,
/// h18 … h3 the 16 older generations remembered.
async fn rotated_20_times<S: Store>(s: &S, sid: &str, t: i64) {
    s.create_session(&session(sid, "hal", t)).await.unwrap();
    for g in 1..=20 {
        let r = rotate(
            sid,
            &generation_hash(sid, g - 1),
            &generation_hash(sid, g),
            t + g as i64,
            0,
        );
        assert!(
            matches!(s.rotate(&r).await.unwrap(), RotateOutcome::Rotated(_)),
            "{g}"
        );
    }
}

/// Reuse detection remembers the previous token and `REUSE_HISTORY` older
/// ones; anything older is refused as invalid and leaves the session alone.
async fn reuse_history_is_bounded<S: Store>(s: Arc<S>) {
    let t = now();
    assert_eq!(REUSE_HISTORY, 16);
    for (sid, generation, reused) in [("r18", 18, true), ("r3", 3, true), ("r2", 2, false)] {
        rotated_20_times(&*s, sid, t).await;
        let presented = generation_hash(sid, generation);
        let outcome = s
            .rotate(&rotate(sid, &presented, "x", t + 100, 0))
            .await
            .unwrap();
        if reused {
            assert!(
                matches!(outcome, RotateOutcome::Reused { .. }),
                "{sid}: {outcome:?}"
            );
        } else {
            assert_eq!(outcome, RotateOutcome::Invalid, "{sid}");
            let current = generation_hash(sid, 20);
            assert!(
                matches!(
                    s.rotate(&rotate(sid, &current, "h21", t + 101, 0))
                        .await
                        .unwrap(),
                    RotateOutcome::Rotated(_)
                ),
                "{sid}: an unknown token must not revoke the session"
            );
        }
    }
    // Revoke by refresh token accepts the same remembered hashes.
    rotated_20_times(&*s, "rv", t).await;
    let revoke = |g: u32| RevokeRequest {
        target: RevokeTarget::Session {
            sid: sid("rv"),
            refresh_hash: Some(generation_hash("rv", g)),
        },
        now_ms: t + 200,
        feed: FEED,
        traceparent: String::new(),
    };
    assert_eq!(s.revoke(&revoke(2)).await.unwrap(), None, "too old");
    assert!(s.revoke(&revoke(3)).await.unwrap().is_some());
}

async fn grace_expires<S: Store>(s: Arc<S>) {
    let t = now();
    s.create_session(&session("s2", "bob", t)).await.unwrap();
    assert!(matches!(
        s.rotate(&rotate("s2", "h0-s2", "h1", t, 1_000))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert!(matches!(
        s.rotate(&rotate("s2", "h0-s2", "x", t + 1_000, 1_000))
            .await
            .unwrap(),
        RotateOutcome::Grace { .. }
    ));
    assert!(matches!(
        s.rotate(&rotate("s2", "h0-s2", "x", t + 1_001, 1_000))
            .await
            .unwrap(),
        RotateOutcome::Reused { .. }
    ));
    // `--refresh-grace 0s` is no window: a replay in the very same
    // millisecond as the rotation is reuse (the examples' test once raced it).
    s.create_session(&session("s2b", "bob", t)).await.unwrap();
    assert!(matches!(
        s.rotate(&rotate("s2b", "h0-s2b", "h1", t, 0))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert!(matches!(
        s.rotate(&rotate("s2b", "h0-s2b", "x", t, 0)).await.unwrap(),
        RotateOutcome::Reused { .. }
    ));
}

async fn lifetimes_are_enforced<S: Store>(s: Arc<S>) {
    let t = now();
    let mut new = session("s3", "carol", t);
    new.data.absolute_exp_ms = t + 1_000;
    new.refresh_exp_ms = t + 1_000;
    s.create_session(&new).await.unwrap();
    // Rotation moves the idle expiry, but never past the absolute end.
    let RotateOutcome::Rotated(r) = s
        .rotate(&rotate("s3", "h0-s3", "h1", t + 500, 0))
        .await
        .unwrap()
    else {
        panic!("rotates before its end");
    };
    assert_eq!(r.refresh_exp_ms, t + 1_000);
    assert_eq!(
        s.rotate(&rotate("s3", "h1", "h2", t + 1_000, 0))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
}

async fn fingerprint_binding<S: Store>(s: Arc<S>) {
    let t = now();
    let mut new = session("s4", "dave", t);
    new.data.fingerprint_hash = Some("fp".into());
    s.create_session(&new).await.unwrap();
    let mut r = rotate("s4", "h0-s4", "h1", t, 0);
    assert_eq!(
        s.rotate(&r).await.unwrap(),
        RotateOutcome::FingerprintMismatch
    );
    r.fingerprint_hash = Some("other".into());
    assert_eq!(
        s.rotate(&r).await.unwrap(),
        RotateOutcome::FingerprintMismatch
    );
    // Only a holder of the real secret learns that the session is bound:
    // a guessed secret is invalid, with or without a fingerprint.
    let mut guess = rotate("s4", "guessed", "hx", t, 0);
    assert_eq!(s.rotate(&guess).await.unwrap(), RotateOutcome::Invalid);
    guess.fingerprint_hash = Some("other".into());
    assert_eq!(s.rotate(&guess).await.unwrap(), RotateOutcome::Invalid);
    r.fingerprint_hash = Some("fp".into());
    assert!(matches!(
        s.rotate(&r).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // A grace-window retry is bound too; a replay after the window is reuse
    // whatever device presents it.
    let mut retry = rotate("s4", "h0-s4", "h9", t + 1, 5_000);
    assert_eq!(
        s.rotate(&retry).await.unwrap(),
        RotateOutcome::FingerprintMismatch
    );
    retry.fingerprint_hash = Some("fp".into());
    assert!(matches!(
        s.rotate(&retry).await.unwrap(),
        RotateOutcome::Grace { .. }
    ));
    let replay = rotate("s4", "h0-s4", "h9", t + 10_000, 5_000);
    assert!(matches!(
        s.rotate(&replay).await.unwrap(),
        RotateOutcome::Reused { .. }
    ));
}

async fn revocation_and_log<S: Store>(s: Arc<S>) {
    let t = now();
    s.create_session(&session("s5", "erin", t)).await.unwrap();
    s.create_session(&session("s5f", "frank", t)).await.unwrap();
    let req = |target: RevokeTarget, now_ms: i64| RevokeRequest {
        target,
        now_ms,
        feed: FEED,
        traceparent: String::new(),
    };
    let token = |jti: &str| RevokeTarget::Token {
        jti: jti.into(),
        sid: sid("s5"),
        tenant: "acme".into(),
        subject: "erin".into(),
        exp_ms: t + 10_000,
    };
    let c1 = s.revoke(&req(token("j1"), t)).await.unwrap().unwrap();
    assert_eq!(
        s.revoke(&req(token("j1"), t + 1)).await.unwrap().unwrap(),
        c1,
        "idempotent"
    );
    // An already expired token needs no marker and no event.
    let expired = RevokeTarget::Token {
        jti: "j0".into(),
        sid: sid("s5"),
        tenant: "acme".into(),
        subject: "erin".into(),
        exp_ms: t - 1,
    };
    assert_eq!(s.revoke(&req(expired, t)).await.unwrap(), None);
    // A refresh hash that is not the session's revokes nothing.
    let wrong = RevokeTarget::Session {
        sid: sid("s5"),
        refresh_hash: Some("nope".into()),
    };
    assert_eq!(s.revoke(&req(wrong, t)).await.unwrap(), None);
    let right = RevokeTarget::Session {
        sid: sid("s5"),
        refresh_hash: Some("h0-s5".into()),
    };
    let c2 = s.revoke(&req(right, t + 2)).await.unwrap().unwrap();
    let c3 = s
        .revoke(&req(
            RevokeTarget::Subject {
                tenant: "acme".into(),
                subject: "frank".into(),
            },
            t + 3,
        ))
        .await
        .unwrap()
        .unwrap();

    // Read where they live: a token and a session by their subject (erin),
    // a subject's cut-off by its own.
    let state = s
        .revocation_state("j1", &sid("s5"), &subject_key("acme", "erin"), t + 3)
        .await
        .unwrap();
    assert!(state.token && state.session && state.subject_cutoff_ms.is_none());
    let state = s
        .revocation_state("j1f", &sid("s5f"), &subject_key("acme", "frank"), t + 3)
        .await
        .unwrap();
    assert!(!state.token && !state.session);
    assert!(state.subject_cutoff_ms.unwrap() >= t + 3);
    assert!(state.revokes((t + 2) / 1000));
    let clean = s
        .revocation_state("j2", "s6", &subject_key("acme", "erin"), t + 3)
        .await
        .unwrap();
    assert_eq!(clean, RevocationState::default());

    // The log: in order within a partition, resumable from any position,
    // nothing twice. (On Redis the subject frank has a partition of its own.)
    let start = Position::start(s.log_partitions());
    let mut all = s.read_log(&start, None, 100).await.unwrap();
    let refs = |events: &[RevocationEvent]| -> Vec<String> {
        events
            .iter()
            .map(|e| event_ref(e.partition, &e.cursor))
            .collect()
    };
    let position = |events: &[&str]| {
        let mut at = start.clone();
        for e in events {
            let (p, id) = parse_event_ref(e).unwrap();
            at.advance(p, id);
        }
        at
    };
    // Listed by partition, each once; put them in the order they were
    // written (ids of two partitions may share a millisecond: no order).
    let written = [c1.clone(), c2.clone(), c3.clone()];
    let mut listed = refs(&all);
    listed.sort();
    let mut want = written.to_vec();
    want.sort();
    assert_eq!(listed, want);
    let order = |e: &RevocationEvent| {
        let r = event_ref(e.partition, &e.cursor);
        written.iter().position(|w| *w == r)
    };
    all.sort_by_key(order);
    assert_eq!(all[0].kind, RevocationKind::Token);
    assert_eq!(all[0].token_id, "j1");
    assert_eq!(all[0].expires_at_ms, t + 10_000);
    assert_eq!(all[1].kind, RevocationKind::Session);
    assert_eq!(all[1].session_id, sid("s5"));
    assert_eq!(
        all[1].subject, "erin",
        "session events carry the session's subject"
    );
    assert_eq!(all[2].kind, RevocationKind::Subject);
    assert_eq!(
        (all[2].tenant.as_str(), all[2].subject.as_str()),
        ("acme", "frank")
    );
    assert!(all[2].issued_before_ms >= t + 3);
    let mut after_first = s.read_log(&position(&[&c1]), None, 100).await.unwrap();
    after_first.sort_by_key(order);
    assert_eq!(after_first, all[1..].to_vec());
    let everything = position(&[&c1, &c2, &c3]);
    assert_eq!(s.read_log(&everything, None, 100).await.unwrap(), vec![]);
    // One partition at a time.
    let (p3, _) = parse_event_ref(&c3).unwrap();
    assert_eq!(
        s.read_log(&position(&[&c1, &c2]), Some(p3), 100)
            .await
            .unwrap(),
        all[2..].to_vec()
    );
    let first = s.read_log(&start, None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(all.contains(&first[0]));
}

/// Revoking what never existed, or what nothing alive is left of, writes
/// nothing and publishes nothing (RFC 7009 success with no cursor).
async fn unknown_targets_are_no_ops<S: Store>(s: Arc<S>) {
    let t = now();
    let req = |target: RevokeTarget, now_ms: i64| RevokeRequest {
        target,
        now_ms,
        feed: FEED,
        traceparent: String::new(),
    };
    let session_target = |label: &str| RevokeTarget::Session {
        sid: sid(label),
        refresh_hash: None,
    };
    let subject_target = |subject: &str| RevokeTarget::Subject {
        tenant: "acme".into(),
        subject: subject.into(),
    };
    let start = Position::start(s.log_partitions());
    let before = s.read_log(&start, None, 1000).await.unwrap().len();
    assert_eq!(
        s.revoke(&req(session_target("never"), t)).await.unwrap(),
        None
    );
    assert_eq!(
        s.revoke(&req(subject_target("nobody"), t)).await.unwrap(),
        None
    );
    // A session is kept past its refresh expiry until its access token's
    // horizon; after that nothing of it is alive and revoking it is a no-op.
    let mut short = session("s-gone", "gone", t);
    short.refresh_exp_ms = t + 100;
    short.keep_until_ms = t + 5_000;
    s.create_session(&short).await.unwrap();
    let alive = s
        .revoke(&req(session_target("s-gone"), t + 150))
        .await
        .unwrap();
    assert!(alive.is_some(), "kept past its refresh expiry");
    let mut other = session("s-gone2", "gone2", t);
    other.refresh_exp_ms = t + 100;
    other.keep_until_ms = t + 5_000;
    s.create_session(&other).await.unwrap();
    assert_eq!(
        s.revoke(&req(subject_target("gone2"), t + 6_000))
            .await
            .unwrap(),
        None,
        "a subject whose sessions are all past keeping"
    );
    assert_eq!(
        s.read_log(&start, None, 1000).await.unwrap().len(),
        before + 1
    );
}

async fn subject_cutoff_kills_older_sessions_only<S: Store>(s: Arc<S>) {
    let t = now();
    s.create_session(&session("s7", "gina", t)).await.unwrap();
    s.revoke(&RevokeRequest {
        target: RevokeTarget::Subject {
            tenant: "acme".into(),
            subject: "gina".into(),
        },
        now_ms: t + 5,
        feed: FEED,
        traceparent: String::new(),
    })
    .await
    .unwrap();
    s.create_session(&session("s8", "gina", t + 10))
        .await
        .unwrap();
    assert_eq!(
        s.rotate(&rotate("s7", "h0-s7", "x", t + 20, 0))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert!(matches!(
        s.rotate(&rotate("s8", "h0-s8", "x", t + 20, 0))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
}

async fn renewal_single_flight<S: Store>(s: Arc<S>) {
    let t = now();
    s.create_session(&session("s9", "hank", t)).await.unwrap();
    let renew = |mint: bool, now_ms: i64| RenewRequest {
        sid: sid("s9"),
        jti: "j9".into(),
        mint,
        now_ms,
        marker_ttl_ms: 60_000,
        keep_until_ms: now_ms + FEED.access_horizon_ms,
    };
    assert_eq!(
        s.renew(&renew(false, t)).await.unwrap(),
        RenewOutcome::Extended
    );
    let first = s.renew(&renew(true, t + 10)).await.unwrap();
    assert_eq!(
        first,
        RenewOutcome::Renewed {
            iat_ms: t + 10,
            absolute_exp_ms: t + 3_600_000
        }
    );
    assert_eq!(
        s.renew(&renew(true, t + 500)).await.unwrap(),
        first,
        "same successor for later callers"
    );
    s.revoke(&RevokeRequest {
        target: RevokeTarget::Session {
            sid: sid("s9"),
            refresh_hash: None,
        },
        now_ms: t + 600,
        feed: FEED,
        traceparent: String::new(),
    })
    .await
    .unwrap();
    assert_eq!(
        s.renew(&renew(true, t + 700)).await.unwrap(),
        RenewOutcome::Invalid,
        "revoked sessions never renew"
    );
    assert_eq!(
        s.renew(&RenewRequest {
            sid: sid("missing"),
            ..renew(true, t)
        })
        .await
        .unwrap(),
        RenewOutcome::Invalid
    );
}

async fn concurrent_rotations_rotate_once<S: Store>(s: Arc<S>) {
    let t = now();
    s.create_session(&session("s10", "ivy", t)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.rotate(&rotate("s10", "h0-s10", &format!("n{i}"), t + 1, 5_000))
                .await
                .unwrap()
        }));
    }
    let mut rotated = 0;
    let mut sealed = std::collections::HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            RotateOutcome::Rotated(_) => rotated += 1,
            RotateOutcome::Grace { sealed: s, .. } => {
                sealed.insert(s);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rotated, 1);
    assert!(
        sealed.len() <= 1,
        "every loser gets the winner's successor: {sealed:?}"
    );
}

async fn rate_limits_are_gcra<S: Store>(s: Arc<S>) {
    let t = now();
    let limit = RateLimit::new(10, 3).unwrap(); // 100 ms apart, bursts of 3
    for i in 0..3 {
        assert_eq!(
            s.rate_limit("k", limit, t).await.unwrap(),
            None,
            "burst slot {i}"
        );
    }
    let retry = s
        .rate_limit("k", limit, t)
        .await
        .unwrap()
        .expect("over budget");
    assert!(retry > 0 && retry <= 100, "{retry}");
    // Really wait: the Redis store counts on the server's clock.
    tokio::time::sleep(std::time::Duration::from_millis(retry as u64 + 5)).await;
    assert_eq!(
        s.rate_limit("k", limit, now()).await.unwrap(),
        None,
        "allowed after waiting"
    );
    assert_eq!(
        s.rate_limit("other", limit, t).await.unwrap(),
        None,
        "keys are independent"
    );
    // Limited Issue writes nothing and says how long to wait.
    let mut new = session("s11", "jo", t);
    new.rate_limit = RateLimit::new(1, 1);
    assert_eq!(
        s.create_session(&new).await.unwrap(),
        CreateOutcome::CREATED
    );
    let mut again = session("s12", "jo", t);
    again.rate_limit = RateLimit::new(1, 1);
    assert!(s.create_session(&again).await.unwrap().is_limited());
    assert_eq!(
        s.rotate(&rotate("s12", "h0-s12", "x", t, 0)).await.unwrap(),
        RotateOutcome::Invalid,
        "not stored"
    );
    // The caller's budget spans subjects, in the same step as the write.
    let caller = Some((
        "caller:test:Issue".to_owned(),
        RateLimit::new(1, 2).unwrap(),
    ));
    for (sid, subject, limited) in [
        ("s13", "kim", false),
        ("s14", "lee", false),
        ("s15", "max", true),
    ] {
        let mut new = session(sid, subject, t);
        new.caller_rate = caller.clone();
        assert_eq!(
            s.create_session(&new).await.unwrap().is_limited(),
            limited,
            "{sid}"
        );
    }
}

/// A subject with 10,000 sessions pages correctly: every one once, in order.
async fn ten_thousand_sessions_page<S: Store>(s: Arc<S>) {
    let t = now();
    let skey = subject_key("acme", "crowd");
    let news: Vec<NewSession> = (0..10_000)
        .map(|i| session(&format!("c{i:05}"), "crowd", t))
        .collect();
    for chunk in news.chunks(500) {
        let created = futures::future::join_all(chunk.iter().map(|n| s.create_session(n))).await;
        assert!(created
            .iter()
            .all(|r| r.as_ref().is_ok_and(|o| *o == CreateOutcome::CREATED)));
    }
    // One revoked and one rotated: the first leaves, the second stays.
    s.revoke(&RevokeRequest {
        target: RevokeTarget::Session {
            sid: sid("c00007"),
            refresh_hash: None,
        },
        now_ms: t,
        feed: FEED,
        traceparent: String::new(),
    })
    .await
    .unwrap();
    assert!(matches!(
        s.rotate(&rotate("c00008", "h0-c00008", "h1", t, 0))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    let mut listed = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let page = s.list_sessions(&skey, &after, 500, t).await.unwrap();
        pages += 1;
        listed.extend(page.sessions.into_iter().map(|v| v.data.sid));
        if page.next.is_empty() {
            break;
        }
        after = page.next;
    }
    assert_eq!(pages, 20);
    let mut want: Vec<String> = (0..10_000)
        .filter(|i| *i != 7)
        .map(|i| sid(&format!("c{i:05}")))
        .collect();
    // All created in the same millisecond: newest first means by id, descending.
    want.sort();
    want.reverse();
    assert_eq!(
        listed, want,
        "every live session once, newest first (creation, then id, descending)"
    );
}

/// Sessions `labels` of `subject`, created at `t`, `t` + 1 ms, …, then
/// each rotated three times, one after another, from `t` + 101 ms.
async fn created_and_rotated<S: Store>(s: &S, subject: &str, labels: &[String], t: i64) {
    for (i, label) in labels.iter().enumerate() {
        let new = session(label, subject, t + i as i64);
        assert_eq!(
            s.create_session(&new).await.unwrap(),
            CreateOutcome::CREATED
        );
    }
    for g in 1..=3u32 {
        for label in labels {
            let (old, new) = (generation_hash(label, g - 1), generation_hash(label, g));
            let r = rotate(label, &old, &new, t + 100 + g as i64, 0);
            let outcome = s.rotate(&r).await.unwrap();
            assert!(matches!(outcome, RotateOutcome::Rotated(_)), "{label} {g}");
        }
    }
}

/// Sessions rotated again and again stay listed, in a subject of two and
/// in one of twenty (past the size whose every write checks the creation
/// index on Redis).
async fn rotated_sessions_stay_listed<S: Store>(s: Arc<S>) {
    let t = now();
    for (subject, n) in [("rosa", 2), ("ruth", 20)] {
        let labels: Vec<String> = (0..n).map(|i| format!("{subject}-{i:02}")).collect();
        created_and_rotated(&*s, subject, &labels, t).await;
        let page = s
            .list_sessions(&subject_key("acme", subject), "", 50, t + 200)
            .await
            .unwrap();
        let listed: Vec<String> = page.sessions.into_iter().map(|v| v.data.sid).collect();
        let want: Vec<String> = labels.iter().rev().map(|l| sid(l)).collect();
        assert_eq!(listed, want, "{subject}: every session once, newest first");
    }
}

/// Revoking every session of a subject one by one leaves nothing for a
/// "log out everywhere" to do: revoked sessions leave the subject's index.
async fn revoked_sessions_leave_the_index<S: Store>(s: Arc<S>) {
    let t = now();
    for label in ["rita-1", "rita-2"] {
        s.create_session(&session(label, "rita", t)).await.unwrap();
        let cursor = s
            .revoke(&RevokeRequest {
                target: RevokeTarget::Session {
                    sid: sid(label),
                    refresh_hash: None,
                },
                now_ms: t,
                feed: FEED,
                traceparent: String::new(),
            })
            .await
            .unwrap();
        assert!(cursor.is_some());
    }
    let subject = RevokeRequest {
        target: RevokeTarget::Subject {
            tenant: "acme".into(),
            subject: "rita".into(),
        },
        now_ms: t,
        feed: FEED,
        traceparent: String::new(),
    };
    assert_eq!(s.revoke(&subject).await.unwrap(), None);
    let page = s
        .list_sessions(&subject_key("acme", "rita"), "", 10, t)
        .await
        .unwrap();
    assert_eq!(page, SessionPage::default());
}

/// `session_tenant` (the check of a caller scoped to tenants): a kept
/// session's tenant, with a refresh hash only when it is the session's
/// current one or one it superseded; nothing for an unknown session or
/// secret; and a read only — a superseded hash looked up does not count as
/// a replay, nothing is logged.
async fn session_tenant_checks_the_secret_and_changes_nothing<S: Store>(s: Arc<S>) {
    let t = now();
    let mut other = session("st-globex", "gus", t);
    other.data.tenant = "globex".into();
    s.create_session(&session("st1", "tina", t)).await.unwrap();
    s.create_session(&other).await.unwrap();
    let tenant = |label: &'static str, hash: Option<&'static str>| {
        let s = s.clone();
        async move { s.session_tenant(&sid(label), hash, t).await.unwrap() }
    };
    assert_eq!(tenant("st1", None).await.as_deref(), Some("acme"));
    assert_eq!(tenant("st1", Some("h0-st1")).await.as_deref(), Some("acme"));
    assert_eq!(tenant("st-globex", None).await.as_deref(), Some("globex"));
    assert_eq!(
        tenant("st1", Some("h0-st-globex")).await,
        None,
        "another session's secret"
    );
    assert_eq!(tenant("st1", Some("nope")).await, None);
    assert_eq!(tenant("st-never", None).await, None);
    let RotateOutcome::Rotated(_) = s
        .rotate(&rotate("st1", "h0-st1", "h1-st1", t, 0))
        .await
        .unwrap()
    else {
        panic!("rotates");
    };
    let start = Position::start(s.log_partitions());
    let logged = s.read_log(&start, None, 1000).await.unwrap().len();
    // The superseded hash is still the session's; asking changes nothing.
    assert_eq!(tenant("st1", Some("h0-st1")).await.as_deref(), Some("acme"));
    assert_eq!(tenant("st1", Some("h1-st1")).await.as_deref(), Some("acme"));
    assert!(matches!(
        s.rotate(&rotate("st1", "h1-st1", "h2-st1", t + 10, 0))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert_eq!(s.read_log(&start, None, 1000).await.unwrap().len(), logged);
    // A revoked session is still kept (its access tokens may live): its
    // tenant is still known.
    let revoked = RevokeRequest {
        target: RevokeTarget::Session {
            sid: sid("st-globex"),
            refresh_hash: None,
        },
        now_ms: t + 20,
        feed: FEED,
        traceparent: String::new(),
    };
    assert!(s.revoke(&revoked).await.unwrap().is_some());
    assert_eq!(tenant("st-globex", None).await.as_deref(), Some("globex"));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { with_store!(super::Backend::Memory, |s| super::$name(s).await) }
        )* use super::*; }
        mod redis { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { with_store!(super::Backend::Redis, |s| super::$name(s).await) }
        )* use super::*; }

        /// The whole suite on a real Redis Cluster (3 masters, 3 replicas),
        /// one case after another on one cluster: a cluster of six processes
        /// per case would not fit two cores.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn on_a_redis_cluster() {
            let cluster = crate::support::RedisCluster::start(3).await;
            $(
                cluster.flushall().await;
                let store = RedisStore::connect(
                    &cluster.url(),
                    std::time::Duration::from_secs(2),
                    DEFAULT_PARTITIONS,
                )
                    .await
                    .expect("connect to the cluster");
                eprintln!("cluster: {}", stringify!($name));
                $name(Arc::new(store)).await;
            )*
        }
    };
}

conformance!(
    rotation_semantics,
    grace_expires,
    lifetimes_are_enforced,
    fingerprint_binding,
    revocation_and_log,
    subject_cutoff_kills_older_sessions_only,
    unknown_targets_are_no_ops,
    renewal_single_flight,
    concurrent_rotations_rotate_once,
    rate_limits_are_gcra,
    reuse_history_is_bounded,
    ten_thousand_sessions_page,
    revoked_sessions_leave_the_index,
    rotated_sessions_stay_listed,
    session_tenant_checks_the_secret_and_changes_nothing,
);

/// Redis only: Issue's and Refresh's scripts go to Redis in batches (group
/// commit, `store/batch.rs`). Concurrent calls share EVALSHAs, every caller
/// gets its own reply, and a call that fails inside a batch fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_batches_calls_and_isolates_failures() {
    use fred::prelude::*;
    use fred::types::InfoKind;

    let (s, _server) = redis_fixture().await;
    let evalsha_calls = || async {
        let info: String = s.client().info(Some(InfoKind::CommandStats)).await.unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let t = now();
    let sids: Vec<String> = (0..40).map(|i| format!("b{i}")).collect();
    let sessions: Vec<NewSession> = sids
        .iter()
        .map(|sid| session(sid, &format!("u-{sid}"), t))
        .collect();
    let created = futures::future::join_all(sessions.iter().map(|new| s.create_session(new))).await;
    assert!(
        created
            .iter()
            .all(|r| matches!(r, Ok(CreateOutcome::Created { .. }))),
        "{created:?}"
    );

    // One session whose stored idle time is not a number: its rotation raises
    // a Lua error inside the batch.
    s.create_session(&session("broken", "mallory", t))
        .await
        .unwrap();
    let _: i64 = s
        .client()
        .hset(
            format!("{}s:{}", key_prefix("broken"), sid("broken")),
            ("i", "not-a-number"),
        )
        .await
        .unwrap();

    let before = evalsha_calls().await;
    let mut calls: Vec<_> = sids
        .iter()
        .map(|sid| {
            rotate(
                sid,
                &format!("h0-{sid}"),
                &format!("h1-{sid}"),
                t + 1,
                5_000,
            )
        })
        .collect();
    calls.insert(20, rotate("broken", "h0-broken", "h1-broken", t + 1, 5_000));
    let outcomes = futures::future::join_all(calls.iter().map(|r| s.rotate(r))).await;
    let sent = evalsha_calls().await - before;

    for (request, outcome) in calls.iter().zip(&outcomes) {
        if request.sid == sid("broken") {
            assert!(
                matches!(outcome, Err(tessera::store::StoreError::Unavailable(_))),
                "{outcome:?}"
            );
            continue;
        }
        match outcome {
            Ok(RotateOutcome::Rotated(r)) => {
                assert_eq!(r.data.sid, request.sid, "replies must not be mixed up");
                assert_eq!(sid(&r.data.subject.replacen("u-", "", 1)), request.sid);
                assert_eq!(r.generation, 1);
            }
            other => panic!("{}: {other:?}", request.sid),
        }
    }
    // 41 rotations (plus at most one NOSCRIPT retry) in far fewer EVALSHAs.
    assert!(sent <= 10, "{sent} EVALSHAs for 41 rotations");
    // The batcher goes on after a failed call.
    assert!(matches!(
        s.rotate(&rotate("b0", "h1-b0", "h2-b0", t + 2, 5_000))
            .await,
        Ok(RotateOutcome::Rotated(_))
    ));
}

/// Redis only: a rotation does not add its session to the creation index
/// (issue #30), so the index must be whole from the creations alone: a
/// subject's first session adopted when the second came, every later one
/// added when created. Counted before any reader (which would adopt what
/// is missing) looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_creations_keep_the_creation_index_whole_through_rotations() {
    use fred::prelude::*;

    let (s, _server) = redis_fixture().await;
    let t = now();
    let labels: Vec<String> = (0..20).map(|i| format!("ci-{i:02}")).collect();
    created_and_rotated(&*s, "creation-index", &labels, t).await;
    let creation = format!(
        "{}sc:{}",
        key_prefix("ci-00"),
        subject_key("acme", "creation-index")
    );
    let members: i64 = s.client().zcard(&creation).await.unwrap();
    assert_eq!(members, 20, "every session in the creation index");
}

/// Redis only: a large subject's Issues prune the dead members of its
/// indexes even when none of them moves the indexes' expiry: one Issue in
/// eight does, picked by the last character of its session id (issue 30),
/// which here is the label's last digit ('0' and '8' prune).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_big_subjects_issues_prune_its_dead_without_moving_the_expiry() {
    use fred::prelude::*;

    let (s, _server) = redis_fixture().await;
    let t = now();
    // 20 long-lived sessions set the indexes' expiry, 30 short-lived ones
    // are dead (past their keep) by t + 2000.
    create_many(&s, "pl-", "prune-big", 20, |_| t).await;
    for i in 0..30 {
        let mut short = session(&format!("ps-{i}"), "prune-big", t);
        short.refresh_exp_ms = t + 100;
        short.keep_until_ms = t + 1_000;
        s.create_session(&short).await.unwrap();
    }
    let index = format!(
        "{}ss:{}",
        key_prefix("pl-0"),
        subject_key("acme", "prune-big")
    );
    let members = |s: &RedisStore| {
        let (client, index) = (s.client().clone(), index.clone());
        async move { client.zcard::<i64, _>(&index).await.unwrap() }
    };
    assert_eq!(members(&s).await, 50);
    // Issues later on, each kept for a short while (the expiry stays).
    let issue = |label: String| {
        let mut late = session(&label, "prune-big", t + 2_000);
        late.refresh_exp_ms = t + 2_100;
        late.keep_until_ms = t + 3_000;
        late
    };
    for i in 1..=7 {
        s.create_session(&issue(format!("pn-{i}"))).await.unwrap();
    }
    assert_eq!(
        members(&s).await,
        57,
        "seven Issues in eight leave the dead"
    );
    s.create_session(&issue("pn-8".into())).await.unwrap();
    assert_eq!(members(&s).await, 28, "the eighth prunes the 30 dead");
}

/// Redis only: a subject of more sessions than a write prunes (16) whose
/// sessions predate the creation index `sc:` gets one at its next write,
/// with an expiry and every session in it, even when that write does not
/// move the index's expiry (issue #30: the adoption check is skipped then,
/// but not when `sc:` gains a member).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_big_subject_from_before_the_creation_index_gets_one_that_expires() {
    use fred::prelude::*;

    let (s, _server) = redis_fixture().await;
    let t = now();
    create_many(&s, "bl-", "big-legacy", 20, |i| t + i).await;
    let creation = format!(
        "{}sc:{}",
        key_prefix("bl-0"),
        subject_key("acme", "big-legacy")
    );
    // As a version before the creation index left it.
    let _: i64 = s.client().del(&creation).await.unwrap();
    s.create_session(&session("bl-20", "big-legacy", t + 20))
        .await
        .unwrap();
    let members: i64 = s.client().zcard(&creation).await.unwrap();
    assert_eq!(members, 21, "every session adopted");
    let ttl: i64 = s.client().pttl(&creation).await.unwrap();
    assert!(ttl > 0, "the new creation index expires (PTTL {ttl})");
}

/// Redis only: sessions last rotated before the history ring kept their
/// older hashes as a comma list in the field `old`; reuse of one of those is
/// still detected after an upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_honours_history_written_by_earlier_versions() {
    use fred::prelude::*;

    let (s, _server) = redis_fixture().await;
    let t = now();
    s.create_session(&session("legacy", "lee", t))
        .await
        .unwrap();
    let r = rotate("legacy", "h0-legacy", "h1", t + 1, 0);
    assert!(matches!(
        s.rotate(&r).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    let _: i64 = s
        .client()
        .hset(
            format!("{}s:{}", key_prefix("legacy"), sid("legacy")),
            ("old", "old-a,old-b"),
        )
        .await
        .unwrap();
    assert_eq!(
        s.rotate(&rotate("legacy", "old-c", "x", t + 2, 0))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert!(matches!(
        s.rotate(&rotate("legacy", "old-b", "x", t + 3, 0))
            .await
            .unwrap(),
        RotateOutcome::Reused { .. }
    ));

    // Session hashes as the first version with partitions wrote them: long
    // field names, instants as such, the whole device hash, `prev` apart
    // from a ring o0..o15 whose slot (rotation % 16) holds the generation
    // two before that rotation; plus what versions before that wrote too
    // (data as JSON with long names, empty and zero fields, whole hashes in
    // the ring). Both sessions below are at generation 3: `h3` current,
    // `h2` previous, h1 (16 characters) in o3, h0 (whole) in o2.
    let skey = subject_key("acme", "ola");
    let mut old = session("old-format", "ola", t);
    old.data.device_name = "old phone".into();
    let device = "d".repeat(43);
    old.data.fingerprint_hash = Some(device.clone());
    old.data.created_ms = t - 60_000;
    old.data.absolute_exp_ms = t + 3_600_000;
    old.data.idle_ms = 600_000;
    let json = serde_json::to_string(&old.data).unwrap();
    let write_old = |label: &'static str| {
        let fields: Vec<(String, String)> = [
            ("d", json.clone()),
            ("cur", format!("h3-{label}")),
            ("prev", format!("h2-{label}")),
            ("gen", "3".into()),
            ("rot", (t - 5_000).to_string()),
            ("c", (t - 60_000).to_string()),
            ("exp", (t + 600_000).to_string()),
            ("abs", (t + 3_600_000).to_string()),
            ("i", "600000".into()),
            ("uk", skey.clone()),
            ("tid", "acme".into()),
            ("sub", "ola".into()),
            ("fp", device.clone()),
            ("rev", "0".into()),
            ("o3", format!("h1-{label}-0123456789")[..16].to_owned()),
            ("o2", format!("whole-h0-of-{label}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let client = s.client().clone();
        let key = format!("{}s:{}", key_prefix("old-format"), sid(label));
        let index = format!("{}ss:{skey}", key_prefix("old-format"));
        let member = sid(label);
        async move {
            let _: i64 = client.hset(&key, fields).await.unwrap();
            let _: i64 = client.pexpire(&key, 3_600_000, None).await.unwrap();
            let _: i64 = client
                .zadd(
                    index,
                    None,
                    None,
                    false,
                    false,
                    ((t + 600_000) as f64, member),
                )
                .await
                .unwrap();
        }
    };
    session("old-ring", "ola", t);
    write_old("old-format").await;
    write_old("old-ring").await;
    let bound = |mut r: RotateRequest| {
        r.fingerprint_hash = Some(device.clone());
        r
    };
    // Another device is refused before anything changes.
    assert_eq!(
        s.rotate(&rotate("old-format", "h3-old-format", "h4", t + 1, 0))
            .await
            .unwrap(),
        RotateOutcome::FingerprintMismatch
    );
    let RotateOutcome::Rotated(r) = s
        .rotate(&bound(rotate(
            "old-format",
            "h3-old-format",
            "h4-old-format",
            t + 1,
            0,
        )))
        .await
        .unwrap()
    else {
        panic!("an old-format session rotates")
    };
    assert_eq!(r.generation, 4);
    assert_eq!(r.data, old.data, "its data reads back whole");
    assert_eq!(r.refresh_exp_ms, t + 1 + 600_000);
    let page = s.list_sessions(&skey, "", 10, t + 2).await.unwrap();
    assert_eq!(page.sessions.len(), 2);
    let listed = &page.sessions[if page.sessions[0].data.sid == sid("old-format") {
        0
    } else {
        1
    }];
    assert_eq!(listed.data.device_name, "old phone");
    assert_eq!(listed.data.absolute_exp_ms, t + 3_600_000);
    assert_eq!(listed.data.created_ms, t - 60_000);
    // Generation 0's whole hash, moved to the new ring: reuse.
    assert!(matches!(
        s.rotate(&rotate(
            "old-format",
            "whole-h0-of-old-format",
            "x",
            t + 3,
            0
        ))
        .await
        .unwrap(),
        RotateOutcome::Reused { .. }
    ));
    // The other one, untouched until now: upgraded by a reuse of h1.
    assert!(matches!(
        s.rotate(&rotate("old-ring", "h1-old-ring-0123456789", "x", t + 3, 0))
            .await
            .unwrap(),
        RotateOutcome::Reused { .. }
    ));
}
