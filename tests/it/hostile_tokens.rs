//! The hostile-token suite: each case names where the attack comes from and
//! asserts the exact reason code over real gRPC. None may verify or panic.
//!
//! Sources: RFC 8725 (JWT BCP), CVE-2015-9235 (alg none / key confusion in
//! node-jsonwebtoken), CVE-2016-10555 (HS256 with an RSA/EC public key),
//! CVE-2022-21449 ("psychic signatures", all-zero ECDSA), CVE-2018-0114
//! (embedded `jwk`), jwt_tool (ticarpi/jwt_tool) attack modes (-X a, k, i, s, n).

use crate::hostile_cases::{b64, cases, header, now, payload, sign_raw};

use crate::support::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::json;
use tessera::config::KeyAlg;
use tessera::keys::KeySet;

async fn run_suite(alg: KeyAlg) {
    let dir = tempfile::tempdir().unwrap();
    let pem = tessera::keys::generate_pem(alg).unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(&path, &pem).unwrap();
    let keys = KeySet::from_bytes(pem.as_bytes(), None, "k").unwrap();
    // A listener that must never be contacted by the server (jku/x5u).
    let bait = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bait_url = format!("http://{}/jwks.json", bait.local_addr().unwrap());
    let server = Server::start(&[
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", path.display()),
    ])
    .await;
    let mut c = server.client().await;
    let all = cases(&keys, &pem, &bait_url);
    assert!(all.len() > 50, "{} cases", all.len());
    // Every case twice: a refused token must not be cached, so the second
    // answer is the first one (the verified-token cache is on by default).
    for case in all.iter().chain(&all) {
        let mut req = verify_request(&case.token);
        req.audience = "api".into();
        match c.verify(req).await {
            Ok(r) => panic!(
                "{} ({}) verified: {:?}",
                case.name,
                case.source,
                r.into_inner().claims
            ),
            Err(s) => assert_eq!(
                reason(&s),
                case.reason,
                "{} ({}): {s:?}",
                case.name,
                case.source
            ),
        }
    }
    // Oversized: refused before parsing.
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(4096),
        "b".repeat(4096),
        "c".repeat(100)
    );
    let s = c.verify(verify_request(&huge)).await.unwrap_err();
    assert_eq!(reason(&s), "FIELD_INVALID");
    // Valid tokens for another audience still say so.
    let n = now();
    let mut other_aud = payload(n);
    other_aud["aud"] = json!(["billing"]);
    let token = sign_raw(
        &header(tessera::keys::alg_name(keys.signer.alg), &keys.signer.kid).to_string(),
        &other_aud.to_string(),
        &keys.signer.encoding,
        keys.signer.alg,
    );
    let mut req = verify_request(&token);
    req.audience = "api".into();
    assert_eq!(
        reason(&c.verify(req).await.unwrap_err()),
        "AUDIENCE_MISMATCH"
    );
    // Nothing reached the bait.
    let probe = tokio::time::timeout(std::time::Duration::from_millis(100), bait.accept()).await;
    assert!(
        probe.is_err(),
        "the server fetched a key URL from a token header"
    );
    // And the server is still healthy after all of it.
    let fresh = issue(&mut c, "alice").await;
    c.verify(verify_request(&fresh.access_token))
        .await
        .expect("still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tokens_against_an_eddsa_server() {
    run_suite(KeyAlg::Eddsa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tokens_against_an_es256_server() {
    run_suite(KeyAlg::Es256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psychic_signature_is_refused() {
    // CVE-2022-21449: an ECDSA signature of r = s = 0 must never verify.
    let dir = tempfile::tempdir().unwrap();
    let pem = tessera::keys::generate_pem(KeyAlg::Es256).unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(&path, &pem).unwrap();
    let keys = KeySet::from_bytes(pem.as_bytes(), None, "k").unwrap();
    let server = Server::start(&[
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", path.display()),
    ])
    .await;
    let mut c = server.client().await;
    let token = format!(
        "{}.{}.{}",
        b64(&header("ES256", &keys.signer.kid)),
        b64(&payload(now())),
        B64.encode([0u8; 64])
    );
    assert_eq!(
        reason(&c.verify(verify_request(&token)).await.unwrap_err()),
        "TOKEN_SIGNATURE_INVALID"
    );
}
