//! Real Redis for the tests: a `redis-server` ([`RedisServer`], with TLS
//! or Sentinel), a [`RedisCluster`], and the key layout the servers use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::free_port;

/// Where the harness finds `redis-server`. CI installs it (scripts/test); a
/// missing binary fails the test loudly, it never skips.
pub fn redis_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("REDIS_SERVER") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/bin",
        "/usr/local/bin",
        "/usr/sbin",
    ]) {
        let candidate = Path::new(dir).join("redis-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "redis-server not found: run scripts/test (it installs redis-server) or set REDIS_SERVER"
    );
}

/// A `redis-server` owned by one test; killed on drop.
pub struct RedisServer {
    /// The plaintext port (the harness's own commands go there).
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    /// A TLS port beside the plaintext one ([`RedisServer::start_tls`]).
    tls: Option<(u16, RedisTlsFiles)>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Start with extra `redis-server` arguments (e.g. AOF settings).
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: None,
        };
        server.spawn().await;
        server
    }

    /// Start with a TLS port too ([`RedisServer::tls_url`]), on `tls`'s
    /// certificate; the plaintext port stays for the harness.
    pub async fn start_tls(tls: &RedisTlsFiles, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: Some((free_port(), tls.clone())),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let mut cmd = Command::new(redis_server_binary());
            cmd.arg("--port")
                .arg(self.port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--save")
                .arg("")
                .arg("--dir")
                .arg(self.dir.path())
                .args(&self.extra)
                .args(
                    self.tls
                        .as_ref()
                        .map(|(port, files)| files.args(*port))
                        .unwrap_or_default(),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = cmd.spawn().expect("spawn redis-server");
            self.child = Some(child);
            if self.wait_ready(Duration::from_secs(10)).await {
                return;
            }
            last_err = format!("redis-server on port {} did not answer PING", self.port);
            self.kill();
            self.port = free_port();
            if let Some((port, _)) = self.tls.as_mut() {
                *port = free_port();
            }
        }
        panic!("{last_err}");
    }

    async fn wait_ready(&mut self, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false; // exited: port taken or bad args
                }
            }
            if ping(self.port).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TLS port, when started with [`RedisServer::start_tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|(port, _)| *port)
    }

    /// `rediss://` to the TLS port.
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}",
            self.tls_port().expect("started with start_tls")
        )
    }

    /// Kill the server (SIGKILL): what a crash looks like to Tessera.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port and directory.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Send one raw command (inline protocol) and return the raw reply.
    pub async fn command(&self, line: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect redis");
        s.write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("reply")
            .expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn ping(port: u16) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await, Ok(Ok(n)) if buf[..n].starts_with(b"+PONG"))
}

/// Where the harness finds `redis-cli` (beside `redis-server`).
pub fn redis_cli_binary() -> PathBuf {
    let server = redis_server_binary();
    let cli = server.with_file_name("redis-cli");
    assert!(
        cli.is_file(),
        "redis-cli not found beside {}: run scripts/test (it installs redis-tools)",
        server.display()
    );
    cli
}

/// A real Redis Cluster owned by one test: `masters` masters with one
/// replica each, `redis-server --cluster-enabled yes` on free loopback ports
/// (the cluster bus on ports of its own), joined by `redis-cli --cluster
/// create --cluster-replicas 1`. Killed on drop.
pub struct RedisCluster {
    /// Masters first (`redis-cli` makes the first `masters` nodes masters).
    pub nodes: Vec<RedisServer>,
    pub masters: usize,
}

impl RedisCluster {
    pub async fn start(masters: usize) -> Self {
        Self::start_on(masters, None).await
    }

    /// A cluster whose nodes also listen with TLS, and whose bus and
    /// replication run over TLS (`tls-cluster`, `tls-replication`): a TLS
    /// client is told the nodes' TLS ports ([`RedisCluster::tls_url`]).
    pub async fn start_tls(masters: usize, tls: &RedisTlsFiles) -> Self {
        Self::start_on(masters, Some(tls)).await
    }

    async fn start_on(masters: usize, tls: Option<&RedisTlsFiles>) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..masters * 2 {
            let bus = free_port().to_string();
            let mut args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",
                &bus,
                "--appendonly",
                "no",
            ];
            nodes.push(match tls {
                None => RedisServer::start_with(&args).await,
                Some(tls) => {
                    args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
                    RedisServer::start_tls(tls, &args).await
                }
            });
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(redis_cli_binary())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes, masters };
        cluster.wait_ok(Duration::from_secs(20)).await;
        cluster
    }

    /// Wait until every node says `cluster_state:ok`, every replica's link
    /// to its master is up (its first sync done) and every master counts its
    /// replica as online (what `WAIT` counts).
    pub async fn wait_ok(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let mut ok = true;
            let (mut replicas, mut online) = (0, 0);
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                if !n.command("CLUSTER INFO").await.contains("cluster_state:ok") {
                    ok = false;
                }
                let replication = n.command("INFO replication").await;
                if replication.contains("role:slave") {
                    replicas += 1;
                    ok &= replication.contains("master_link_status:up");
                }
                online += replication.matches("state=online").count();
            }
            if ok && online >= replicas {
                return;
            }
            assert!(
                start.elapsed() < within,
                "the cluster never reached cluster_state:ok with its replicas in sync"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `rediss-cluster://` on the nodes' TLS ports ([`RedisCluster::start_tls`]).
    pub fn tls_url(&self) -> String {
        let ports: Vec<u16> = self
            .nodes
            .iter()
            .map(|n| n.tls_port().expect("started with start_tls"))
            .collect();
        let mut url = format!("rediss-cluster://127.0.0.1:{}", ports[0]);
        for (i, port) in ports.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{port}"));
        }
        url
    }

    /// fred's cluster URL: one node, the others as `node=` parameters.
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", n.port));
        }
        url
    }

    /// FLUSHALL on every node (masters empty themselves, replicas follow
    /// and refuse the command themselves).
    pub async fn flushall(&self) {
        for n in &self.nodes {
            n.command("FLUSHALL").await;
        }
    }
}

/// PEM files for a TLS `redis-server` (made by the test, e.g. with rcgen).
#[derive(Debug, Clone)]
pub struct RedisTlsFiles {
    /// The CA that signed `cert` (and that client certificates must chain to).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `--tls-auth-clients yes`: a client certificate is required.
    pub require_client_cert: bool,
}

impl RedisTlsFiles {
    fn args(&self, tls_port: u16) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path(&self.cert),
            "--tls-key-file".into(),
            path(&self.key),
            "--tls-ca-cert-file".into(),
            path(&self.ca),
            "--tls-auth-clients".into(),
            if self.require_client_cert {
                "yes"
            } else {
                "no"
            }
            .into(),
        ]
    }
}

/// The Redis key prefix of session `sid`'s partition, at the default
/// `--redis-partitions` (what the harness's servers run with).
pub fn key_prefix_of(sid: &str) -> String {
    use tessera::store::partition::{Partitions, DEFAULT_PARTITIONS};
    // Built once: choosing the tags takes thousands of slot hashes.
    static PARTS: std::sync::LazyLock<Partitions> =
        std::sync::LazyLock::new(|| Partitions::new(DEFAULT_PARTITIONS).expect("valid"));
    PARTS
        .sid_prefix(sid)
        .unwrap_or_else(|| panic!("{sid} names no partition"))
        .to_owned()
}
