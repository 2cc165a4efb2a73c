//! DPoP-bound sessions (RFC 9449) over real gRPC: a session issued with the
//! client key's thumbprint (`dpop_jkt`) gets tokens carrying `cnf.jkt`, and
//! Verify and Refresh then need a fresh proof signed by that key. The
//! hostile proofs are a table, each with its source and its exact reason.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use crate::hostile_cases::{now, sign_raw};
use crate::support::*;
use tessera::config::KeyAlg;
use tessera::keys::{generate_pem, KeySet};
use tessera::pb;
use tessera_core::dpop::{access_token_hash, jwk_thumbprint};

const METHOD: &str = "GET";
const URL: &str = "https://api.example.com/orders";

/// A client's DPoP key: its signer and its public JWK.
struct ClientKey {
    encoding: EncodingKey,
    alg: Algorithm,
    jwk: Value,
}

impl ClientKey {
    fn new(alg: KeyAlg) -> ClientKey {
        let set =
            KeySet::from_bytes(generate_pem(alg).unwrap().as_bytes(), None, "client").unwrap();
        let jwks: Value = serde_json::from_str(set.jwks_json()).unwrap();
        ClientKey {
            alg: set.signer.alg,
            encoding: set.signer.encoding.clone(),
            jwk: jwks["keys"][0].clone(),
        }
    }

    fn jkt(&self) -> String {
        jwk_thumbprint(&self.jwk).unwrap()
    }

    fn alg_name(&self) -> &'static str {
        tessera::keys::alg_name(self.alg)
    }

    /// A proof with `header` and `claims` (as given, unchecked).
    fn sign(&self, header: &Value, claims: &Value) -> String {
        sign_raw(
            &header.to_string(),
            &claims.to_string(),
            &self.encoding,
            self.alg,
        )
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg_name(), "jwk": self.jwk})
    }

    /// A good proof for `method url`, with `ath` of `token` when given.
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        let mut claims = json!({
            "jti": tessera::authority::random_b64::<12>(),
            "htm": method,
            "htu": url,
            "iat": now(),
        });
        if let Some(t) = token {
            claims["ath"] = json!(access_token_hash(t));
        }
        self.sign(&self.header(), &claims)
    }
}

fn verify_with(token: &str, proof: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        dpop_proof: proof.into(),
        http_method: METHOD.into(),
        http_url: URL.into(),
        ..verify_request(token)
    }
}

fn refresh_with(token: &str, proof: &str) -> pb::RefreshRequest {
    pb::RefreshRequest {
        refresh_token: token.into(),
        dpop_proof: proof.into(),
        http_method: "POST".into(),
        http_url: "https://auth.example.com/token".into(),
        ..Default::default()
    }
}

async fn bound_pair(c: &mut Client, key: &ClientKey, subject: &str) -> pb::TokenPair {
    c.issue(pb::IssueRequest {
        dpop_jkt: key.jkt(),
        ..issue_request(subject)
    })
    .await
    .expect("issue")
    .into_inner()
    .tokens
    .unwrap()
}

use crate::support::jwt_payload as payload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_sessions_verify_and_refresh_only_with_proofs_of_their_key() {
    let env = Env::new(Backend::Redis).await;
    let a = env.server(&["--issue-rate=off"]).await;
    let b = env.server(&["--issue-rate=off"]).await;
    let mut c = a.client().await;
    let mut other_replica = b.client().await;
    let key = ClientKey::new(KeyAlg::Es256);
    let pair = bound_pair(&mut c, &key, "alice").await;
    assert_eq!(
        payload(&pair.access_token)["cnf"]["jkt"],
        key.jkt().as_str()
    );

    // Happy path: a fresh proof verifies, on either replica.
    let proof = key.proof(METHOD, URL, Some(&pair.access_token));
    c.verify(verify_with(&pair.access_token, &proof))
        .await
        .expect("a fresh proof");
    // The same proof again: replayed, here and on the other replica.
    expect_reason(
        c.verify(verify_with(&pair.access_token, &proof)).await,
        "DPOP_PROOF_REPLAYED",
    );
    expect_reason(
        other_replica
            .verify(verify_with(&pair.access_token, &proof))
            .await,
        "DPOP_PROOF_REPLAYED",
    );
    other_replica
        .verify(verify_with(
            &pair.access_token,
            &key.proof(METHOD, URL, Some(&pair.access_token)),
        ))
        .await
        .expect("a fresh proof on the other replica");

    // Refresh: without a proof, or with another key's, fails without
    // counting as reuse; with the key's proof it rotates, and the new
    // tokens stay bound.
    let stranger = ClientKey::new(KeyAlg::Es256);
    expect_reason(
        c.refresh(refresh_req(&pair.refresh_token)).await,
        "TOKEN_BINDING_MISMATCH",
    );
    let foreign = stranger.proof("POST", "https://auth.example.com/token", None);
    expect_reason(
        c.refresh(refresh_with(&pair.refresh_token, &foreign)).await,
        "TOKEN_BINDING_MISMATCH",
    );
    let own = key.proof("POST", "https://auth.example.com/token", None);
    let rotated = c
        .refresh(refresh_with(&pair.refresh_token, &own))
        .await
        .expect("the session survived the refused refreshes")
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(
        payload(&rotated.access_token)["cnf"]["jkt"],
        key.jkt().as_str()
    );
    expect_reason(
        c.verify(verify_request(&rotated.access_token)).await,
        "TOKEN_BINDING_MISMATCH",
    );

    // Sliding renewal keeps the binding: the successor carries cnf.jkt.
    let renewing = env.server(&["--issue-rate=off", "--access-ttl=4m"]).await;
    let mut r = renewing.client().await;
    let short = bound_pair(&mut r, &key, "rene").await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let renewed = r
        .verify(pb::VerifyRequest {
            renew: true,
            ..verify_with(
                &short.access_token,
                &key.proof(METHOD, URL, Some(&short.access_token)),
            )
        })
        .await
        .expect("renew")
        .into_inner()
        .renewed_access_token;
    assert!(!renewed.is_empty(), "in the critical band");
    assert_eq!(payload(&renewed)["cnf"]["jkt"], key.jkt().as_str());

    // An unbound token with a proof verifies normally.
    let free = issue(&mut c, "bob").await;
    c.verify(verify_with(
        &free.access_token,
        &stranger.proof(METHOD, URL, Some(&free.access_token)),
    ))
    .await
    .expect("unbound");
    // EdDSA keys work the same way.
    let ed = ClientKey::new(KeyAlg::Eddsa);
    let ed_pair = bound_pair(&mut c, &ed, "carol").await;
    c.verify(verify_with(
        &ed_pair.access_token,
        &ed.proof(METHOD, URL, Some(&ed_pair.access_token)),
    ))
    .await
    .expect("an EdDSA proof");
    // A thumbprint that is not one.
    let status = expect_reason(
        c.issue(pb::IssueRequest {
            dpop_jkt: "short".into(),
            ..issue_request("dan")
        })
        .await,
        "FIELD_INVALID",
    );
    assert_eq!(violations(&status), vec!["dpop_jkt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_dpop_proofs_are_refused_with_their_reason() {
    let env = Env::new(Backend::Memory).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let key = ClientKey::new(KeyAlg::Es256);
    let pair = bound_pair(&mut c, &key, "alice").await;
    let token = pair.access_token.clone();
    let other_token = bound_pair(&mut c, &key, "alice").await.access_token;
    let stranger = ClientKey::new(KeyAlg::Es256);
    let claims = |over: Value| {
        let mut c = json!({
            "jti": tessera::authority::random_b64::<12>(),
            "htm": METHOD, "htu": URL, "iat": now(),
            "ath": access_token_hash(&token),
        });
        for (k, v) in over.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let with_header = |over: Value| {
        let mut h = key.header();
        for (k, v) in over.as_object().unwrap() {
            h[k] = v.clone();
        }
        h
    };
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = json!("AAAA");
    let b64 = |v: &Value| B64.encode(v.to_string());
    let hs256_with_public_key = {
        let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk});
        let secret = serde_json::to_vec(&key.jwk).unwrap();
        sign_raw(
            &header.to_string(),
            &claims(json!({})).to_string(),
            &EncodingKey::from_secret(&secret),
            Algorithm::HS256,
        )
    };
    // (case, source, proof, reason)
    let cases: Vec<(&str, &str, String, &str)> = vec![
        (
            "another key than cnf.jkt",
            "RFC 9449 §4.3 (12)",
            stranger.sign(&stranger.header(), &claims(json!({}))),
            "TOKEN_BINDING_MISMATCH",
        ),
        (
            "wrong htm",
            "RFC 9449 §4.3 (8)",
            key.sign(&key.header(), &claims(json!({"htm": "POST"}))),
            "DPOP_PROOF_INVALID",
        ),
        (
            "wrong htu",
            "RFC 9449 §4.3 (9)",
            key.sign(
                &key.header(),
                &claims(json!({"htu": "https://evil.example.com/orders"})),
            ),
            "DPOP_PROOF_INVALID",
        ),
        (
            "htu with a query",
            "RFC 9449 §4.2",
            key.sign(&key.header(), &claims(json!({"htu": format!("{URL}?a=1")}))),
            "DPOP_PROOF_INVALID",
        ),
        (
            "iat too old",
            "RFC 9449 §4.3 (11)",
            key.sign(&key.header(), &claims(json!({"iat": now() - 600}))),
            "DPOP_PROOF_INVALID",
        ),
        (
            "iat in the future",
            "RFC 9449 §4.3 (11)",
            key.sign(&key.header(), &claims(json!({"iat": now() + 600}))),
            "DPOP_PROOF_INVALID",
        ),
        (
            "alg none",
            "RFC 9449 §4.3 (5), CVE-2015-9235",
            format!(
                "{}.{}.",
                b64(&with_header(json!({"alg": "none"}))),
                b64(&claims(json!({})))
            ),
            "DPOP_PROOF_INVALID",
        ),
        (
            "HS256 keyed with the public key",
            "RFC 9449 §4.3 (5), CVE-2016-10555",
            hs256_with_public_key,
            "DPOP_PROOF_INVALID",
        ),
        (
            "a private key inside jwk",
            "RFC 9449 §4.3 (6)",
            key.sign(
                &with_header(json!({"jwk": private_jwk})),
                &claims(json!({})),
            ),
            "DPOP_PROOF_INVALID",
        ),
        (
            "missing ath",
            "RFC 9449 §4.3 (10)",
            key.sign(&key.header(), &claims(json!({"ath": null}))),
            "DPOP_PROOF_INVALID",
        ),
        (
            "wrong ath",
            "RFC 9449 §4.3 (10)",
            key.sign(
                &key.header(),
                &claims(json!({"ath": access_token_hash("another token")})),
            ),
            "DPOP_PROOF_INVALID",
        ),
        (
            "a proof for another access token",
            "RFC 9449 §7.1",
            key.proof(METHOD, URL, Some(&other_token)),
            "DPOP_PROOF_INVALID",
        ),
        (
            "typ JWT",
            "RFC 9449 §4.3 (4)",
            key.sign(&with_header(json!({"typ": "JWT"})), &claims(json!({}))),
            "DPOP_PROOF_INVALID",
        ),
        (
            "no jti",
            "RFC 9449 §4.2",
            key.sign(&key.header(), &claims(json!({"jti": null}))),
            "DPOP_PROOF_INVALID",
        ),
        (
            "signature of another key",
            "RFC 9449 §4.3 (7)",
            {
                let p = key.sign(&key.header(), &claims(json!({})));
                let forged = stranger.sign(&key.header(), &claims(json!({})));
                format!(
                    "{}.{}",
                    p.rsplit_once('.').unwrap().0,
                    forged.rsplit('.').next().unwrap()
                )
            },
            "DPOP_PROOF_INVALID",
        ),
        (
            "oversized",
            "RFC 9449 §4.3 (1)",
            format!("{}.{}.{}", "a".repeat(3000), "b".repeat(2000), "c"),
            "DPOP_PROOF_INVALID",
        ),
        (
            "not a JWT",
            "RFC 9449 §4.3 (1)",
            "not-a-jwt".into(),
            "DPOP_PROOF_INVALID",
        ),
        (
            "no proof at all",
            "RFC 9449 §7.1",
            String::new(),
            "TOKEN_BINDING_MISMATCH",
        ),
    ];
    for (name, source, proof, want) in &cases {
        let got = match c.verify(verify_with(&token, proof)).await {
            Ok(_) => "OK".to_owned(),
            Err(s) => reason(&s),
        };
        assert_eq!(&got, want, "{name} ({source})");
    }
    // None of them cost the token anything: a good proof still verifies.
    c.verify(verify_with(&token, &key.proof(METHOD, URL, Some(&token))))
        .await
        .expect("the token is fine");
    // A proof without the request it was made for is a bad request.
    let status = expect_reason(
        c.verify(pb::VerifyRequest {
            dpop_proof: key.proof(METHOD, URL, Some(&token)),
            ..verify_request(&token)
        })
        .await,
        "FIELD_INVALID",
    );
    assert_eq!(violations(&status), vec!["http_method", "http_url"]);
}

/// `--dpop-nonce` (RFC 9449 §8): a proof without the server's nonce is
/// refused with the nonce to use; proofs with it verify on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_nonces_are_required_and_shared_by_the_replicas() {
    let env = Env::new(Backend::Redis).await;
    let a = env.server(&["--dpop-nonce"]).await;
    let b = env.server(&["--dpop-nonce"]).await;
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    let key = ClientKey::new(KeyAlg::Es256);
    let pair = bound_pair(&mut ca, &key, "nina").await;
    let token = pair.access_token.clone();
    let with_nonce = |nonce: Option<&str>| {
        let mut claims = json!({
            "jti": tessera::authority::random_b64::<12>(),
            "htm": METHOD, "htu": URL, "iat": now(),
            "ath": access_token_hash(&token),
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        key.sign(&key.header(), &claims)
    };
    let refused = ca
        .verify(verify_with(&token, &with_nonce(None)))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "DPOP_PROOF_INVALID");
    let nonce = refused
        .metadata()
        .get("dpop-nonce")
        .expect("the nonce to use")
        .to_str()
        .unwrap()
        .to_owned();
    let ok = ca
        .verify(verify_with(&token, &with_nonce(Some(&nonce))))
        .await
        .expect("a proof with the nonce");
    assert!(ok.metadata().get("dpop-nonce").is_some(), "the next nonce");
    cb.verify(verify_with(&token, &with_nonce(Some(&nonce))))
        .await
        .expect("the other replica shares the nonce");
    expect_reason(
        cb.verify(verify_with(&token, &with_nonce(Some("made-up"))))
            .await,
        "DPOP_PROOF_INVALID",
    );
}

/// Issue #32, defect 4: 500 refreshes of made-up refresh tokens, each with
/// a fresh self-signed proof, all answered REFRESH_TOKEN_INVALID, leave
/// Redis's key count flat (before, each wrote a replay entry of ~167 B
/// before the session was known). A bound session still refuses a proof
/// used twice, and takes a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_refreshes_with_fresh_proofs_write_nothing() {
    let env = Env::new(Backend::Redis).await;
    let server = env.server(&["--refresh-rate=off"]).await;
    let mut c = server.client().await;
    let key = ClientKey::new(KeyAlg::Es256);
    let pair = bound_pair(&mut c, &key, "flood-owner").await;
    let redis = env.redis.as_ref().unwrap();
    let dbsize = || async {
        let reply = redis.command("DBSIZE").await;
        reply.trim().trim_start_matches(':').parse::<u64>().unwrap()
    };
    let before = dbsize().await;
    let sid = &pair.refresh_token[..22];
    let attacker = ClientKey::new(KeyAlg::Es256);
    for i in 0..500 {
        // A real session's id with a wrong secret, and ids of no session.
        let made_up = if i % 2 == 0 {
            format!("{sid}.{}", "A".repeat(43))
        } else {
            format!(
                "{}.{}",
                tessera::authority::random_b64::<16>(),
                "B".repeat(43)
            )
        };
        let proof = attacker.proof("POST", "https://auth.example.com/token", None);
        let refused = c.refresh(refresh_with(&made_up, &proof)).await.unwrap_err();
        assert_eq!(reason(&refused), "REFRESH_TOKEN_INVALID", "{i}");
    }
    // Flat: nothing added (budget keys of the session's own calls may expire).
    let after = dbsize().await;
    assert!(after <= before, "the flood wrote keys: {before} -> {after}");

    // The session's own proofs: recorded by the rotation, once.
    let proof = key.proof("POST", "https://auth.example.com/token", None);
    let next = c
        .refresh(refresh_with(&pair.refresh_token, &proof))
        .await
        .expect("a fresh proof rotates")
        .into_inner()
        .tokens
        .unwrap();
    expect_reason(
        c.refresh(refresh_with(&next.refresh_token, &proof)).await,
        "DPOP_PROOF_REPLAYED",
    );
    let fresh = key.proof("POST", "https://auth.example.com/token", None);
    c.refresh(refresh_with(&next.refresh_token, &fresh))
        .await
        .expect("the replay changed nothing: a fresh proof rotates");
}
