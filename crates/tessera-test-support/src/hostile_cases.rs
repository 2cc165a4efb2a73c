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

/// Cases against a server whose key is `keys` (EdDSA or ES256).
pub fn cases(keys: &KeySet, pem: &str, jku_url: &str) -> Vec<Case> {
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
            "RFC 7519 §2, §4.1; docs/pitfalls.md",
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
