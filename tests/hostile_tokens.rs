//! The hostile-token suite: each case names where the attack comes from and
//! asserts the exact reason code over real gRPC. None may verify or panic.
//!
//! Sources: RFC 8725 (JWT BCP), CVE-2015-9235 (alg none / key confusion in
//! node-jsonwebtoken), CVE-2016-10555 (HS256 with an RSA/EC public key),
//! CVE-2022-21449 ("psychic signatures", all-zero ECDSA), CVE-2018-0114
//! (embedded `jwk`), jwt_tool (ticarpi/jwt_tool) attack modes (-X a, k, i, s, n).

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use support::*;
use tessera::config::KeyAlg;
use tessera::keys::KeySet;

fn b64(v: &Value) -> String {
    B64.encode(v.to_string())
}

fn now() -> i64 {
    tessera::clock::now_ms() / 1000
}

fn payload(n: i64) -> Value {
    json!({
        "iss": "tessera-test", "sub": "mallory", "aud": ["api"], "exp": n + 600, "nbf": n - 10,
        "iat": n - 10, "jti": "hostile-jti", "sid": "hostile-sid", "tid": "acme", "scope": "admin"
    })
}

/// Sign `header.payload` (both raw JSON text) with `key` under `alg`.
fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{sig}")
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "at+jwt", "kid": kid})
}

struct Case {
    name: &'static str,
    source: &'static str,
    token: String,
    reason: &'static str,
}

/// Cases against a server whose key is `keys` (EdDSA or ES256).
fn cases(keys: &KeySet, pem: &str, jku_url: &str) -> Vec<Case> {
    let n = now();
    let kid = keys.signer.kid.as_str();
    let alg = tessera::keys::alg_name(keys.signer.alg);
    let enc = &keys.signer.encoding;
    let good_payload = payload(n).to_string();
    let good = sign_raw(
        &header(alg, kid).to_string(),
        &good_payload,
        enc,
        keys.signer.alg,
    );
    let parts: Vec<&str> = good.split('.').collect();
    let attacker = KeySet::ephemeral().unwrap();
    let attacker_jwk: Value =
        serde_json::from_str::<Value>(attacker.jwks_json()).unwrap()["keys"][0].clone();
    let with_payload = |p: Value| {
        sign_raw(
            &header(alg, kid).to_string(),
            &p.to_string(),
            enc,
            keys.signer.alg,
        )
    };
    let mut v = Vec::new();
    let mut case = |name, source, token: String, reason| {
        v.push(Case {
            name,
            source,
            token,
            reason,
        })
    };

    for none in ["none", "None", "NONE", "nOnE"] {
        let h = b64(&header(none, kid));
        case(
            "alg none, no signature",
            "RFC 8725 §3.1; CVE-2015-9235; jwt_tool -X a",
            format!("{h}.{}.", parts[1]),
            "TOKEN_SIGNATURE_INVALID",
        );
        case(
            "alg none, with signature",
            "RFC 8725 §3.1; jwt_tool -X a",
            format!("{h}.{}.{}", parts[1], parts[2]),
            "TOKEN_SIGNATURE_INVALID",
        );
    }
    // Algorithm confusion: HS256 keyed with the server's public key bytes.
    let public_pem = KeySet::from_bytes(pem.as_bytes(), None, "p").unwrap();
    let public_json = public_pem.jwks_json().to_owned();
    for secret in [public_json.as_bytes().to_vec(), pem.as_bytes().to_vec()] {
        let token = sign_raw(
            &header("HS256", kid).to_string(),
            &good_payload,
            &EncodingKey::from_secret(&secret),
            Algorithm::HS256,
        );
        case(
            "HS256 with the public key as secret",
            "CVE-2016-10555; RFC 8725 §2.1; jwt_tool -X k",
            token,
            "TOKEN_SIGNATURE_INVALID",
        );
    }
    for bad_kid in [
        "unknown-kid",
        "../../../../dev/null",
        "' OR '1'='1' --",
        "",
        "kid\u{0}null",
    ] {
        let token = sign_raw(
            &header(alg, bad_kid).to_string(),
            &good_payload,
            enc,
            keys.signer.alg,
        );
        case(
            "unknown or injected kid",
            "RFC 8725 §3.10; jwt_tool -I -hc kid",
            token,
            "TOKEN_SIGNATURE_INVALID",
        );
    }
    let no_kid = sign_raw(
        &json!({"alg": alg, "typ": "at+jwt"}).to_string(),
        &good_payload,
        enc,
        keys.signer.alg,
    );
    case(
        "no kid",
        "RFC 7515 §4.1.4",
        no_kid,
        "TOKEN_SIGNATURE_INVALID",
    );
    // Key material or key URLs in the header: ignored, never fetched.
    let attacker_signed = |h: Value| {
        sign_raw(
            &h.to_string(),
            &good_payload,
            &attacker.signer.encoding,
            Algorithm::EdDSA,
        )
    };
    for (field, value) in [
        ("jku", json!(jku_url)),
        ("x5u", json!(jku_url)),
        ("jwk", attacker_jwk.clone()),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIUQ2F0Y2htZWlmeW91Y2Fu"])),
    ] {
        let mut h = header("EdDSA", &attacker.signer.kid);
        h[field] = value.clone();
        case(
            "key from the header (attacker kid)",
            "CVE-2018-0114; RFC 8725 §3.10; jwt_tool -X i / -X s",
            attacker_signed(h),
            "TOKEN_SIGNATURE_INVALID",
        );
        let mut h = header(alg, kid);
        h[field] = value;
        case(
            "key from the header (server kid)",
            "CVE-2018-0114; RFC 8725 §3.10",
            attacker_signed(h),
            "TOKEN_SIGNATURE_INVALID",
        );
    }
    let mut crit = header(alg, kid);
    crit["crit"] = json!(["exp"]);
    case(
        "unknown crit",
        "RFC 7515 §4.1.11",
        sign_raw(&crit.to_string(), &good_payload, enc, keys.signer.alg),
        "TOKEN_MALFORMED",
    );
    let mut b64false = header(alg, kid);
    b64false["b64"] = json!(false);
    case(
        "b64: false",
        "RFC 7797 §3",
        sign_raw(&b64false.to_string(), &good_payload, enc, keys.signer.alg),
        "TOKEN_MALFORMED",
    );
    let mut jwt_typ = header(alg, kid);
    jwt_typ["typ"] = json!("JWT");
    case(
        "not an access token (typ JWT)",
        "RFC 8725 §3.11; RFC 9068 §4",
        sign_raw(&jwt_typ.to_string(), &good_payload, enc, keys.signer.alg),
        "TOKEN_MALFORMED",
    );

    let mut swapped = payload(n);
    swapped["sub"] = json!("admin");
    case(
        "payload swapped under a valid signature",
        "RFC 7515 §5.2",
        format!("{}.{}.{}", parts[0], b64(&swapped), parts[2]),
        "TOKEN_SIGNATURE_INVALID",
    );
    case(
        "signature stripped",
        "jwt_tool -X n",
        format!("{}.{}.", parts[0], parts[1]),
        "TOKEN_SIGNATURE_INVALID",
    );
    case(
        "truncated signature",
        "fuzzing",
        good[..good.len() - 10].to_owned(),
        "TOKEN_SIGNATURE_INVALID",
    );
    case(
        "two parts",
        "RFC 7519 §7.2",
        format!("{}.{}", parts[0], parts[1]),
        "TOKEN_MALFORMED",
    );
    case(
        "four parts",
        "RFC 7519 §7.2",
        format!("{good}.{}", parts[2]),
        "TOKEN_MALFORMED",
    );
    case(
        "non-base64url characters",
        "RFC 7515 §2",
        format!("{}.{}.{}", parts[0], parts[1].replace('A', "+"), parts[2]).replacen('e', "/", 1),
        "TOKEN_MALFORMED",
    );
    case(
        "padded base64",
        "RFC 7515 §2",
        format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
        "TOKEN_MALFORMED",
    );
    case(
        "header not JSON",
        "fuzzing",
        format!("{}.{}.{}", B64.encode("{not json"), parts[1], parts[2]),
        "TOKEN_MALFORMED",
    );
    let dup = good_payload.replacen("{", "{\"sub\":\"admin\",", 1);
    case(
        "duplicate JSON keys",
        "RFC 8725 §3.7 (JSON parser differentials)",
        sign_raw(&header(alg, kid).to_string(), &dup, enc, keys.signer.alg),
        "TOKEN_MALFORMED",
    );

    for (field, value, reason) in [
        ("exp", json!("9999999999"), "TOKEN_MALFORMED"),
        ("exp", json!((n + 600) as f64 + 0.5), "TOKEN_MALFORMED"),
        ("exp", json!(-1), "TOKEN_EXPIRED"),
        (
            "exp",
            json!(18_446_744_073_709_551_615u64),
            "TOKEN_MALFORMED",
        ),
        ("exp", json!(1e300), "TOKEN_MALFORMED"),
        ("nbf", json!("0"), "TOKEN_MALFORMED"),
        ("nbf", json!(1.5), "TOKEN_MALFORMED"),
        ("nbf", json!(n + 86_400), "TOKEN_NOT_YET_VALID"),
        ("nbf", json!(9_007_199_254_740_993i64), "TOKEN_MALFORMED"),
        ("iat", json!(n + 86_400), "TOKEN_NOT_YET_VALID"),
        ("aud", json!(5), "TOKEN_MALFORMED"),
        ("iss", json!(7), "TOKEN_MALFORMED"),
        ("iss", json!("https://evil.example"), "ISSUER_MISMATCH"),
        ("sub", json!(null), "TOKEN_MALFORMED"),
    ] {
        let mut p = payload(n);
        p[field] = value;
        case(
            "claim of the wrong type or value",
            "RFC 7519 §2, §4.1; PITFALLS.md",
            with_payload(p),
            reason,
        );
    }
    let mut missing = payload(n);
    missing.as_object_mut().unwrap().remove("exp");
    case(
        "exp missing",
        "RFC 8725 §3.10",
        with_payload(missing),
        "TOKEN_MALFORMED",
    );
    v
}

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
    for case in &all {
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
