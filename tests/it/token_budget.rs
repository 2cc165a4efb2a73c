//! Issue #32, defect 4 (second half): the public token endpoint has a
//! budget per client IP and overall, counted in the store before anything
//! else of the request is read. Before, it had none: 5,000 made-up refresh
//! tokens were each processed (and each wrote a DPoP replay entry).

use crate::oauth::{form, post, FORM};
use crate::support::*;

async fn made_up_refreshes(flags: &[&str]) -> Vec<(u16, Option<String>)> {
    let env = Env::new(Backend::Redis).await;
    let mut all = vec!["--http-listen=127.0.0.1:0", "--http-token-endpoint"];
    all.extend(flags);
    let s = env.server(&all).await;
    let http = s.http.unwrap();
    let body = form(&[
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            &format!("{}.{}", "A".repeat(22), "B".repeat(43)),
        ),
    ]);
    let mut answers = Vec::new();
    for _ in 0..8 {
        let a = post(http, "/oauth2/token", &[FORM], &body).await;
        answers.push((a.status, a.header("retry-after")));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_spends_a_budget_per_client_ip() {
    let answers =
        made_up_refreshes(&["--http-token-rate-per-ip=1:3", "--http-token-rate=off"]).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    // A burst of 3 processed (invalid_grant), then 429 with Retry-After.
    assert_eq!(&statuses[..3], &[400, 400, 400], "{answers:?}");
    assert!(
        answers[3..].iter().all(|(s, r)| *s == 429 && r.is_some()),
        "{answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_spends_a_budget_overall() {
    let answers =
        made_up_refreshes(&["--http-token-rate-per-ip=off", "--http-token-rate=1:2"]).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(&statuses[..2], &[400, 400], "{answers:?}");
    assert!(answers[2..].iter().all(|(s, _)| *s == 429), "{answers:?}");
}
