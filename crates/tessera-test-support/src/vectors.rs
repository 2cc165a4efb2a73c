//! The language-neutral conformance vectors: every hostile-token case with
//! the reason the server gives, and valid tokens with the claims a verifier
//! must return. Written by `conformance-vectors OUTDIR` (scripts/test runs it
//! before the Go, Node and Python suites) and checked against the server and
//! the Rust `LocalVerifier` by `clients/rust/tests/sdk.rs`, so the file
//! cannot say anything the server does not do.
//!
//! `OUTDIR/vectors.json`: `{issuer, audience, leeway, generated_at, cases:
//! [{name, source, token, reason}], valid: [{name, token, audience, claims:
//! {subject, tenant, session_id, token_id, roles, scopes, expires_at}}]}`;
//! `OUTDIR/signing-key.pem`: the key to start Tessera with
//! (`--issuer tessera-test --signing-key OUTDIR/signing-key.pem`). Tokens are
//! good for ten minutes after generation.
//!
//! Tenant keys (issue #28): `OUTDIR/tenants.toml` gives tenant [`TENANT`]
//! its own key (`OUTDIR/tenant-key.pem`) and issuer; start Tessera with
//! `--tenants OUTDIR/tenants.toml` too. `tenant: {name, issuer, cases:
//! [{name, token, reason}]}` are checked by a verifier of that tenant (and
//! by the server's `Verify`); `reason` `""` means the token verifies.

use std::path::Path;

use serde_json::{json, Value};
use tessera::keys::{alg_name, generate_pem, KeyAlg, KeySet};

use crate::hostile_cases::{cases, header, now, payload, sign_raw};

/// The issuer and audience the vectors are made for.
pub const ISSUER: &str = "tessera-test";
pub const AUDIENCE: &str = "api";
/// The server's default `--leeway`, which the cases assume.
pub const LEEWAY: i64 = 30;

/// The tenant with a key of its own in the vectors, and its issuer.
pub const TENANT: &str = "globex";
pub const TENANT_ISSUER: &str = "https://tessera.test/t/globex";

/// Make a key and the vectors signed with it; write both into `dir`.
pub fn write(dir: &Path) -> std::io::Result<Value> {
    let pem = generate_pem(KeyAlg::Eddsa).map_err(std::io::Error::other)?;
    let keys = KeySet::from_bytes(pem.as_bytes(), None, "k").map_err(std::io::Error::other)?;
    let tenant_pem = generate_pem(KeyAlg::Es256).map_err(std::io::Error::other)?;
    let tenant_keys =
        KeySet::from_bytes(tenant_pem.as_bytes(), None, "t").map_err(std::io::Error::other)?;
    let mut vectors = generate(&keys, &pem);
    vectors["tenant"] = generate_tenant(&keys, &tenant_keys);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("signing-key.pem"), &pem)?;
    std::fs::write(dir.join("tenant-key.pem"), &tenant_pem)?;
    std::fs::write(
        dir.join("tenants.toml"),
        format!(
            "[[tenant]]\nname = {TENANT:?}\nissuer = {TENANT_ISSUER:?}\nsigning_key = \"tenant-key.pem\"\n"
        ),
    )?;
    std::fs::write(
        dir.join("vectors.json"),
        serde_json::to_string_pretty(&vectors)?,
    )?;
    Ok(vectors)
}

/// The vectors for a server that signs with `keys` (its PEM is `pem`).
pub fn generate(keys: &KeySet, pem: &str) -> Value {
    let n = now();
    // Never contacted: a key URL in a header is ignored, not fetched.
    let hostile: Vec<Value> = cases(keys, pem, "http://127.0.0.1:9/jwks.json")
        .into_iter()
        .map(|c| json!({"name": c.name, "source": c.source, "token": c.token, "reason": c.reason}))
        .collect();
    let mut all = hostile;
    all.extend(refused_cases(keys, n));
    json!({
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "leeway": LEEWAY,
        "generated_at": n,
        "cases": all,
        "valid": valid_cases(keys, n),
    })
}

/// `p` signed by the server's signing key, with its header.
fn sign_payload(keys: &KeySet, p: &Value) -> String {
    sign_raw(
        &header(alg_name(keys.signer.alg), &keys.signer.kid).to_string(),
        &p.to_string(),
        &keys.signer.encoding,
        keys.signer.alg,
    )
}

/// Well-signed tokens refused by the window (beyond the leeway), the
/// audience or a binding, with their reasons.
fn refused_cases(keys: &KeySet, n: i64) -> Vec<Value> {
    let mut more = Vec::new();
    let mut refused = |name: &str, p: Value, reason: &str| {
        more.push(json!({"name": name, "source": "leeway and audience", "token": sign_payload(keys, &p), "reason": reason}));
    };
    let mut p = payload(n);
    p["exp"] = json!(n - LEEWAY - 5);
    refused("expired beyond the leeway", p, "TOKEN_EXPIRED");
    let mut p = payload(n);
    p["nbf"] = json!(n + LEEWAY + 60);
    refused("not yet valid beyond the leeway", p, "TOKEN_NOT_YET_VALID");
    let mut p = payload(n);
    p["aud"] = json!(["billing"]);
    refused("another audience", p, "AUDIENCE_MISMATCH");
    let mut p = payload(n);
    p["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    refused("DPoP-bound, no proof", p, "TOKEN_BINDING_MISMATCH");
    let mut p = payload(n);
    p["cnf"] = json!({"x5t#S256": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    refused(
        "certificate-bound, no certificate",
        p,
        "TOKEN_BINDING_MISMATCH",
    );
    more
}

/// Tokens every verifier must accept, with the claims it must report.
fn valid_cases(keys: &KeySet, n: i64) -> Vec<Value> {
    let mut valid = Vec::new();
    let mut good = |name: &str, p: Value| {
        let claims = json!({
            "subject": p["sub"],
            "tenant": p.get("tid").cloned().unwrap_or(json!("")),
            "session_id": p["sid"],
            "token_id": p["jti"],
            "roles": p.get("roles").cloned().unwrap_or(json!([])),
            "scopes": p.get("scope").and_then(Value::as_str).unwrap_or("")
                .split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            "expires_at": p["exp"],
        });
        valid.push(json!({"name": name, "token": sign_payload(keys, &p), "audience": AUDIENCE, "claims": claims}));
    };
    let mut p = payload(n);
    p["roles"] = json!(["admin", "billing-reader"]);
    p["scope"] = json!("read write");
    p["email"] = json!("mallory@example.com");
    good("every claim", p);
    let mut p = payload(n);
    p["aud"] = json!("api");
    p.as_object_mut().map(|o| o.remove("tid"));
    p.as_object_mut().map(|o| o.remove("scope"));
    good("audience as a string, no tenant, no scope", p);
    let mut p = payload(n);
    p["exp"] = json!(n - LEEWAY + 10);
    good("expired within the leeway", p);
    let mut p = payload(n);
    p["aud"] = json!(["billing", "api"]);
    good("one of several audiences", p);
    valid
}

/// The tenant-keyed cases, for a verifier of [`TENANT`]: its own token
/// verifies; its key claiming another tenant or none, or another issuer,
/// and the default key claiming it, are refused with the server's reasons.
pub fn generate_tenant(default: &KeySet, tenant: &KeySet) -> Value {
    let n = now();
    let sign = |keys: &KeySet, tid: Option<&str>, iss: &str| {
        let mut p = payload(n);
        p["iss"] = json!(iss);
        match tid {
            Some(t) => p["tid"] = json!(t),
            None => {
                p.as_object_mut().map(|o| o.remove("tid"));
            }
        }
        sign_payload(keys, &p)
    };
    let case = |name: &str, token: String, reason: &str| json!({"name": name, "token": token, "reason": reason});
    json!({
        "name": TENANT,
        "issuer": TENANT_ISSUER,
        "cases": [
            case("the tenant's own token", sign(tenant, Some(TENANT), TENANT_ISSUER), ""),
            case("the tenant's key claiming another tenant",
                sign(tenant, Some("acme"), TENANT_ISSUER), "TOKEN_SIGNATURE_INVALID"),
            case("the tenant's key claiming no tenant",
                sign(tenant, None, TENANT_ISSUER), "TOKEN_SIGNATURE_INVALID"),
            case("the tenant's key with the default issuer",
                sign(tenant, Some(TENANT), ISSUER), "ISSUER_MISMATCH"),
            case("the default key claiming the tenant",
                sign(default, Some(TENANT), TENANT_ISSUER), "TOKEN_SIGNATURE_INVALID"),
            case("the default key and issuer claiming the tenant",
                sign(default, Some(TENANT), ISSUER), "TOKEN_SIGNATURE_INVALID"),
        ],
    })
}
