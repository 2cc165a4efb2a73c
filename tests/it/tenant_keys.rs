//! A key and an issuer per tenant (issue #28, `--tenants`): a tenant's
//! tokens carry its issuer and its key's `kid`; its key vouches for no
//! other tenant, and the default key for no tenant with a key of its own;
//! its JWK set (gRPC and HTTP) holds its keys only; SIGHUP rotates one
//! tenant's key without touching the others; and each tenant's budgets
//! are its own.

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera::keys::{generate_pem, KeySet};
use tessera::pb;
use tessera::tokens::{self, AccessClaims};

use crate::key_rotation::{kids, wait_kids_of};
use crate::support::*;

const ACME_ISSUER: &str = "https://auth.example.com/t/acme";
const GLOBEX_ISSUER: &str = "https://auth.example.com/t/globex";

fn acme_and_globex(acme_extra: &str) -> TenantsFile {
    TenantsFile::new(&[
        ("acme", ACME_ISSUER, acme_extra),
        ("globex", GLOBEX_ISSUER, ""),
    ])
}

/// A server on `backend` whose tenants file gives acme (its entry with
/// `acme_extra`) and globex their own keys, with `flags`.
async fn serve_tenants(
    backend: Backend,
    acme_extra: &str,
    flags: &[&str],
) -> (Env, TenantsFile, Server) {
    let env = Env::new(backend).await;
    let tenants = acme_and_globex(acme_extra);
    let mut all = vec![tenants.flag()];
    all.extend(flags.iter().map(|f| f.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let server = env.server(&all).await;
    (env, tenants, server)
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn issue_for(tenant: &str, subject: &str) -> pb::IssueRequest {
    pb::IssueRequest {
        tenant: tenant.into(),
        ..issue_request(subject)
    }
}

async fn issue_in(c: &mut Client, tenant: &str, subject: &str) -> pb::TokenPair {
    c.issue(issue_for(tenant, subject))
        .await
        .expect("issue")
        .into_inner()
        .tokens
        .expect("tokens")
}

/// A token made by hand: `tid`, `iss`, signed with `keys`.
fn forged(keys: &KeySet, tid: &str, iss: &str) -> String {
    let now = tessera::clock::now_ms() / 1000;
    let claims = AccessClaims {
        iss: iss.into(),
        sub: "mallory".into(),
        aud: vec!["api".into()],
        exp: now + 600,
        nbf: now,
        iat: now,
        jti: format!("forged-{tid}-{iss}"),
        sid: "forged-sid".into(),
        tid: tid.into(),
        roles: vec![],
        scope: String::new(),
        cnf: None,
        act: None,
        custom: Default::default(),
    };
    tokens::mint(keys, &claims).unwrap()
}

async fn jwks(c: &mut Client, tenant: &str) -> pb::GetJwksResponse {
    c.get_jwks(pb::GetJwksRequest {
        tenant: tenant.into(),
    })
    .await
    .expect("GetJwks")
    .into_inner()
}

async fn tenant_tokens_carry_its_issuer_and_key(backend: Backend) {
    let (env, tenants, s) = serve_tenants(backend, "", &[]).await;
    let mut c = s.client().await;
    let acme_kid = tenants.keyset("acme").signer.kid;
    let default_kid = env.key.keyset().signer.kid;

    let pair = issue_in(&mut c, "acme", "alice").await;
    assert_eq!(kid_of(&pair.access_token), acme_kid);
    let claims = jwt_payload(&pair.access_token);
    assert_eq!(claims["iss"], ACME_ISSUER);
    assert_eq!(claims["tid"], "acme");
    for request in [
        verify_request(&pair.access_token),
        strong(&pair.access_token),
    ] {
        let r = c.verify(request).await.expect("acme's token verifies");
        let claims = r.into_inner().claims.unwrap();
        assert_eq!(claims.tenant, "acme");
        assert_eq!(claims.issuer, ACME_ISSUER);
    }
    // A Refresh of the session mints with acme's key and issuer again.
    let next = refreshed(&mut c, &pair.refresh_token).await;
    assert_eq!(kid_of(&next.access_token), acme_kid);
    assert_eq!(jwt_payload(&next.access_token)["iss"], ACME_ISSUER);
    c.verify(verify_request(&next.access_token)).await.unwrap();
    // So does an Exchange of its token (token exchange, #29).
    let derived = c
        .exchange(pb::ExchangeRequest {
            subject_token: next.access_token.clone(),
            audience: vec!["billing".into()],
            ..Default::default()
        })
        .await
        .expect("acme's token exchanges")
        .into_inner();
    assert_eq!(kid_of(&derived.access_token), acme_kid);
    assert_eq!(jwt_payload(&derived.access_token)["iss"], ACME_ISSUER);
    c.verify(pb::VerifyRequest {
        audience: "billing".into(),
        ..strong(&derived.access_token)
    })
    .await
    .expect("the exchanged token verifies");

    // A tenant without an entry: the default key and issuer, as before.
    let other = issue_in(&mut c, "initech", "bob").await;
    assert_eq!(kid_of(&other.access_token), default_kid);
    assert_eq!(jwt_payload(&other.access_token)["iss"], "tessera-test");
    c.verify(strong(&other.access_token)).await.unwrap();
}

async fn a_key_vouches_only_for_its_own_tenant(backend: Backend) {
    let (env, tenants, s) = serve_tenants(backend, "", &[]).await;
    let mut c = s.client().await;
    let acme = tenants.keyset("acme");
    let default = env.key.keyset();

    // The control: made by hand the same way, acme's own claims verify
    // (default consistency: no session behind it to read).
    c.verify(verify_request(&forged(&acme, "acme", ACME_ISSUER)))
        .await
        .expect("a token of acme's key, tenant and issuer verifies");
    c.verify(verify_request(&forged(&default, "initech", "tessera-test")))
        .await
        .expect("the default key still vouches for a tenant without a key");

    for (token, want) in [
        // acme's key claiming globex, with either issuer.
        (
            forged(&acme, "globex", ACME_ISSUER),
            "TOKEN_SIGNATURE_INVALID",
        ),
        (
            forged(&acme, "globex", GLOBEX_ISSUER),
            "TOKEN_SIGNATURE_INVALID",
        ),
        // acme's key claiming a tenant without a key of its own.
        (
            forged(&acme, "initech", ACME_ISSUER),
            "TOKEN_SIGNATURE_INVALID",
        ),
        // acme's key and tenant, another issuer.
        (forged(&acme, "acme", "tessera-test"), "ISSUER_MISMATCH"),
        (forged(&acme, "acme", GLOBEX_ISSUER), "ISSUER_MISMATCH"),
        // The default key claiming a tenant that has its own.
        (
            forged(&default, "acme", "tessera-test"),
            "TOKEN_SIGNATURE_INVALID",
        ),
        (
            forged(&default, "globex", GLOBEX_ISSUER),
            "TOKEN_SIGNATURE_INVALID",
        ),
    ] {
        expect_reason(c.verify(verify_request(&token)).await, want);
        expect_reason(c.verify(strong(&token)).await, want);
    }
    // An unknown key, as before.
    let stranger = KeySet::ephemeral().unwrap();
    expect_reason(
        c.verify(verify_request(&forged(&stranger, "acme", ACME_ISSUER)))
            .await,
        "TOKEN_SIGNATURE_INVALID",
    );
}

on_both_stores!(
    tenant_tokens_carry_its_issuer_and_key,
    a_key_vouches_only_for_its_own_tenant,
    one_tenants_budgets_leave_anothers,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_and_revocation_by_token_follow_the_tenant_key() {
    let (_env, tenants, s) =
        serve_tenants(Backend::Memory, "", &["--http-listen=127.0.0.1:0"]).await;
    let http = s.http.unwrap();
    let mut c = s.client().await;
    let pair = issue_in(&mut c, "acme", "alice").await;
    let introspect = |token: String| async move {
        let body = format!("token={token}");
        let (status, _, body) = http_request(
            http,
            "POST",
            "/oauth2/introspect",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    let active = introspect(pair.access_token.clone()).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["iss"], ACME_ISSUER);
    let globex_claim = forged(&tenants.keyset("acme"), "globex", ACME_ISSUER);
    assert_eq!(
        introspect(globex_claim.clone()).await,
        serde_json::json!({"active": false})
    );
    // Revoking by a token no key vouches for revokes nothing (RFC 7009).
    c.revoke(revoke_token(&globex_claim)).await.unwrap();
    c.verify(verify_request(&pair.access_token)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_jwks_has_only_its_keys() {
    let (env, tenants, s) =
        serve_tenants(Backend::Memory, "", &["--http-listen=127.0.0.1:0"]).await;
    let mut c = s.client().await;
    let acme_kid = tenants.keyset("acme").signer.kid;
    let globex_kid = tenants.keyset("globex").signer.kid;
    let default_kid = env.key.keyset().signer.kid;

    let acme = jwks(&mut c, "acme").await;
    assert_eq!(kids(&acme.jwks_json), vec![acme_kid.clone()]);
    assert_eq!(acme.issuer, ACME_ISSUER);
    let globex = jwks(&mut c, "globex").await;
    assert_eq!(kids(&globex.jwks_json), vec![globex_kid.clone()]);
    assert_eq!(globex.issuer, GLOBEX_ISSUER);
    // The default keys: no tenant's key among them.
    for tenant in ["", "initech"] {
        let d = jwks(&mut c, tenant).await;
        assert_eq!(kids(&d.jwks_json), vec![default_kid.clone()], "{tenant:?}");
        assert_eq!(d.issuer, "tessera-test");
    }
    let refused = c
        .get_jwks(pb::GetJwksRequest {
            tenant: "bad\u{202e}name".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    // Over HTTP: the OAuth port's tenant paths, and the default ones.
    let http = s.http.unwrap();
    let (status, body) = http_get(http, "/t/acme/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(kids(&body), vec![acme_kid.clone()]);
    let (status, body) = http_get(http, "/t/initech/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(kids(&body), vec![default_kid.clone()]);
    for server in [http, s.admin] {
        let (status, body) = http_get(server, "/.well-known/jwks.json").await;
        assert_eq!(status, 200);
        assert_eq!(kids(&body), vec![default_kid.clone()]);
    }
    let (status, body) = http_get(s.admin, "/t/globex/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(kids(&body), vec![globex_kid.clone()]);
    let (status, body) = http_get(http, "/t/acme/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["issuer"], ACME_ISSUER);
    assert_eq!(
        meta["jwks_uri"],
        format!("http://{http}/t/acme/.well-known/jwks.json")
    );
    let (_, body) = http_get(http, "/t/initech/.well-known/openid-configuration").await;
    let meta: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["issuer"], "tessera-test");
    let (status, _) = http_get(http, "/t/bad%E2%80%AEname/.well-known/jwks.json").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_file_is_checked_at_start_up() {
    let key = TestKey::new();
    let start = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.pem"),
            generate_pem(tessera::config::KeyAlg::Eddsa).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.pem"),
            generate_pem(tessera::config::KeyAlg::Es256).unwrap(),
        )
        .unwrap();
        std::fs::copy(&key.path, dir.path().join("default.pem")).unwrap();
        let path = dir.path().join("tenants.toml");
        std::fs::write(&path, text).unwrap();
        let args = tessera::config::ServeArgs::parse_with_file(vec![
            "--issuer=tessera-test".into(),
            format!("--signing-key={}", key.path.display()),
            format!("--tenants={}", path.display()),
        ])
        .unwrap();
        tessera::keyload::load_tenants(&args).map(|_| ())
    };
    let entry = |name: &str, issuer: &str, key: &str| {
        format!("[[tenant]]\nname = {name:?}\nissuer = {issuer:?}\nsigning_key = {key:?}\n")
    };
    start(&(entry("acme", "i-a", "a.pem") + &entry("globex", "i-b", "b.pem")))
        .expect("a good file");
    for (text, want) in [
        (
            entry("acme", "i-a", "a.pem") + &entry("acme", "i-b", "b.pem"),
            "listed twice",
        ),
        (
            entry("acme", "i-a", "a.pem") + &entry("globex", "i-a", "b.pem"),
            "issuer",
        ),
        (entry("acme", "tessera-test", "a.pem"), "--issuer"),
        (entry("acme", "i-a", "missing.pem"), "missing.pem"),
        (
            entry("acme", "i-a", "a.pem") + &entry("globex", "i-b", "a.pem"),
            "belongs to both",
        ),
        (entry("acme", "i-a", "default.pem"), "the default keys"),
        (entry("", "i-a", "a.pem"), "name"),
        (entry("acme", "", "a.pem"), "issuer"),
        (
            entry("acme", "i-a", "a.pem") + "issue_rate = \"fast\"\n",
            "issue_rate",
        ),
        (
            "[[tenant]]\nname = \"acme\"\nissuer = \"i\"\nsigning_key = \"a.pem\"\ncolour = 1\n"
                .to_owned(),
            "colour",
        ),
    ] {
        let err = start(&text).expect_err(&text);
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_one_tenants_key_leaves_the_others_valid() {
    let tenants = acme_and_globex("verify_keys = [\"acme-older.pem\"]");
    let older = tenants.dir().join("acme-older.pem");
    std::fs::copy(tenants.key_path("acme"), &older).unwrap();
    let default = TestKey::new();
    let process = Process::start(&[
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", default.path.display()),
        tenants.flag(),
    ])
    .await;
    let mut c = process.server().client().await;
    let acme_before = issue_in(&mut c, "acme", "alice").await;
    let globex = issue_in(&mut c, "globex", "bob").await;
    let initech = issue_in(&mut c, "initech", "carol").await;
    let globex_jwks = jwks(&mut c, "globex").await.jwks_json;
    // The CLI asks for a tenant's keys too.
    let out = std::process::Command::new(tessera_binary())
        .args([
            "jwks",
            "--addr",
            &process.server().url(),
            "--tenant",
            "globex",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        kids(&String::from_utf8(out.stdout).unwrap()),
        kids(&globex_jwks)
    );
    let default_jwks = jwks(&mut c, "").await.jwks_json;

    // Publish then sign, in one step here: acme's new key signs, the old
    // one verifies.
    std::fs::write(
        tenants.key_path("acme"),
        generate_pem(tessera::config::KeyAlg::Es256).unwrap(),
    )
    .unwrap();
    process.signal("HUP");
    let acme_kids = wait_kids_of(&mut c, "acme", 2).await;
    let acme_after = issue_in(&mut c, "acme", "alice").await;
    assert_ne!(
        kid_of(&acme_after.access_token),
        kid_of(&acme_before.access_token)
    );
    assert_eq!(
        acme_kids[0],
        kid_of(&acme_after.access_token),
        "active first"
    );
    assert_eq!(jwks(&mut c, "globex").await.jwks_json, globex_jwks);
    assert_eq!(jwks(&mut c, "").await.jwks_json, default_jwks);
    for token in [&acme_before, &acme_after, &globex, &initech] {
        c.verify(verify_request(&token.access_token))
            .await
            .expect("every tenant's token verifies after acme's rotation");
    }

    // A tenants file that fails keeps everything in force.
    let good = std::fs::read_to_string(&tenants.path).unwrap();
    std::fs::write(&tenants.path, "[[tenant]]\nname = 1\n").unwrap();
    process.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process.log_text().contains("key reload failed") {
        assert!(Instant::now() < deadline, "the bad file was never reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(wait_kids_of(&mut c, "acme", 2).await, acme_kids);
    c.verify(verify_request(&acme_before.access_token))
        .await
        .unwrap();
    std::fs::write(&tenants.path, good).unwrap();

    // Drop acme's old key: its tokens fail, nobody else's.
    std::fs::copy(tenants.key_path("acme"), &older).unwrap();
    process.signal("HUP");
    wait_kids_of(&mut c, "acme", 1).await;
    expect_reason(
        c.verify(verify_request(&acme_before.access_token)).await,
        "TOKEN_SIGNATURE_INVALID",
    );
    for token in [&acme_after, &globex, &initech] {
        c.verify(verify_request(&token.access_token)).await.unwrap();
    }
}

async fn one_tenants_budgets_leave_anothers(backend: Backend) {
    // Rates of 1 a second: a slow machine can only let more calls through,
    // so the refusals below are what the budgets alone make.
    let (_env, _tenants, s) = serve_tenants(
        backend,
        "issue_rate = \"1:2\"\nrefresh_rate = \"1:1\"",
        &["--caller-rate=Issue=1:6"],
    )
    .await;
    let mut c = s.client().await;

    // acme spends its Issue budget (2), then is refused however often it
    // tries; its refusals spend neither the caller's budget (6) nor globex's.
    let a0 = issue_in(&mut c, "acme", "a0").await;
    let a1 = issue_in(&mut c, "acme", "a1").await;
    let mut refused = 0;
    for i in 0..10 {
        match c.issue(issue_for("acme", &format!("flood{i}"))).await {
            Err(status) if reason(&status) == "RATE_LIMITED" => refused += 1,
            Err(status) => panic!("unexpected refusal: {status:?}"),
            Ok(_) => {}
        }
    }
    assert!(
        refused >= 8,
        "acme's budget held only {refused} of 10 times"
    );
    let g0 = issue_in(&mut c, "globex", "g0").await;
    let g1 = issue_in(&mut c, "globex", "g1").await;
    issue_in(&mut c, "globex", "g2").await;

    // Refresh: one of acme's rotates, the next is refused; globex's rotate.
    refreshed(&mut c, &a0.refresh_token).await;
    expect_reason(
        c.refresh(refresh_req(&a1.refresh_token)).await,
        "RATE_LIMITED",
    );
    refreshed(&mut c, &g0.refresh_token).await;
    refreshed(&mut c, &g1.refresh_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_session_cap_is_its_own() {
    let (_env, _tenants, s) = serve_tenants(
        Backend::Memory,
        "max_sessions_per_subject = 2",
        &["--max-sessions-per-subject=5"],
    )
    .await;
    let mut c = s.client().await;
    for tenant in ["acme", "globex"] {
        for _ in 0..3 {
            issue_in(&mut c, tenant, "alice").await;
        }
    }
    let live = |tenant: &'static str| {
        let mut c = c.clone();
        async move {
            c.list_sessions(pb::ListSessionsRequest {
                tenant: tenant.into(),
                subject: "alice".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .sessions
            .len()
        }
    };
    assert_eq!(live("acme").await, 2, "acme's cap evicts the oldest");
    assert_eq!(live("globex").await, 3, "globex keeps the flag's cap");
}
