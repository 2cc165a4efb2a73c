//! Tessera itself: in-process [`Server`]s started by an [`Env`] on a
//! store [`Backend`], and real `tessera serve` [`Process`]es; the keys,
//! tenants and callers files they are started with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tessera::config::ServeArgs;
use tessera::pb::token_authority_client::TokenAuthorityClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::{http_get, Client, RedisServer};

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
        let listeners = tessera::Listeners {
            grpc: listener,
            admin: Some(admin_listener),
            http: http_listener,
        };
        // Built inside the task: a start-up error is what `stop` returns.
        let task = tokio::spawn(async move {
            let app = tessera::App::build(args, listeners).await?;
            app.run(async move {
                let _ = stopped.await;
            })
            .await
        });
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

    /// Graceful stop; returns what building or running the `App` returned.
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
