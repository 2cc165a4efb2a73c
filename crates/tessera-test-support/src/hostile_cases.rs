//! The hostile-token cases, shared by the server suite
//! (`tests/hostile_tokens.rs`) and the Rust SDK's local verifier
//! (`clients/rust/tests/sdk.rs`), so both must give the same reason codes.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use tessera::keys::KeySet;

pub fn b64(v: &Value) -> String {
    B64.encode(v.to_string())
}

pub fn now() -> i64 {
    tessera::clock::now_ms() / 1000
}

pub fn payload(n: i64) -> Value {
    json!({
        "iss": "tessera-test", "sub": "mallory", "aud": ["api"], "exp": n + 600, "nbf": n - 10,
        "iat": n - 10, "jti": "hostile-jti", "sid": "hostile-sid", "tid": "acme", "scope": "admin"
    })
}

/// Sign `header.payload` (both raw JSON text) with `key` under `alg`.
pub fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{sig}")
}

pub fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "at+jwt", "kid": kid})
}

pub struct Case {
    pub name: &'static str,
    pub source: &'static str,
    pub token: String,
    pub reason: &'static str,
}

/// What every case is made from: the server's key and a good token.
struct Base<'a> {
    n: i64,
    kid: &'a str,
    alg: &'static str,
    enc: &'a EncodingKey,
    key_alg: Algorithm,
    good_payload: String,
    good: String,
    v: Vec<Case>,
}

impl Base<'_> {
    fn case(
        &mut self,
        name: &'static str,
        source: &'static str,
        token: String,
        reason: &'static str,
    ) {
        self.v.push(Case {
            name,
            source,
            token,
            reason,
        })
    }

    /// `header.payload` signed with the server's key.
    fn signed(&self, header: &Value, payload: &str) -> String {
        sign_raw(&header.to_string(), payload, self.enc, self.key_alg)
    }

    fn parts(&self) -> Vec<String> {
        self.good.split('.').map(str::to_owned).collect()
    }
}

/// Cases against a server whose key is `keys` (EdDSA or ES256).
pub fn cases(keys: &KeySet, pem: &str, jku_url: &str) -> Vec<Case> {
    let n = now();
    let kid = keys.signer.kid.as_str();
    let alg = tessera::keys::alg_name(keys.signer.alg);
    let good_payload = payload(n).to_string();
    let good = sign_raw(
        &header(alg, kid).to_string(),
        &good_payload,
        &keys.signer.encoding,
        keys.signer.alg,
    );
    let mut b = Base {
        n,
        kid,
        alg,
        enc: &keys.signer.encoding,
        key_alg: keys.signer.alg,
        good_payload,
        good,
        v: Vec::new(),
    };
    algorithm_cases(&mut b, pem);
    kid_cases(&mut b);
    header_key_cases(&mut b, jku_url);
    header_field_cases(&mut b);
    structure_cases(&mut b);
    claim_cases(&mut b);
    b.v
}

/// `alg: none` and algorithm confusion.
fn algorithm_cases(b: &mut Base, pem: &str) {
    let parts = b.parts();
    for none in ["none", "None", "NONE", "nOnE"] {
        let h = b64(&header(none, b.kid));
        b.case(
            "alg none, no signature",
            "RFC 8725 §3.1; CVE-2015-9235; jwt_tool -X a",
            format!("{h}.{}.", parts[1]),
            "TOKEN_SIGNATURE_INVALID",
        );
        b.case(
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
            &header("HS256", b.kid).to_string(),
            &b.good_payload,
            &EncodingKey::from_secret(&secret),
            Algorithm::HS256,
        );
        b.case(
            "HS256 with the public key as secret",
            "CVE-2016-10555; RFC 8725 §2.1; jwt_tool -X k",
            token,
            "TOKEN_SIGNATURE_INVALID",
        );
    }
}

/// Unknown, injected or missing `kid`.
fn kid_cases(b: &mut Base) {
    for bad_kid in [
        "unknown-kid",
        "../../../../dev/null",
        "' OR '1'='1' --",
        "",
        "kid\u{0}null",
    ] {
        let token = b.signed(&header(b.alg, bad_kid), &b.good_payload);
        b.case(
            "unknown or injected kid",
            "RFC 8725 §3.10; jwt_tool -I -hc kid",
            token,
            "TOKEN_SIGNATURE_INVALID",
        );
    }
    let no_kid = b.signed(&json!({"alg": b.alg, "typ": "at+jwt"}), &b.good_payload);
    b.case(
        "no kid",
        "RFC 7515 §4.1.4",
        no_kid,
        "TOKEN_SIGNATURE_INVALID",
    );
}

/// Key material or key URLs in the header: ignored, never fetched.
fn header_key_cases(b: &mut Base, jku_url: &str) {
    let attacker = KeySet::ephemeral().unwrap();
    let attacker_jwk: Value =
        serde_json::from_str::<Value>(attacker.jwks_json()).unwrap()["keys"][0].clone();
    let attacker_signed = |h: Value| {
        sign_raw(
            &h.to_string(),
            &b.good_payload,
            &attacker.signer.encoding,
            Algorithm::EdDSA,
        )
    };
    let mut found = Vec::new();
    for (field, value) in [
        ("jku", json!(jku_url)),
        ("x5u", json!(jku_url)),
        ("jwk", attacker_jwk.clone()),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIUQ2F0Y2htZWlmeW91Y2Fu"])),
    ] {
        let mut h = header("EdDSA", &attacker.signer.kid);
        h[field] = value.clone();
        found.push((
            "key from the header (attacker kid)",
            "CVE-2018-0114; RFC 8725 §3.10; jwt_tool -X i / -X s",
            attacker_signed(h),
        ));
        let mut h = header(b.alg, b.kid);
        h[field] = value;
        found.push((
            "key from the header (server kid)",
            "CVE-2018-0114; RFC 8725 §3.10",
            attacker_signed(h),
        ));
    }
    for (name, source, token) in found {
        b.case(name, source, token, "TOKEN_SIGNATURE_INVALID");
    }
}

/// Header fields this server does not accept: `crit`, `b64`, a `typ` that
/// is not an access token's.
fn header_field_cases(b: &mut Base) {
    for (name, source, field, value) in [
        ("unknown crit", "RFC 7515 §4.1.11", "crit", json!(["exp"])),
        ("b64: false", "RFC 7797 §3", "b64", json!(false)),
        (
            "not an access token (typ JWT)",
            "RFC 8725 §3.11; RFC 9068 §4",
            "typ",
            json!("JWT"),
        ),
    ] {
        let mut h = header(b.alg, b.kid);
        h[field] = value;
        let token = b.signed(&h, &b.good_payload);
        b.case(name, source, token, "TOKEN_MALFORMED");
    }
}

/// Tampered or malformed compact serialisations.
fn structure_cases(b: &mut Base) {
    let parts = b.parts();
    let mut swapped = payload(b.n);
    swapped["sub"] = json!("admin");
    b.case(
        "payload swapped under a valid signature",
        "RFC 7515 §5.2",
        format!("{}.{}.{}", parts[0], b64(&swapped), parts[2]),
        "TOKEN_SIGNATURE_INVALID",
    );
    b.case(
        "signature stripped",
        "jwt_tool -X n",
        format!("{}.{}.", parts[0], parts[1]),
        "TOKEN_SIGNATURE_INVALID",
    );
    b.case(
        "truncated signature",
        "fuzzing",
        b.good[..b.good.len() - 10].to_owned(),
        "TOKEN_SIGNATURE_INVALID",
    );
    b.case(
        "two parts",
        "RFC 7519 §7.2",
        format!("{}.{}", parts[0], parts[1]),
        "TOKEN_MALFORMED",
    );
    b.case(
        "four parts",
        "RFC 7519 §7.2",
        format!("{}.{}", b.good, parts[2]),
        "TOKEN_MALFORMED",
    );
    b.case(
        "non-base64url characters",
        "RFC 7515 §2",
        format!("{}.{}.{}", parts[0], parts[1].replace('A', "+"), parts[2]).replacen('e', "/", 1),
        "TOKEN_MALFORMED",
    );
    b.case(
        "padded base64",
        "RFC 7515 §2",
        format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
        "TOKEN_MALFORMED",
    );
    b.case(
        "header not JSON",
        "fuzzing",
        format!("{}.{}.{}", B64.encode("{not json"), parts[1], parts[2]),
        "TOKEN_MALFORMED",
    );
    let dup = b.good_payload.replacen("{", "{\"sub\":\"admin\",", 1);
    b.case(
        "duplicate JSON keys",
        "RFC 8725 §3.7 (JSON parser differentials)",
        b.signed(&header(b.alg, b.kid), &dup),
        "TOKEN_MALFORMED",
    );
}

/// Claims of the wrong type or value, or missing.
fn claim_cases(b: &mut Base) {
    for (field, value, reason) in [
        ("exp", json!("9999999999"), "TOKEN_MALFORMED"),
        ("exp", json!((b.n + 600) as f64 + 0.5), "TOKEN_MALFORMED"),
        ("exp", json!(-1), "TOKEN_EXPIRED"),
        (
            "exp",
            json!(18_446_744_073_709_551_615u64),
            "TOKEN_MALFORMED",
        ),
        ("exp", json!(1e300), "TOKEN_MALFORMED"),
        ("nbf", json!("0"), "TOKEN_MALFORMED"),
        ("nbf", json!(1.5), "TOKEN_MALFORMED"),
        ("nbf", json!(b.n + 86_400), "TOKEN_NOT_YET_VALID"),
        ("nbf", json!(9_007_199_254_740_993i64), "TOKEN_MALFORMED"),
        ("iat", json!(b.n + 86_400), "TOKEN_NOT_YET_VALID"),
        ("aud", json!(5), "TOKEN_MALFORMED"),
        ("iss", json!(7), "TOKEN_MALFORMED"),
        ("iss", json!("https://evil.example"), "ISSUER_MISMATCH"),
        ("sub", json!(null), "TOKEN_MALFORMED"),
    ] {
        let mut p = payload(b.n);
        p[field] = value;
        b.case(
            "claim of the wrong type or value",
            "RFC 7519 §2, §4.1; docs/pitfalls.md",
            b.signed(&header(b.alg, b.kid), &p.to_string()),
            reason,
        );
    }
    let mut missing = payload(b.n);
    missing.as_object_mut().unwrap().remove("exp");
    b.case(
        "exp missing",
        "RFC 8725 §3.10",
        b.signed(&header(b.alg, b.kid), &missing.to_string()),
        "TOKEN_MALFORMED",
    );
}
