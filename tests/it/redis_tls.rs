//! Redis over real TLS (`rediss://`, DESIGN.md §10): redis-server with a
//! `--tls-port` on certificates made here (rcgen). The authority works over
//! it, standalone and on a TLS Cluster; TLS that cannot be honoured (a
//! wrong CA, a plaintext port, a missing client certificate) is a startup
//! error and the replica never serves.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::*;
use crate::tls::Pki;
use tessera::pb;
use tonic_health::pb::health_check_response::ServingStatus;

/// A CA and, signed by it, a server certificate (127.0.0.1) and a client
/// certificate, as PEM files.
struct Material {
    dir: tempfile::TempDir,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Material {
    fn new() -> (Material, Pki) {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca = write("ca.pem", &pki.ca_pem);
        let (cert, key) = pki.leaf("redis", &["localhost"], &[]);
        write("server.pem", &cert);
        write("server.key", &key);
        let (cert, key) = pki.leaf("tessera", &[], &[]);
        let client_cert = write("client.pem", &cert);
        let client_key = write("client.key", &key);
        (
            Material {
                dir,
                ca,
                client_cert,
                client_key,
            },
            pki,
        )
    }

    fn server_files(&self, require_client_cert: bool) -> RedisTlsFiles {
        RedisTlsFiles {
            ca: self.ca.clone(),
            cert: self.dir.path().join("server.pem"),
            key: self.dir.path().join("server.key"),
            require_client_cert,
        }
    }

    fn ca_flag(&self) -> String {
        format!("--redis-tls-ca={}", self.ca.display())
    }

    fn client_flags(&self) -> [String; 2] {
        [
            format!("--redis-tls-cert={}", self.client_cert.display()),
            format!("--redis-tls-key={}", self.client_key.display()),
        ]
    }
}

fn flags(url: &str, key: &TestKey, extra: &[String]) -> Vec<String> {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    redis_flags(url, key, &extra)
}

/// Two replicas on one TLS Redis: Issue, Refresh, Revoke, and the
/// revocation reaching the other replica's cache and watcher (the feed's
/// pub/sub and log over TLS).
async fn one_authority_over(url: &str, tls_flags: &[String]) {
    let key = TestKey::new();
    let mut extra = tls_flags.to_vec();
    extra.push("--store-timeout=2s".into());
    let a = Server::start(&flags(url, &key, &extra)).await;
    let b = Server::start(&flags(url, &key, &extra)).await;
    let mut ca = a.client().await;
    let mut cb = b.client().await;
    let mut watch = cb
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let pair = issue(&mut ca, "alice").await;
    cb.verify(verify_request(&pair.access_token)).await.unwrap();
    let rotated = refreshed(&mut cb, &pair.refresh_token).await;
    let cursor = ca
        .revoke(revoke_session_id(&pair.session_id))
        .await
        .unwrap()
        .into_inner()
        .cursor;
    wait_revoked(&mut cb, &rotated.access_token).await;
    expect_reason(
        ca.refresh(refresh_req(&rotated.refresh_token)).await,
        "REFRESH_TOKEN_INVALID",
    );
    let event = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the event reaches B's watcher")
        .unwrap()
        .unwrap();
    assert_eq!(event.cursor, cursor);
    assert_eq!(event.session_id, pair.session_id);
    assert_eq!(b.health().await, Some(ServingStatus::Serving));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_and_its_feed_work_over_tls_standalone() {
    let (m, _pki) = Material::new();
    let redis = RedisServer::start_tls(&m.server_files(false), &[]).await;
    one_authority_over(&redis.tls_url(), &[m.ca_flag()]).await;
    // The sessions went through the TLS port into this Redis.
    assert!(redis.command("DBSIZE").await.trim_start_matches(':').trim() != "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_and_its_feed_work_on_a_tls_cluster() {
    let (m, _pki) = Material::new();
    let cluster = RedisCluster::start_tls(3, &m.server_files(false)).await;
    one_authority_over(&cluster.tls_url(), &[m.ca_flag()]).await;
}

/// `serve` on `flags` must fail before serving; its error text.
async fn startup_error(flags: &[String]) -> String {
    let server = Server::spawn(flags).await;
    let result = tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("start-up ends");
    match result {
        Err(e) => {
            eprintln!("start-up error: {e}");
            e.to_string()
        }
        Ok(()) => panic!("served with {flags:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_a_startup_error() {
    let (m, _pki) = Material::new();
    let redis = RedisServer::start_tls(&m.server_files(false), &[]).await;
    // Another CA than the one that signed the server's certificate.
    let (other, _) = Material::new();
    let key = TestKey::new();
    let error = startup_error(&flags(&redis.tls_url(), &key, &[other.ca_flag()])).await;
    assert!(error.contains("Redis TLS"), "{error}");
    assert!(error.contains("--redis-tls-ca"), "{error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    // Without any CA, the system's roots do not know the test CA either.
    let error = startup_error(&flags(&redis.tls_url(), &key, &[])).await;
    assert!(error.contains("Redis TLS"), "{error}");
    assert_eq!(redis.command("DBSIZE").await.trim(), ":0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_to_a_plaintext_port_never_serves() {
    let (m, _pki) = Material::new();
    let redis = RedisServer::start().await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let key = TestKey::new();
    let error = startup_error(&flags(&url, &key, &[m.ca_flag()])).await;
    assert!(error.contains("Redis TLS"), "{error}");
    // Nothing was written in the clear.
    assert_eq!(redis.command("DBSIZE").await.trim(), ":0");
    // TLS flags without a TLS URL are refused too, rather than ignored.
    let error = startup_error(&flags(&redis.url(), &key, &[m.ca_flag()])).await;
    assert!(error.contains("rediss://"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_the_server_requires() {
    let (m, pki) = Material::new();
    let redis = RedisServer::start_tls(&m.server_files(true), &[]).await;
    let key = TestKey::new();
    // Without one: a startup error that says what is missing.
    let error = startup_error(&flags(&redis.tls_url(), &key, &[m.ca_flag()])).await;
    assert!(error.contains("Redis TLS"), "{error}");
    assert!(error.contains("--redis-tls-cert"), "{error}");
    // With a certificate of another CA: refused as well.
    let stranger = Pki::new().leaf("stranger", &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), &stranger.0).unwrap();
    std::fs::write(dir.path().join("c.key"), &stranger.1).unwrap();
    let error = startup_error(&flags(
        &redis.tls_url(),
        &key,
        &[
            m.ca_flag(),
            format!("--redis-tls-cert={}", dir.path().join("c.pem").display()),
            format!("--redis-tls-key={}", dir.path().join("c.key").display()),
        ],
    ))
    .await;
    assert!(error.contains("Redis TLS"), "{error}");
    // With ours: it serves.
    drop(pki);
    let mut extra = vec![m.ca_flag()];
    extra.extend(m.client_flags());
    let server = Server::start(&flags(&redis.tls_url(), &key, &extra)).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "bob").await;
    refreshed(&mut c, &pair.refresh_token).await;
}

/// A Sentinel that listens with TLS only and reaches the master over TLS,
/// with a password of its own (`requirepass`) and the master's.
struct TlsSentinel {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for TlsSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tls_sentinel(files: &RedisTlsFiles, master_tls_port: u16) -> TlsSentinel {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\ndir {dir}\n\
             tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n\
             tls-auth-clients no\ntls-replication yes\nrequirepass sentinel-secret\n\
             sentinel monitor mymaster 127.0.0.1 {master_tls_port} 1\n\
             sentinel auth-pass mymaster master-secret\n",
            dir = dir.path().display(),
            cert = files.cert.display(),
            key = files.key.display(),
            ca = files.ca.display(),
        ),
    )
    .unwrap();
    let child = std::process::Command::new(redis_server_binary())
        .arg(&conf)
        .arg("--sentinel")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sentinel");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "sentinel did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TlsSentinel {
        port,
        child,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_works_through_a_tls_sentinel_with_passwords() {
    let (m, _pki) = Material::new();
    let files = m.server_files(false);
    let master = RedisServer::start_tls(&files, &[]).await;
    // After start-up: the harness's readiness PING has no password.
    assert!(master
        .command("CONFIG SET requirepass master-secret")
        .await
        .starts_with("+OK"));
    let sentinel = tls_sentinel(&files, master.tls_port().unwrap()).await;
    let url = format!(
        "rediss-sentinel://default:master-secret@127.0.0.1:{}/0?sentinelServiceName=mymaster&sentinelPassword=sentinel-secret",
        sentinel.port
    );
    let key = TestKey::new();
    let server = Server::start(&flags(
        &url,
        &key,
        &[m.ca_flag(), "--store-timeout=2s".into()],
    ))
    .await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "carol").await;
    let rotated = refreshed(&mut c, &pair.refresh_token).await;
    c.revoke(revoke_session_id(&pair.session_id)).await.unwrap();
    wait_revoked(&mut c, &rotated.access_token).await;
}
