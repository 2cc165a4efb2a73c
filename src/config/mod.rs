//! Command line, `TESSERA_*` environment variables and the TOML file of
//! `--config`, with the defaults of docs/design.md §8.
//!
//! Precedence, highest first: command-line flag, environment variable, TOML
//! file, built-in default. The TOML file uses the flag names as keys
//! (`redis-url = "redis://…"` or `redis_url = …`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Default gRPC listen address: loopback, so a fresh `tessera serve` is never
/// reachable from the network by accident.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default admin HTTP address (metrics, health, JWKS), loopback for the same reason.
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Access tokens are short-lived: revocation is fast, but a stolen token dies soon anyway.
pub(crate) const DEFAULT_ACCESS_TTL: &str = "15m";
/// Refresh tokens live a week: a user who comes back within a week stays signed in.
pub(crate) const DEFAULT_REFRESH_TTL: &str = "7d";
/// Clock-skew tolerance for `exp`, `nbf` and `iat`; 30 s covers NTP-disciplined hosts.
pub(crate) const DEFAULT_LEEWAY: &str = "30s";
/// How long a just-rotated refresh token may be retried and receive the same
/// successor (two tabs, a lost response): long enough for a retry, too short for theft.
pub(crate) const DEFAULT_REFRESH_GRACE: &str = "5s";
/// Sliding renewal: above this remaining lifetime `Verify(renew)` does nothing.
pub(crate) const DEFAULT_RENEWAL_WARNING: &str = "15m";
/// Sliding renewal: below this remaining lifetime `Verify(renew)` mints a new token.
pub(crate) const DEFAULT_RENEWAL_CRITICAL: &str = "5m";
/// Absolute session lifetime that neither rotation nor renewal extends.
pub(crate) const DEFAULT_SESSION_LIFETIME: &str = "30d";
/// Upper bound for a requested `access_ttl`.
pub(crate) const DEFAULT_MAX_ACCESS_TTL: &str = "1h";
/// Upper bound for a requested `refresh_ttl`.
pub(crate) const DEFAULT_MAX_REFRESH_TTL: &str = "30d";
/// How long a watcher may leave its stream unread before it is cut off.
pub(crate) const DEFAULT_WATCH_SEND_TIMEOUT: &str = "10s";
/// Per-subject Issue and Refresh budget: 10 per second, bursts of 20 (the
/// seeds' defaults) — generous for people, tight for credential stuffing.
pub(crate) const DEFAULT_SUBJECT_RATE: &str = "10:20";
/// Per-caller Issue budget when `--caller-rate` names none for Issue (nor
/// `*`): every session is held for up to its refresh TTL, so a caller's
/// budget bounds the state it can make Tessera hold (rate × TTL). Far above
/// a login service's peak; `--caller-rate Issue=off` lifts it.
pub(crate) const DEFAULT_CALLER_ISSUE_RATE: &str = "1000:2000";
/// The most actors an exchanged token's `act` chain may hold (RFC 8693
/// §4.1 nests one per exchange): a user's token passed through three
/// services is as deep as real call graphs go; deeper chains are more
/// likely a loop than a need.
pub(crate) const DEFAULT_MAX_EXCHANGE_DEPTH: u32 = 3;
/// How long a shutdown waits for in-flight calls before exiting anyway;
/// below Kubernetes' default 30 s grace period so the exit is ours.
pub(crate) const DEFAULT_DRAIN_TIMEOUT: &str = "25s";
/// Deadline for every store command: fail fast instead of hanging RPCs.
pub(crate) const DEFAULT_STORE_TIMEOUT: &str = "1s";
/// `Cache-Control: max-age` of `/.well-known/jwks.json`: how long offline
/// verifiers may keep a copy, and so how long a key must be published
/// before it signs (README, key rotation).
pub(crate) const DEFAULT_JWKS_MAX_AGE: &str = "5m";
/// Open connections on the gRPC port: far above what a fleet of services
/// with pooled channels opens, well below common descriptor limits.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Open connections on the admin port: probes and a Prometheus scraper.
pub(crate) const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;
/// A connection that sends nothing for this long is closed, handshake or
/// not (slowloris). Above the keep-alive interval plus its timeout, so a
/// quiet but live HTTP/2 peer, which answers the pings, is never cut.
pub(crate) const DEFAULT_IDLE_TIMEOUT: &str = "30s";
/// HTTP/2 keep-alive: ping a connection quiet for this long ...
pub(crate) const DEFAULT_HTTP2_KEEPALIVE_INTERVAL: &str = "10s";
/// ... and close it when the ping is not answered within this.
pub(crate) const DEFAULT_HTTP2_KEEPALIVE_TIMEOUT: &str = "10s";
/// Admin HTTP/1: the request head must arrive within this.
pub(crate) const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
pub(crate) const DEFAULT_HTTP_REQUEST_TIMEOUT: &str = "10s";
/// Concurrent streams per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS):
/// a client pool needs more connections past this, not more memory per one.
pub(crate) const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 128;
/// Open `WatchRevocations` streams on a replica, all callers together
/// (each holds a buffer of up to 256 events).
pub(crate) const DEFAULT_MAX_WATCHERS: usize = 4096;
/// Open `grpc.health.v1.Health/Watch` streams (health needs no credentials).
pub(crate) const DEFAULT_MAX_HEALTH_WATCHES: usize = 256;
/// A unary call, request body included, must finish within this.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: &str = "30s";
/// Streams an HTTP/2 peer may make the server reset (protocol errors)
/// before it is sent GOAWAY: hyper's own default, which tonic turns off
/// unless it is set ("MadeYouReset", CVE-2025-8671).
pub(crate) const DEFAULT_HTTP2_MAX_RESETS: usize = 1024;

mod parse;
mod parts;
mod policy;
mod values;

pub use values::{key_alg_parser, CallerRate, Dur, KeyAlg, RateSpec};

/// A header-name prefix: lowercase token characters (RFC 9110 §5.6.2).
fn header_prefix(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(s.to_owned())
    } else {
        Err("lowercase letters, digits and '-', at most 64".into())
    }
}

/// An http(s) URL with no query or fragment, kept without a trailing `/`.
fn base_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if rest.is_empty()
        || rest.starts_with('/')
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err("must be an http(s) URL with a host and no query or fragment".into());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// A CORS origin: `*`, or `scheme://host[:port]` with no path.
fn cors_origin(s: &str) -> Result<String, String> {
    if s == "*" {
        return Ok(s.to_owned());
    }
    let url = base_url(s)?;
    let host = url.split_once("://").map_or("", |(_, h)| h);
    if host.contains('/') {
        return Err("an origin is scheme://host[:port], with no path".into());
    }
    Ok(url)
}

/// Live sessions a subject may hold by default: far above any person's
/// devices, low enough that one subject cannot grow the store without bound
/// (every store call on a subject costs the same whatever it holds, but its
/// memory does not).
pub(crate) const DEFAULT_MAX_SESSIONS_PER_SUBJECT: u32 = 1_000;

/// What Issue does when a subject is at `--max-sessions-per-subject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionCapPolicy {
    /// Revoke the subject's oldest live session(s) to make room.
    EvictOldest,
    /// Refuse the Issue with RESOURCE_EXHAUSTED / SESSION_LIMIT.
    Refuse,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `tessera serve`. Every flag is also `TESSERA_<FLAG>` and a key of `--config`.
#[derive(Debug, Clone, Args)]
#[command(args_override_self = true)]
pub struct ServeArgs {
    /// TOML file with any of these settings (flag names as keys).
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "TESSERA_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Admin HTTP listen address (/metrics, /healthz, /readyz, /.well-known/jwks.json).
    #[arg(long, env = "TESSERA_ADMIN_LISTEN", default_value = DEFAULT_ADMIN_LISTEN)]
    pub admin_listen: SocketAddr,
    /// OAuth HTTP endpoints on this address (off when absent): RFC 7662
    /// introspection, RFC 7009 revocation, the `refresh_token` grant, RFC
    /// 8414 discovery and the JWK set. TLS like the gRPC port; with
    /// `--tls-client-ca` a client certificate is asked for but optional
    /// (the token endpoint serves public clients).
    #[arg(long, env = "TESSERA_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Serve the public token endpoint (`POST /oauth2/token`: the
    /// `refresh_token` grant, and RFC 8693 token exchange for callers
    /// allowed `Exchange`) on `--http-listen`. Off by default: opening
    /// the port for gateways' introspection must not open refresh to
    /// anyone who can reach it.
    #[arg(long, env = "TESSERA_HTTP_TOKEN_ENDPOINT", num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub http_token_endpoint: bool,
    /// The token endpoint's budget for each client IP address, `RATE:BURST`
    /// or `off`: counted in the store, across replicas, before anything
    /// else is read (issue #32: a public endpoint with no budget let anyone
    /// make the store work). NAT'd clients share one address: raise it if
    /// many of yours refresh through one.
    #[arg(long, env = "TESSERA_HTTP_TOKEN_RATE_PER_IP", default_value = "10:50")]
    pub http_token_rate_per_ip: RateSpec,
    /// The token endpoint's budget overall (every client together, across
    /// replicas), `RATE:BURST` or `off`.
    #[arg(long, env = "TESSERA_HTTP_TOKEN_RATE", default_value = "1000:2000")]
    pub http_token_rate: RateSpec,
    /// The base URL of the OAuth endpoints as clients reach them, for
    /// discovery (default: `--issuer` when it is an http(s) URL, otherwise
    /// the `--http-listen` address).
    #[arg(long, env = "TESSERA_PUBLIC_URL", value_parser = base_url)]
    pub public_url: Option<String>,
    /// An origin (`https://app.example.com`) whose pages may call the token
    /// endpoint and discovery (CORS); repeatable or comma-separated, `*` =
    /// any origin. None by default.
    #[arg(long, env = "TESSERA_HTTP_CORS_ORIGIN", value_delimiter = ',', value_parser = cors_origin)]
    pub http_cors_origin: Vec<String>,
    /// Redis URL (redis://, rediss://, redis-sentinel://, redis-cluster://). Absent = in-memory store.
    /// May carry credentials: `--help` never shows its environment value,
    /// and logs and errors show it through `store::redis::redact_url`.
    #[arg(long, env = "TESSERA_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// CA bundle (PEM) that a `rediss://` server's certificate must chain to
    /// (default: the system's roots). Needs a `rediss` URL.
    #[arg(long, env = "TESSERA_REDIS_TLS_CA")]
    pub redis_tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM) shown to a `rediss://` server that
    /// asks for one (`tls-auth-clients`); with --redis-tls-key.
    #[arg(long, env = "TESSERA_REDIS_TLS_CERT", requires = "redis_tls_key")]
    pub redis_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --redis-tls-cert.
    #[arg(long, env = "TESSERA_REDIS_TLS_KEY", requires = "redis_tls_cert")]
    pub redis_tls_key: Option<PathBuf>,
    /// The `iss` of minted tokens, required on verified ones.
    #[arg(long, env = "TESSERA_ISSUER", default_value = "tessera")]
    pub issuer: String,
    /// Default access-token lifetime.
    #[arg(long, env = "TESSERA_ACCESS_TTL", default_value = DEFAULT_ACCESS_TTL)]
    pub access_ttl: Dur,
    /// Default refresh-token lifetime.
    #[arg(long, env = "TESSERA_REFRESH_TTL", default_value = DEFAULT_REFRESH_TTL)]
    pub refresh_ttl: Dur,
    /// Cap on a requested `access_ttl`.
    #[arg(long, env = "TESSERA_MAX_ACCESS_TTL", default_value = DEFAULT_MAX_ACCESS_TTL)]
    pub max_access_ttl: Dur,
    /// Cap on a requested `refresh_ttl`.
    #[arg(long, env = "TESSERA_MAX_REFRESH_TTL", default_value = DEFAULT_MAX_REFRESH_TTL)]
    pub max_refresh_ttl: Dur,
    /// Signing key, PKCS#8 PEM (EdDSA, ES256 or RS256), or the secret for HS256.
    /// Absent: an ephemeral EdDSA key (with a warning; tokens die with the process).
    #[arg(long, env = "TESSERA_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Keys that verify but do not sign (PKCS#8 PEM files, comma-separated
    /// or repeated): the previous key after a rotation, until its tokens have
    /// expired, and the next key before it signs. With `--signing-alg hs256`
    /// a file that is not PEM is an HS256 secret. All keys are re-read on SIGHUP.
    /// Env `TESSERA_VERIFY_KEY`; the old `TESSERA_VERIFY_KEYS` is still read
    /// (deprecated) when nothing else sets it.
    #[arg(long, env = "TESSERA_VERIFY_KEY", value_delimiter = ',')]
    pub verify_key: Vec<PathBuf>,
    /// `Cache-Control: max-age` of /.well-known/jwks.json. A new key must be
    /// published (as a --verify-key) at least this long before it signs.
    #[arg(long, env = "TESSERA_JWKS_MAX_AGE", default_value = DEFAULT_JWKS_MAX_AGE)]
    pub jwks_max_age: Dur,
    /// Most tokens in the verified-token cache (a token seen before skips
    /// parsing and the signature; every other check still runs). `0` = off.
    #[arg(long, env = "TESSERA_VERIFY_CACHE_SIZE", default_value_t = tessera_core::tokens::CacheBounds::DEFAULT_ENTRIES)]
    pub verify_cache_size: u64,
    /// Most bytes (estimated) the verified-token cache holds. `0` = off.
    #[arg(long, env = "TESSERA_VERIFY_CACHE_BYTES", default_value_t = tessera_core::tokens::CacheBounds::DEFAULT_BYTES)]
    pub verify_cache_bytes: u64,
    /// Algorithm of `--signing-key`; detected from the PEM when absent. `hs256` must be explicit.
    #[arg(long, env = "TESSERA_SIGNING_ALG", value_parser = key_alg_parser())]
    pub signing_alg: Option<KeyAlg>,
    /// TLS certificate chain (PEM) for the gRPC port; with --tls-key enables TLS.
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the gRPC port.
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) that client certificates must chain to; makes client
    /// certificates (mTLS) mandatory. Callers match by `tls_uri`, `tls_dns` or `tls_cn`.
    #[arg(long, env = "TESSERA_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// TOML file of allowed callers (`[[caller]]` with `api_key_sha256` and `allow`).
    #[arg(long, env = "TESSERA_CALLERS")]
    pub callers: Option<PathBuf>,
    /// TOML file of tenants with their own issuer and signing key
    /// (`[[tenant]]` with `name`, `issuer`, `signing_key`; optional
    /// `verify_keys`, `issue_rate`, `refresh_rate`, `max_sessions_per_subject`).
    /// Tenants without an entry use `--issuer` and `--signing-key`. Re-read
    /// on SIGHUP.
    #[arg(long, env = "TESSERA_TENANTS")]
    pub tenants: Option<PathBuf>,
    /// Accept unauthenticated calls on a non-loopback address when no callers are configured.
    #[arg(long, env = "TESSERA_ALLOW_ANONYMOUS", num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub allow_anonymous: bool,
    /// Clock-skew tolerance for `exp`, `nbf` and `iat`.
    #[arg(long, env = "TESSERA_LEEWAY", default_value = DEFAULT_LEEWAY)]
    pub leeway: Dur,
    /// Window in which a just-rotated refresh token gets the same successor pair.
    #[arg(long, env = "TESSERA_REFRESH_GRACE", default_value = DEFAULT_REFRESH_GRACE)]
    pub refresh_grace: Dur,
    /// Redis only: Revoke (and the session kill of a detected refresh-token
    /// reuse) answers only once this many replicas acknowledged the write
    /// (`WAIT`); fewer within the store timeout: UNAVAILABLE, the revocation
    /// in force on the master, retry to confirm. `0` = asynchronous
    /// replication (a failover may lose the last revocations).
    #[arg(long, env = "TESSERA_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
    /// Partitions of the keyspace (1–4096): each has its own Redis Cluster
    /// hash tag and revocation log, so the load spreads over a Cluster's
    /// masters. Fixed for a deployment: the first replica records it in
    /// Redis, and a replica started with another count refuses to start.
    /// Session ids carry their partition (the memory store ignores it).
    #[arg(long, env = "TESSERA_REDIS_PARTITIONS", default_value_t = crate::store::partition::DEFAULT_PARTITIONS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::store::partition::MAX_PARTITIONS)))]
    pub redis_partitions: u32,
    /// Envoy ext_authz: the prefix of the identity headers added upstream
    /// (`<prefix>subject`, `tenant`, `session`, `scopes`, `roles`).
    #[arg(long, env = "TESSERA_EXT_AUTHZ_HEADER_PREFIX", default_value = "x-tessera-", value_parser = header_prefix)]
    pub ext_authz_header_prefix: String,
    /// Envoy ext_authz: remove the request's `authorization` header before
    /// it goes upstream (the upstream trusts the identity headers instead).
    #[arg(long, env = "TESSERA_EXT_AUTHZ_STRIP_AUTHORIZATION", num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub ext_authz_strip_authorization: bool,
    /// How far a DPoP proof's `iat` may be from now (plus `--leeway`);
    /// a proof's `jti` is remembered for twice that, across replicas.
    #[arg(long, env = "TESSERA_DPOP_WINDOW", default_value = "60s")]
    pub dpop_window: Dur,
    /// Require DPoP proofs to carry a server nonce (RFC 9449 §8): a proof
    /// without the current one is refused with the nonce in the
    /// `dpop-nonce` metadata; nonces change every `--dpop-window`.
    #[arg(long, env = "TESSERA_DPOP_NONCE", num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub dpop_nonce: bool,
    /// Most live sessions per subject (`0` = no cap). The store keeps every
    /// session of a subject in its indexes, so the default bounds what one
    /// subject can make the store hold (issue #32); machine clients that
    /// keep many sessions raise it.
    #[arg(long, env = "TESSERA_MAX_SESSIONS_PER_SUBJECT", default_value_t = DEFAULT_MAX_SESSIONS_PER_SUBJECT)]
    pub max_sessions_per_subject: u32,
    /// At the cap: `evict-oldest` revokes the oldest live session, `refuse`
    /// answers RESOURCE_EXHAUSTED / SESSION_LIMIT.
    #[arg(
        long,
        env = "TESSERA_SESSION_CAP_POLICY",
        value_enum,
        default_value = "evict-oldest"
    )]
    pub session_cap_policy: SessionCapPolicy,
    /// The audit trail: one JSON event per session event on the tracing
    /// target `tessera::audit` (docs/audit.md).
    #[arg(long, env = "TESSERA_AUDIT", num_args = 0..=1, default_missing_value = "true", default_value = "true", action = clap::ArgAction::Set)]
    pub audit: bool,
    /// Sliding renewal on `Verify(renew = true)`.
    #[arg(long, env = "TESSERA_RENEWAL", num_args = 0..=1, default_missing_value = "true", default_value = "true", action = clap::ArgAction::Set)]
    pub renewal: bool,
    /// Remaining lifetime below which renewal extends the session's idle expiry.
    #[arg(long, env = "TESSERA_RENEWAL_WARNING", default_value = DEFAULT_RENEWAL_WARNING)]
    pub renewal_warning: Dur,
    /// Remaining lifetime below which renewal mints a new access token.
    #[arg(long, env = "TESSERA_RENEWAL_CRITICAL", default_value = DEFAULT_RENEWAL_CRITICAL)]
    pub renewal_critical: Dur,
    /// Absolute session lifetime; no rotation or renewal extends it.
    #[arg(long, env = "TESSERA_SESSION_LIFETIME", default_value = DEFAULT_SESSION_LIFETIME)]
    pub session_lifetime: Dur,
    /// Idle timeout of a session: each refresh or renewal moves its refresh
    /// expiry to now + this (default: the session's refresh TTL).
    #[arg(long, env = "TESSERA_SESSION_IDLE")]
    pub session_idle: Option<Dur>,
    /// Deadline of every store command.
    #[arg(long, env = "TESSERA_STORE_TIMEOUT", default_value = DEFAULT_STORE_TIMEOUT)]
    pub store_timeout: Dur,
    /// How long a watcher may leave its stream unread before it is cut off.
    #[arg(long, env = "TESSERA_WATCH_SEND_TIMEOUT", default_value = DEFAULT_WATCH_SEND_TIMEOUT)]
    pub watch_send_timeout: Dur,
    /// On SIGTERM/SIGINT, how long in-flight calls may take before exit.
    #[arg(long, env = "TESSERA_DRAIN_TIMEOUT", default_value = DEFAULT_DRAIN_TIMEOUT)]
    pub drain_timeout: Dur,
    /// Per-subject budget of Issue (`RATE:BURST` per second, or `off`), across replicas.
    #[arg(long, env = "TESSERA_ISSUE_RATE", default_value = DEFAULT_SUBJECT_RATE)]
    pub issue_rate: RateSpec,
    /// Per-subject budget of Refresh (`RATE:BURST`, or `off`), across replicas.
    #[arg(long, env = "TESSERA_REFRESH_RATE", default_value = DEFAULT_SUBJECT_RATE)]
    pub refresh_rate: RateSpec,
    /// Send the raw subject on the subject events of `WatchRevocations`
    /// beside `subject_key`, for verifiers that match subject revocations by
    /// tenant and subject (those released before the key). `false` once
    /// every verifier matches by `subject_key` (the libraries do as of this
    /// version): the stream then carries no subject at all.
    #[arg(long, env = "TESSERA_WATCH_RAW_SUBJECTS", num_args = 0..=1, default_missing_value = "true", default_value = "true", action = clap::ArgAction::Set)]
    pub watch_raw_subjects: bool,
    /// Tenants counted by name in `tessera_tenant_events_total{tenant, event}`
    /// (comma-separated or repeated); every other tenant counts as `other`.
    /// Absent: no per-tenant series at all. Only the tenants listed here
    /// ever become label values, so their number bounds the series.
    #[arg(long, env = "TESSERA_METRICS_TENANTS", value_delimiter = ',')]
    pub metrics_tenants: Vec<String>,
    /// Exchange: the most actors an `act` chain may hold (1 = an exchanged
    /// token can never be exchanged again). Deeper is PERMISSION_DENIED /
    /// EXCHANGE_NOT_ALLOWED.
    #[arg(long, env = "TESSERA_MAX_EXCHANGE_DEPTH", default_value_t = DEFAULT_MAX_EXCHANGE_DEPTH,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub max_exchange_depth: u32,
    /// Per-caller budget of an RPC, `RPC=RATE:BURST` (`*=…` for all), repeatable
    /// or comma-separated. Counted in the store (one round trip per limited
    /// call; Issue's is counted in its own script). Issue and Exchange have
    /// a budget of 1000:2000 each unless one is given here (`Issue=off`,
    /// `Exchange=off` lift them).
    #[arg(long, env = "TESSERA_CALLER_RATE", value_delimiter = ',')]
    pub caller_rate: Vec<CallerRate>,
    /// Most open connections on the gRPC port; at the cap, new ones wait to be accepted.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most open connections on the admin port.
    #[arg(long, env = "TESSERA_ADMIN_MAX_CONNECTIONS", default_value_t = DEFAULT_ADMIN_MAX_CONNECTIONS)]
    pub admin_max_connections: usize,
    /// Close a connection (either port) that sends nothing for this long:
    /// also the bound on TLS and HTTP/2 handshakes.
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT", default_value = DEFAULT_IDLE_TIMEOUT)]
    pub idle_timeout: Dur,
    /// Ping an HTTP/2 connection that has been quiet this long.
    #[arg(long, env = "TESSERA_HTTP2_KEEPALIVE_INTERVAL", default_value = DEFAULT_HTTP2_KEEPALIVE_INTERVAL)]
    pub http2_keepalive_interval: Dur,
    /// Close an HTTP/2 connection whose ping is not answered within this.
    #[arg(long, env = "TESSERA_HTTP2_KEEPALIVE_TIMEOUT", default_value = DEFAULT_HTTP2_KEEPALIVE_TIMEOUT)]
    pub http2_keepalive_timeout: Dur,
    /// Admin HTTP: the request head must arrive within this.
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT", default_value = DEFAULT_HEADER_READ_TIMEOUT)]
    pub header_read_timeout: Dur,
    /// Admin and OAuth HTTP: once its head is in, a request must have sent
    /// its whole body and been answered within this (408 and the
    /// connection closed otherwise), however slowly it trickles.
    #[arg(long, env = "TESSERA_HTTP_REQUEST_TIMEOUT", default_value = DEFAULT_HTTP_REQUEST_TIMEOUT)]
    pub http_request_timeout: Dur,
    /// Concurrent streams per HTTP/2 connection (advertised in SETTINGS).
    #[arg(long, env = "TESSERA_MAX_CONCURRENT_STREAMS", default_value_t = DEFAULT_MAX_CONCURRENT_STREAMS)]
    pub max_concurrent_streams: u32,
    /// Most open WatchRevocations streams on this replica; over it: RESOURCE_EXHAUSTED.
    #[arg(long, env = "TESSERA_MAX_WATCHERS", default_value_t = DEFAULT_MAX_WATCHERS)]
    pub max_watchers: usize,
    /// Most open grpc.health.v1 Watch streams; over it: RESOURCE_EXHAUSTED.
    #[arg(long, env = "TESSERA_MAX_HEALTH_WATCHES", default_value_t = DEFAULT_MAX_HEALTH_WATCHES)]
    pub max_health_watches: usize,
    /// Deadline of a unary call, reading its request body included.
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT", default_value = DEFAULT_REQUEST_TIMEOUT)]
    pub request_timeout: Dur,
    /// Streams an HTTP/2 peer may cause the server to reset before GOAWAY.
    #[arg(long, env = "TESSERA_HTTP2_MAX_RESETS", default_value_t = DEFAULT_HTTP2_MAX_RESETS)]
    pub http2_max_resets: usize,
    /// Log format.
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint to export traces to (`http://collector:4317`);
    /// absent: no traces, at no cost. The standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is read when nothing else sets it.
    #[arg(long, env = "TESSERA_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Share of the traces that start here to record (0 to 1); a trace a
    /// caller started (its `traceparent`) keeps the caller's decision.
    #[arg(long, env = "TESSERA_TRACE_SAMPLE_RATIO", default_value = crate::trace::DEFAULT_SAMPLE_RATIO)]
    pub trace_sample_ratio: f64,
}

#[cfg(test)]
mod tests;
