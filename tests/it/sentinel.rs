//! Redis Sentinel: one master, one replica, three sentinels, all on
//! loopback. The master dies; Sentinel promotes the replica; Tessera, which
//! found the master through the sentinels, keeps issuing and verifying.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

struct Sentinel {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sentinel(master_port: u16) -> Sentinel {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\n\
             sentinel parallel-syncs mymaster 1\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let child = Command::new(redis_server_binary())
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sentinel");
    let s = Sentinel {
        port,
        child,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "sentinel did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_survives_a_sentinel_failover() {
    let mut master = RedisServer::start().await;
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]).await;
    // Wait until the replica is in sync.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replica
        .command("INFO replication")
        .await
        .contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "replica never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sentinels = [
        sentinel(master.port).await,
        sentinel(master.port).await,
        sentinel(master.port).await,
    ];
    let url = format!(
        "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName=mymaster&node=127.0.0.1:{}&node=127.0.0.1:{}",
        sentinels[0].port, sentinels[1].port, sentinels[2].port
    );
    let key = TestKey::new();
    let server = Server::start(&[
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", key.path.display()),
        format!("--redis-url={url}"),
        "--store-timeout=500ms".to_owned(),
    ])
    .await;
    let mut c = server.client().await;
    let before = issue(&mut c, "alice").await;
    c.verify(strong(&before.access_token))
        .await
        .expect("verify before failover");
    // Let the replica receive the session before the master dies.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !replica.command("KEYS *").await.contains(&before.session_id) {
        assert!(Instant::now() < deadline, "session never replicated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    master.kill();
    let started = Instant::now();
    let after = loop {
        match c.issue(issue_request("bob")).await {
            Ok(r) => break r.into_inner().tokens.unwrap(),
            Err(s) => {
                assert_eq!(reason(&s), "STORE_UNAVAILABLE", "{s:?}");
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no failover within 30 s"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        replica.command("ROLE").await.contains("master"),
        "the replica was promoted"
    );
    c.verify(strong(&after.access_token))
        .await
        .expect("verify after failover");
    c.verify(strong(&before.access_token))
        .await
        .expect("a session from before the failover");
    refreshed(&mut c, &before.refresh_token).await;
}
