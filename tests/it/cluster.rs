//! Tessera on a real Redis Cluster (3 masters, 3 replicas, started by the
//! harness): two replicas act as one authority, and the revocation feed
//! crosses the cluster. Today every key carries one hash tag, so the
//! cluster serves all of Tessera from one slot; the store conformance suite
//! also runs on a cluster (`store_conformance::on_a_redis_cluster`).

use std::time::Duration;

use crate::support::*;
use tessera::pb;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_a_redis_cluster_are_one_authority() {
    let cluster = RedisCluster::start(3).await;
    let key = TestKey::new();
    let flags = vec![
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", key.path.display()),
        format!("--redis-url={}", cluster.url()),
        "--store-timeout=2s".to_owned(),
    ];
    let a = Process::start(&flags).await;
    let b = Process::start(&flags).await;
    let mut ca = a.server().client().await;
    let mut cb = b.server().client().await;

    // A watcher on A, from now.
    let mut watch = ca
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await
        .unwrap()
        .into_inner();

    let pair = issue(&mut ca, "alice").await;
    cb.verify(verify_request(&pair.access_token))
        .await
        .expect("B verifies A's token");
    let rotated = refreshed(&mut cb, &pair.refresh_token).await;
    // Within the grace window, on the other replica: the same successor.
    let again = refreshed(&mut ca, &pair.refresh_token).await;
    assert_eq!(again.refresh_token, rotated.refresh_token);
    let cursor = cb
        .revoke(revoke_session_id(&pair.session_id))
        .await
        .unwrap()
        .into_inner()
        .cursor;
    assert!(!cursor.is_empty());
    // A's cache learns it through the cluster's pub/sub and log.
    wait_revoked(&mut ca, &rotated.access_token).await;
    expect_reason(
        ca.verify(strong(&rotated.access_token)).await,
        "TOKEN_REVOKED",
    );
    let event = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the event reaches A's watcher")
        .unwrap()
        .unwrap();
    assert_eq!(event.cursor, cursor);
    assert_eq!(event.session_id, pair.session_id);
    assert_eq!(a.server().health().await, Some(ServingStatus::Serving));
    assert_eq!(b.server().health().await, Some(ServingStatus::Serving));
}
