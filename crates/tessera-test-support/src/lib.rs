//! Test harness: a real `redis-server` on a free port, and a real Tessera
//! server on `127.0.0.1:0`, talked to over gRPC. No fixed ports, no sleeps
//! to wait for readiness: health is polled.
#![allow(dead_code)]

pub mod hostile_cases;
pub mod vectors;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera::config::ServeArgs;
use tessera::pb;
use tessera::pb::token_authority_client::TokenAuthorityClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

pub type Client = TokenAuthorityClient<Channel>;

/// The `tessera` binary a [`Process`] runs: `TESSERA_BIN` if set, else the
/// one cargo built beside the running test binary (`target/<profile>/`,
/// the test being in `target/<profile>/deps/`).
pub fn tessera_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TESSERA_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current test binary");
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("tessera"))
        .expect("target directory");
    assert!(
        candidate.is_file(),
        "no tessera binary at {}: build it (cargo test does for this package) or set TESSERA_BIN",
        candidate.display()
    );
    candidate
}

/// Environment that runs a process on a clock `offset` from the real one
/// (`+20s`) through libfaketime, preloaded into the process itself.
/// `scripts/test` installs it (Debian's `faketime`); missing, the test fails.
pub fn faketime_env(offset: &str) -> Vec<(&'static str, String)> {
    let lib = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file())
        .expect("libfaketime not found: run scripts/test (it installs faketime)");
    vec![
        ("LD_PRELOAD", lib.display().to_string()),
        ("FAKETIME", offset.to_owned()),
    ]
}

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

/// A port that was free a moment ago (bind to 0, read, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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

/// Write a callers file (docs/design.md §8) into `dir`, one entry per
/// `(name, api key, allow list)`, and answer the `--callers=<path>` flag.
pub fn callers_flag(dir: &tempfile::TempDir, callers: &[(&str, &str, &[&str])]) -> String {
    let mut toml = String::new();
    for (name, key, allow) in callers {
        let allow: Vec<String> = allow.iter().map(|rpc| format!("{rpc:?}")).collect();
        toml.push_str(&format!(
            "[[caller]]\nname = {name:?}\napi_key_sha256 = {:?}\nallow = [{}]\n\n",
            tessera::transport::callers::api_key_sha256(key),
            allow.join(", ")
        ));
    }
    let path = dir.path().join("callers.toml");
    std::fs::write(&path, toml).expect("write the callers file");
    format!("--callers={}", path.display())
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

/// A signing key written to a temp file, shared by replicas.
pub struct TestKey {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Default for TestKey {
    fn default() -> Self {
        Self::new()
    }
}

impl TestKey {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signing.pem");
        let pem = tessera::keys::generate_pem(tessera::config::KeyAlg::Eddsa).expect("keygen");
        std::fs::write(&path, pem).expect("write key");
        TestKey { path, _dir: dir }
    }

    pub fn keyset(&self) -> tessera::keys::KeySet {
        tessera::keys::KeySet::load(&self.path, None).expect("load key")
    }
}

/// A `--tenants` file (issue #28) in a temp folder, with a fresh EdDSA key
/// per tenant in `<name>.pem` beside it (named relative to the file).
pub struct TenantsFile {
    pub path: PathBuf,
    dir: tempfile::TempDir,
}

impl TenantsFile {
    /// `tenants`: (name, issuer, extra TOML lines of its entry, e.g.
    /// `issue_rate = "1:2"`).
    pub fn new(tenants: &[(&str, &str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = String::new();
        for (name, issuer, extra) in tenants {
            let pem = tessera::keys::generate_pem(tessera::config::KeyAlg::Eddsa).expect("keygen");
            std::fs::write(dir.path().join(format!("{name}.pem")), pem).expect("write key");
            text.push_str(&format!(
                "[[tenant]]\nname = {name:?}\nissuer = {issuer:?}\nsigning_key = \"{name}.pem\"\n{extra}\n\n"
            ));
        }
        let path = dir.path().join("tenants.toml");
        std::fs::write(&path, text).expect("write tenants file");
        TenantsFile { path, dir }
    }

    /// The folder of the file and its keys.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The signing key file of `tenant`.
    pub fn key_path(&self, tenant: &str) -> PathBuf {
        self.dir.path().join(format!("{tenant}.pem"))
    }

    /// The signing key of `tenant`, loaded as the server loads it.
    pub fn keyset(&self, tenant: &str) -> tessera::keys::KeySet {
        tessera::keys::KeySet::load(&self.key_path(tenant), None).expect("load tenant key")
    }

    /// `--tenants=<path>`.
    pub fn flag(&self) -> String {
        format!("--tenants={}", self.path.display())
    }
}

/// A running Tessera server.
pub struct Server {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The OAuth HTTP port, when the flags asked for one (`--http-listen`;
    /// give `127.0.0.1:0` for a free port).
    pub http: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tessera::ServeError>>>,
}

impl Server {
    /// Start with `tessera serve` flags (`--listen` is chosen here).
    pub async fn start(flags: &[String]) -> Server {
        let server = Self::spawn(flags).await;
        server.wait_serving().await;
        server
    }

    /// Start without waiting for health (e.g. a TLS-only port the plaintext
    /// health probe cannot reach); the listener is bound, so calls queue.
    pub async fn spawn(flags: &[String]) -> Server {
        let args = ServeArgs::parse_with_file(flags.to_vec()).expect("valid test flags");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin");
        let admin = admin_listener.local_addr().expect("admin addr");
        // Port 0 is bound here, so the test learns the port; a fixed port
        // (a test that must know it before start-up) is bound as given.
        let http_listener = match args.http_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .expect("bind http"),
            ),
            None => None,
        };
        let http = http_listener
            .as_ref()
            .map(|l| l.local_addr().expect("http addr"));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(tessera::serve_with_listeners(
            args,
            listener,
            admin_listener,
            http_listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            admin,
            http,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// GET a path on the admin server: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path).await
    }

    pub async fn client(&self) -> Client {
        let channel = Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        TokenAuthorityClient::new(channel)
    }

    /// gRPC health of the service (readiness).
    pub async fn health(&self) -> Option<ServingStatus> {
        self.health_of(tessera::SERVICE_NAME).await
    }

    /// gRPC health of a named service: `""`, the service, or `liveness`.
    pub async fn health_of(&self, service: &str) -> Option<ServingStatus> {
        let channel = Channel::from_shared(self.url())
            .ok()?
            .connect()
            .await
            .ok()?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()?;
        ServingStatus::try_from(reply.into_inner().status).ok()
    }

    /// Poll health until it reports `want`, or panic after 10 s.
    pub async fn wait_health(&self, want: ServingStatus) -> Duration {
        let start = Instant::now();
        loop {
            if self.health().await == Some(want) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "health never became {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_serving(&self) {
        self.wait_health(ServingStatus::Serving).await;
    }

    /// Graceful stop; returns what `serve` returned.
    pub async fn stop(mut self) -> Result<(), tessera::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("serve task"),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A test environment: a store backend, a key, and helpers to start servers.
pub struct Env {
    pub backend: Backend,
    pub redis: Option<RedisServer>,
    pub key: TestKey,
}

impl Env {
    pub async fn new(backend: Backend) -> Env {
        let redis = match backend {
            Backend::Memory => None,
            Backend::Redis => Some(RedisServer::start().await),
        };
        Env {
            backend,
            redis,
            key: TestKey::new(),
        }
    }

    /// Flags for a server on this environment, plus `extra`.
    pub fn flags(&self, extra: &[&str]) -> Vec<String> {
        let mut flags = vec![
            "--issuer=tessera-test".to_owned(),
            format!("--signing-key={}", self.key.path.display()),
            "--admin-listen=127.0.0.1:0".to_owned(),
            "--store-timeout=500ms".to_owned(),
        ];
        if let Some(r) = &self.redis {
            flags.push(format!("--redis-url={}", r.url()));
        }
        flags.extend(extra.iter().map(|s| s.to_string()));
        flags
    }

    pub async fn server(&self, extra: &[&str]) -> Server {
        Server::start(&self.flags(extra)).await
    }
}

/// A JWT's payload, unverified (tests reading what a token carries).
pub fn jwt_payload(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// The `ErrorInfo.reason` of a failed call.
pub fn reason(status: &tonic::Status) -> String {
    tessera::error::status_reason(status).unwrap_or_else(|| format!("<no reason: {status:?}>"))
}

/// Field names of a `BadRequest` detail.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

pub fn issue_request(subject: &str) -> pb::IssueRequest {
    pb::IssueRequest {
        subject: subject.into(),
        tenant: "acme".into(),
        audience: vec!["api".into()],
        roles: vec!["admin".into()],
        scopes: vec!["read".into(), "write".into()],
        ..Default::default()
    }
}

pub async fn issue(client: &mut Client, subject: &str) -> pb::TokenPair {
    client
        .issue(issue_request(subject))
        .await
        .expect("issue")
        .into_inner()
        .tokens
        .expect("tokens")
}

pub fn verify_request(token: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        access_token: token.into(),
        ..Default::default()
    }
}

pub fn strong(token: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        access_token: token.into(),
        consistency: pb::Consistency::Strong as i32,
        ..Default::default()
    }
}

/// Expect a call to fail with `reason`.
#[track_caller]
pub fn expect_reason<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    want: &str,
) -> tonic::Status {
    match result {
        Ok(r) => panic!("expected {want}, got success: {r:?}"),
        Err(status) => {
            assert_eq!(reason(&status), want, "status: {status:?}");
            status
        }
    }
}

/// Run an async scenario on both stores as two tests.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Redis).await
                }
            )*
        }
    };
}

/// A minimal HTTP/1.1 GET over loopback: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_get_with_head(addr, path).await;
    (status, body)
}

/// `GET path` over HTTP/1.1: (status, response head, body).
pub async fn http_get_with_head(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http_request(addr, "GET", path, &[], b"").await
}

/// One HTTP/1.1 request over loopback, with `headers` and `body` sent as
/// given (a `Content-Length` is added for a non-empty body): (status,
/// response head, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // The server may answer (413) and close before reading all of it.
    let _ = s.write_all(&request).await;
    let mut buf = Vec::new();
    // A reset after the answer (a body the server would not read) keeps
    // what arrived.
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("HTTP reply");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// A real `tessera serve` process (for signals, metrics and multi-process tests).
pub struct Process {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Start the binary with `flags`; wait for its "tessera serving" log line
    /// and then for health SERVING.
    pub async fn start(flags: &[String]) -> Process {
        Self::start_logging(flags, "info").await
    }

    /// Start with `TESSERA_LOG` set to `filter`.
    pub async fn start_logging(flags: &[String], filter: &str) -> Process {
        Self::start_with_env(&[], flags, filter).await
    }

    /// Start with extra environment variables (e.g. [`faketime_env`]). The
    /// child is `tessera` itself, so dropping the `Process` ends it (a
    /// wrapper program would leave it running).
    pub async fn start_with_env(env: &[(&str, String)], flags: &[String], filter: &str) -> Process {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(tessera_binary())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("serve")
            .args([
                "--listen=127.0.0.1:0",
                "--admin-listen=127.0.0.1:0",
                "--log-format=json",
            ])
            .args(flags)
            .env("TESSERA_LOG", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tessera");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let deadline = Instant::now() + Duration::from_secs(20);
        let (addr, admin) = loop {
            let line = tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                lines.next_line(),
            )
            .await
            .expect("tessera did not start in time")
            .expect("read stderr")
            .unwrap_or_else(|| panic!("tessera exited early: {:?}", log.lock().unwrap()));
            log.lock().unwrap().push(line.clone());
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "tessera serving" {
                let addr = v["fields"]["listen"].as_str().unwrap().parse().unwrap();
                let admin = v["fields"]["admin"].as_str().unwrap().parse().unwrap();
                break (addr, admin);
            }
        };
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let process = Process {
            child,
            addr,
            admin,
            log,
        };
        let probe = Server::detached(addr, admin);
        probe.wait_health(ServingStatus::Serving).await;
        process
    }

    /// A handle for gRPC helpers (does not own the process).
    pub fn server(&self) -> Server {
        Server::detached(self.addr, self.admin)
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pid");
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("process did not exit in time")
            .expect("wait")
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Server {
    /// A handle to a server this test does not own.
    pub fn detached(addr: SocketAddr, admin: SocketAddr) -> Server {
        Server {
            addr,
            admin,
            http: None,
            stop: None,
            task: None,
        }
    }
}

/// Value of a Prometheus sample line `name{labels} value` (labels as written).
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Value of the Prometheus sample `name{…}` whose labels include all of `labels`.
pub fn metric_with(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `Revoke` of `target`, without a reason.
/// Flags for a Tessera replica on the Redis at `url`, signing with `key`
/// (issuer `tessera-test`), plus `extra`.
pub fn redis_flags(url: &str, key: &TestKey, extra: &[&str]) -> Vec<String> {
    let mut flags = vec![
        "--issuer=tessera-test".to_owned(),
        format!("--signing-key={}", key.path.display()),
        format!("--redis-url={url}"),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
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

pub fn revoke_target(target: pb::revoke_request::Target) -> pb::RevokeRequest {
    pb::RevokeRequest {
        target: Some(target),
        ..Default::default()
    }
}

/// `Revoke` of an access or refresh token.
pub fn revoke_token(token: &str) -> pb::RevokeRequest {
    revoke_target(pb::revoke_request::Target::Token(token.to_owned()))
}

/// `Revoke` of a session id.
pub fn revoke_session_id(sid: &str) -> pb::RevokeRequest {
    revoke_target(pb::revoke_request::Target::SessionId(sid.to_owned()))
}

/// `Revoke` of every session of a subject ("log out everywhere").
pub fn revoke_subject(tenant: &str, subject: &str) -> pb::RevokeRequest {
    revoke_target(pb::revoke_request::Target::Subject(pb::SubjectRef {
        tenant: tenant.to_owned(),
        subject: subject.to_owned(),
    }))
}

/// `Refresh` of a refresh token.
pub fn refresh_req(token: &str) -> pb::RefreshRequest {
    pb::RefreshRequest {
        refresh_token: token.to_owned(),
        ..Default::default()
    }
}

/// `Refresh` of a refresh token, presented from device `fingerprint`.
pub fn refresh_on(token: &str, fingerprint: &str) -> pb::RefreshRequest {
    pb::RefreshRequest {
        device_fingerprint: fingerprint.to_owned(),
        ..refresh_req(token)
    }
}

/// Refresh and return the new pair (panics on failure).
pub async fn refreshed(c: &mut Client, token: &str) -> pb::TokenPair {
    c.refresh(refresh_req(token))
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .expect("tokens")
}

/// Poll default-consistency Verify until it says revoked (the feed is
/// asynchronous across replicas), or panic after 5 s.
pub async fn wait_revoked(c: &mut Client, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.verify(verify_request(token)).await {
            Err(s) if reason(&s) == "TOKEN_REVOKED" => return,
            other => assert!(Instant::now() < deadline, "not revoked: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Issue one session for each subject and return the session ids, in order.
/// Revoking a session id that was never issued is a no-op without an event,
/// so tests that need revocation events revoke real sessions.
pub async fn session_ids(
    c: &mut Client,
    subjects: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for subject in subjects {
        out.push(issue(c, &subject).await.session_id);
    }
    out
}

/// Resident memory of process `pid` in KiB, from `/proc` (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The JSON-lines output of an example program: one object per step, each
/// with a `step` name.
pub struct Steps {
    label: String,
    lines: Vec<serde_json::Value>,
}

impl Steps {
    pub fn parse(label: &str, stdout: &[u8]) -> Steps {
        let lines = String::from_utf8_lossy(stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{label}: {l}: {e}")))
            .collect();
        Steps {
            label: label.to_owned(),
            lines,
        }
    }

    /// The step called `name`; panics (listing them all) if there is none.
    pub fn get(&self, name: &str) -> serde_json::Value {
        self.lines
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("{}: no step {name}: {:?}", self.label, self.lines))
            .clone()
    }
}

/// Run `node examples/node/<script> args…` with `env` to completion and
/// answer its steps; panics with its output if it failed, or if the Node
/// modules are missing (`scripts/test` runs `npm ci` there).
pub fn node_steps(script: &str, args: &[&str], env: &[(&str, &str)]) -> Steps {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node");
    assert!(
        dir.join("node_modules").exists(),
        "node modules missing: run scripts/test (npm ci in examples/node)"
    );
    let out = std::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{script} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Steps::parse(script, &out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound_and_the_test_key_loads() {
        let port = free_port();
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        let key = TestKey::new();
        assert!(!key.keyset().signer.kid.is_empty());
    }
}
