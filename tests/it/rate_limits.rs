//! Rate limits: GCRA per subject on Issue and Refresh (held across
//! replicas by the store), per caller on any RPC, with RetryInfo.

use crate::support::*;
use tessera::pb;
use tonic_types::StatusExt;

fn assert_rate_limited(status: &tonic::Status) {
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(reason(status), "RATE_LIMITED");
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    let delay = retry.retry_delay.expect("retry delay");
    assert!(
        delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(2),
        "{delay:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_budget_holds_across_two_replicas() {
    let env = Env::new(Backend::Redis).await;
    let flags = ["--issue-rate=1:10"];
    let a = env.server(&flags).await;
    let b = env.server(&flags).await;
    let clients = [a.client().await, b.client().await];
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let mut c = clients[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            c.issue(issue_request("alice")).await
        }));
    }
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s) => {
                assert_rate_limited(&s);
                limited += 1;
            }
        }
    }
    // Burst of 10, plus what refilled at 1/s while the burst ran (on a slow
    // machine the 30 calls may take a while; the budget still holds).
    let refill = started.elapsed().as_secs() as usize + 1;
    assert!(
        ok >= 10 && ok <= 10 + refill,
        "{ok} allowed, {limited} limited in {:?}",
        started.elapsed()
    );
    // Other subjects are unaffected.
    let mut c = clients[1].clone();
    c.issue(issue_request("bob"))
        .await
        .expect("another subject");
}

async fn refresh_budget_per_subject(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env
        .server(&["--refresh-rate=1:3", "--refresh-grace=0s"])
        .await;
    let mut c = server.client().await;
    let mut pair = issue(&mut c, "alice").await;
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        match c.refresh(refresh_req(&pair.refresh_token)).await {
            Ok(r) => {
                pair = r.into_inner().tokens.unwrap();
                outcomes.push(true);
            }
            Err(s) => {
                assert_rate_limited(&s);
                outcomes.push(false);
            }
        }
    }
    assert_eq!(outcomes.iter().filter(|o| **o).count(), 3, "{outcomes:?}");
    // A limited refresh changed nothing: the last good token still rotates later.
    let other = issue(&mut c, "bob").await;
    c.refresh(refresh_req(&other.refresh_token))
        .await
        .expect("other subjects unaffected");
}

async fn caller_budget_per_rpc(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--caller-rate=GetJwks=1:2"]).await;
    let mut c = server.client().await;
    c.get_jwks(pb::GetJwksRequest::default()).await.unwrap();
    c.get_jwks(pb::GetJwksRequest::default()).await.unwrap();
    let s = c.get_jwks(pb::GetJwksRequest::default()).await.unwrap_err();
    assert_rate_limited(&s);
    // Other RPCs have no caller limit configured.
    for _ in 0..5 {
        c.verify(verify_request("garbage")).await.unwrap_err();
    }
    expect_reason(c.verify(verify_request("garbage")).await, "TOKEN_MALFORMED");
}

/// Issue has a per-caller budget by default (bounding the sessions a caller
/// can make Tessera hold), across subjects; `--caller-rate Issue=…` sets it.
async fn caller_issue_budget(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&["--caller-rate=Issue=1:2"]).await;
    let mut c = server.client().await;
    issue(&mut c, "first").await;
    issue(&mut c, "second").await;
    let s = c.issue(issue_request("third")).await.unwrap_err();
    assert_rate_limited(&s);
    // Nothing of the refused call is stored.
    let cursor = c
        .revoke(revoke_subject("acme", "third"))
        .await
        .unwrap()
        .into_inner()
        .cursor;
    assert_eq!(cursor, "");
}

on_both_stores!(
    refresh_budget_per_subject,
    caller_budget_per_rpc,
    caller_issue_budget
);
