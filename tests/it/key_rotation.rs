//! Key rotation without downtime: older keys keep verifying after SIGHUP
//! until they are dropped; new tokens carry the new `kid`.

use std::time::{Duration, Instant};

use crate::support::*;
use tessera::config::KeyAlg;
use tessera::keys::generate_pem;
use tessera::pb;

async fn jwks_kids(c: &mut Client) -> Vec<String> {
    jwks_kids_of(c, "").await
}

/// The `kid`s of `GetJwks { tenant }` (`""`: the default keys).
pub(crate) async fn jwks_kids_of(c: &mut Client, tenant: &str) -> Vec<String> {
    let json = c
        .get_jwks(pb::GetJwksRequest {
            tenant: tenant.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .jwks_json;
    kids(&json)
}

/// The `kid`s of a JWK set, in its order.
pub(crate) fn kids(jwks_json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(jwks_json).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_kids(c: &mut Client, want: usize) -> Vec<String> {
    wait_kids_of(c, "", want).await
}

/// Poll `GetJwks { tenant }` until it lists `want` keys (a SIGHUP reload
/// is asynchronous), or panic after 10 s.
pub(crate) async fn wait_kids_of(c: &mut Client, tenant: &str, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kids = jwks_kids_of(c, tenant).await;
        if kids.len() == want {
            return kids;
        }
        assert!(
            Instant::now() < deadline,
            "the JWKS of {tenant:?} never had {want} keys: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Issue for `subject` until the token is signed by another key than
/// `previous` (a SIGHUP reload is asynchronous), or panic after 10 s.
async fn issue_signed_by_new_key(
    c: &mut Client,
    subject: &str,
    previous: &pb::TokenPair,
) -> pb::TokenPair {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pair = issue(c, subject).await;
        if kid_of(&pair.access_token) != kid_of(&previous.access_token) {
            return pair;
        }
        assert!(Instant::now() < deadline, "the new key never signed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let active = dir.path().join("active.pem");
    let older = dir.path().join("older.pem");
    let key_a = generate_pem(KeyAlg::Eddsa).unwrap();
    let key_b = generate_pem(KeyAlg::Es256).unwrap();
    std::fs::write(&active, &key_a).unwrap();
    std::fs::write(&older, &key_a).unwrap();
    let process = Process::start(&[
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", active.display()),
        format!("--verify-key={}", older.display()),
    ])
    .await;
    let mut c = process.server().client().await;
    assert_eq!(
        jwks_kids(&mut c).await.len(),
        1,
        "the same key twice is one key"
    );
    let before = issue(&mut c, "alice").await;

    // Rotate: B signs, A still verifies.
    std::fs::write(&active, &key_b).unwrap();
    process.signal("HUP");
    let kids = wait_kids(&mut c, 2).await;
    let after = issue(&mut c, "bob").await;
    assert_ne!(kid_of(&after.access_token), kid_of(&before.access_token));
    assert_eq!(
        kids[0],
        kid_of(&after.access_token),
        "the active key is listed first"
    );
    c.verify(verify_request(&before.access_token))
        .await
        .expect("old token still verifies");
    c.verify(verify_request(&after.access_token))
        .await
        .expect("new token verifies");
    let rotated = refreshed(&mut c, &before.refresh_token).await;
    assert_eq!(
        kid_of(&rotated.access_token),
        kid_of(&after.access_token),
        "refresh mints with the new key"
    );

    // A broken file is refused and the keys in force stay.
    std::fs::write(&older, "not a key").unwrap();
    process.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(jwks_kids(&mut c).await.len(), 2);
    c.verify(verify_request(&before.access_token))
        .await
        .expect("still verifies after a failed reload");

    // Drop A: its tokens no longer verify, though `before` was verified (and
    // so cached by the verified-token cache) three times above.
    std::fs::write(&older, &key_b).unwrap();
    process.signal("HUP");
    wait_kids(&mut c, 1).await;
    expect_reason(
        c.verify(verify_request(&before.access_token)).await,
        "TOKEN_SIGNATURE_INVALID",
    );
    c.verify(verify_request(&after.access_token))
        .await
        .expect("B's tokens verify");
    assert!(process.log_text().contains("key reload failed"));
}

/// An offline verifier that caches `/.well-known/jwks.json` for the
/// `max-age` the server sends, like Envoy's `jwt_authn` or JWKS middleware.
struct CachingVerifier {
    admin: std::net::SocketAddr,
    kids: Vec<String>,
    fetched: Instant,
    max_age: Duration,
}

impl CachingVerifier {
    async fn new(admin: std::net::SocketAddr) -> Self {
        let mut v = CachingVerifier {
            admin,
            kids: Vec::new(),
            fetched: Instant::now(),
            max_age: Duration::ZERO,
        };
        v.fetch().await;
        v
    }

    async fn fetch(&mut self) {
        let (status, head, body) = http_get_with_head(self.admin, "/.well-known/jwks.json").await;
        assert_eq!(status, 200);
        let max_age = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("cache-control:"))
            .and_then(|l| l.split("max-age=").nth(1))
            .and_then(|v| v.trim().parse().ok())
            .expect("max-age");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        self.kids = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        self.fetched = Instant::now();
        self.max_age = Duration::from_secs(max_age);
    }

    /// Does its copy of the JWK set know the token's key? (Refetched only
    /// once the copy is older than its max-age.)
    async fn knows(&mut self, token: &str) -> bool {
        if self.fetched.elapsed() >= self.max_age {
            self.fetch().await;
        }
        self.kids.contains(&kid_of(token))
    }
}

/// Two-phase rotation: publish the next key (as a verify key) first, wait
/// one JWKS cache lifetime, then sign with it. A verifier caching the JWK
/// set for its max-age never meets a token whose key it does not know —
/// unlike the one-step swap, which it rejects until its copy expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_rotation_never_outpaces_cached_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing.pem");
    let verify = dir.path().join("verify.pem");
    let key_a = generate_pem(KeyAlg::Eddsa).unwrap();
    let key_b = generate_pem(KeyAlg::Eddsa).unwrap();
    std::fs::write(&signing, &key_a).unwrap();
    std::fs::write(&verify, &key_a).unwrap();
    let process = Process::start(&[
        "--issuer=tessera-test".to_owned(),
        "--jwks-max-age=1s".to_owned(),
        format!("--signing-key={}", signing.display()),
        format!("--verify-key={}", verify.display()),
    ])
    .await;
    let mut c = process.server().client().await;
    let mut cached = CachingVerifier::new(process.admin).await;
    assert_eq!(cached.max_age, Duration::from_secs(1));
    let first = issue(&mut c, "alice").await;
    assert!(cached.knows(&first.access_token).await);

    // Phase 1: publish B, still sign with A.
    std::fs::write(&verify, &key_b).unwrap();
    process.signal("HUP");
    wait_kids(&mut c, 2).await;
    let still_a = issue(&mut c, "alice").await;
    assert_eq!(kid_of(&still_a.access_token), kid_of(&first.access_token));
    // One cache lifetime later every cached copy has B.
    tokio::time::sleep(cached.max_age).await;
    assert!(cached.knows(&still_a.access_token).await);

    // Phase 2: sign with B, A verifies.
    std::fs::write(&signing, &key_b).unwrap();
    std::fs::write(&verify, &key_a).unwrap();
    process.signal("HUP");
    let signed_b = issue_signed_by_new_key(&mut c, "alice", &first).await;
    assert!(
        cached.knows(&signed_b.access_token).await,
        "the cached JWK set already had the new key"
    );
    c.verify(verify_request(&first.access_token))
        .await
        .expect("A's tokens still verify");

    // The one-step swap, for contrast: a fresh key C signs at once, and a
    // copy fetched just before does not know it.
    let key_c = generate_pem(KeyAlg::Eddsa).unwrap();
    let stale = CachingVerifier::new(process.admin).await;
    std::fs::write(&signing, &key_c).unwrap();
    std::fs::write(&verify, &key_b).unwrap();
    process.signal("HUP");
    let signed_c = issue_signed_by_new_key(&mut c, "alice", &signed_b).await;
    if stale.fetched.elapsed() < stale.max_age {
        assert!(!stale.kids.contains(&kid_of(&signed_c.access_token)));
    }
}

/// HS256 keys rotate like the others: with `--signing-alg hs256`, a
/// `--verify-key` that is not PEM is the previous secret (it could not be
/// loaded before: only PEM was read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_secrets_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let signing = dir.path().join("signing.key");
    let verify = dir.path().join("verify.key");
    let old = generate_pem(KeyAlg::Hs256).unwrap();
    let new = generate_pem(KeyAlg::Hs256).unwrap();
    std::fs::write(&signing, &old).unwrap();
    std::fs::write(&verify, &old).unwrap();
    let process = Process::start(&[
        "--issuer=tessera-test".to_owned(),
        "--signing-alg=hs256".to_owned(),
        format!("--signing-key={}", signing.display()),
        format!("--verify-key={}", verify.display()),
    ])
    .await;
    let mut c = process.server().client().await;
    let before = issue(&mut c, "alice").await;
    std::fs::write(&signing, &new).unwrap();
    process.signal("HUP");
    let after = issue_signed_by_new_key(&mut c, "bob", &before).await;
    c.verify(verify_request(&before.access_token))
        .await
        .expect("the previous secret still verifies");
    c.verify(verify_request(&after.access_token))
        .await
        .expect("the new secret verifies");
}
