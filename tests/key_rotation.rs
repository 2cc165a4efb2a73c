//! Key rotation without downtime: older keys keep verifying after SIGHUP
//! until they are dropped; new tokens carry the new `kid`.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tessera::config::KeyAlg;
use tessera::keys::generate_pem;
use tessera::pb;

async fn jwks_kids(c: &mut Client) -> Vec<String> {
    let json = c
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .jwks_json;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_kids(c: &mut Client, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kids = jwks_kids(c).await;
        if kids.len() == want {
            return kids;
        }
        assert!(
            Instant::now() < deadline,
            "JWKS never had {want} keys: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
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

    // Drop A: its tokens no longer verify.
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
