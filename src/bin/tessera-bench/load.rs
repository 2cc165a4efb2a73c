//! `tessera bench`: a bounded load generator for a Tessera server on this
//! machine, and `tessera bench-echo`, a trivial gRPC server (health only)
//! that measures the gRPC ceiling of the machine in the same run.
//!
//! Safety: targets must be loopback addresses; every run is bounded by a
//! request count and a duration.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use tessera::config::Dur;
use tessera::pb;
use tessera::pb::token_authority_client::TokenAuthorityClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Verify,
    Issue,
    Refresh,
    Revoke,
    /// RFC 8693 Exchange of Issue-minted subject tokens (`--token-count`
    /// of them, default 1, cycled) for the audience `bench-downstream`.
    Exchange,
    Mixed,
    Echo,
}

/// Which access tokens the `verify` scenario presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenMix {
    /// One token, issued by the server, repeated.
    Hot,
    /// `--token-count` distinct valid tokens (default 10,000), cycled.
    Warm,
    /// Every request a token not seen before: `--token-count` distinct
    /// tokens (default 200,000, more than the default cache holds), cycled.
    Cold,
    /// A hot set of `--token-count` valid tokens (default 1,000) mixed 50/50
    /// with distinct garbage (valid tokens with a forged signature).
    Flood,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Server to load (loopback only).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    #[arg(long, value_enum, default_value = "verify")]
    pub scenario: Scenario,
    /// Concurrent request streams.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections the streams share (at most one per stream).
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Stop after this long (at most 10m).
    #[arg(long, default_value = "10s")]
    pub duration: Dur,
    /// Stop after this many requests (at most 10,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: u64,
    /// Cap the request rate (per second, 0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// `revoke`: a replica to watch for the events (loopback), for propagation latency.
    #[arg(long)]
    pub watch_addr: Option<SocketAddr>,
    /// PID of the server, to report its CPU time per request (from /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// PID of the store (`redis-server`), to report its CPU time per request.
    /// With the server's and the generator's own, this accounts for the whole
    /// CPU of a run when all three share one machine.
    #[arg(long)]
    pub store_pid: Option<u32>,
    /// API key sent as `x-tessera-key`.
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// `verify`: which tokens to present. All but `hot` mint their tokens
    /// here with `--signing-key` (the server's key) and `--issuer`.
    #[arg(long, value_enum, default_value = "hot")]
    pub tokens: TokenMix,
    /// How many distinct valid tokens `warm`, `cold` and `flood` use.
    #[arg(long)]
    pub token_count: Option<usize>,
    /// The server's signing key, to mint tokens for `--tokens` other than `hot`.
    #[arg(long)]
    pub signing_key: Option<std::path::PathBuf>,
    /// The server's `--issuer`, for minted tokens.
    #[arg(long, default_value = "tessera")]
    pub issuer: String,
    /// The server's admin address (loopback): the verified-token cache's
    /// hits and misses over the run are read from its /metrics.
    #[arg(long)]
    pub admin_addr: Option<SocketAddr>,
}

/// Valid access tokens minted with the server's key, as `Issue` would
/// (their sessions do not exist in the store, which the default `Verify`
/// path never asks).
fn mint_tokens(args: &BenchArgs, count: usize) -> Result<Vec<String>, String> {
    let path = args
        .signing_key
        .as_ref()
        .ok_or("--tokens warm, cold and flood need --signing-key (the server's key)")?;
    let keys = tessera::keys::KeySet::load(path, None).map_err(|e| e.to_string())?;
    let now = tessera_core::unix_now_ms() / 1000;
    let run = tessera::authority::random_b64::<6>();
    (0..count)
        .map(|i| {
            let claims = tessera::tokens::AccessClaims {
                iss: args.issuer.clone(),
                sub: format!("bench-{run}-{i}"),
                aud: vec!["api".into()],
                exp: now + 600,
                nbf: now,
                iat: now,
                jti: format!("bench-{run}-{i}"),
                sid: format!("bench-{run}-{i}"),
                tid: "bench".into(),
                roles: vec![],
                scope: "read".into(),
                cnf: None,
                act: None,
                custom: serde_json::Map::new(),
            };
            tessera::tokens::mint(&keys, &claims).map_err(|e| e.to_string())
        })
        .collect()
}

/// The `n`-th garbage token of a flood: `valid` with its signature's
/// middle replaced by `n`, so that it parses and fails the signature.
fn garbage(valid: &str, n: u64) -> String {
    let cut = valid.len() - 20;
    format!("{}{:010}{}", &valid[..cut], n, &valid[cut + 10..])
}

/// Sum of the samples of metric `name` in a Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// (hits, misses) of the verified-token cache, from the admin port.
async fn cache_counters(admin: Option<SocketAddr>) -> Option<(f64, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let admin = admin?;
    let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some((
        metric_sum(&body, "tessera_verify_cache_hits_total"),
        metric_sum(&body, "tessera_verify_cache_misses_total"),
    ))
}

#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// Listen address (loopback).
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,
}

/// Run the trivial echo server until SIGTERM/SIGINT.
pub async fn echo_server(args: EchoArgs) -> Result<(), String> {
    if !args.listen.ip().is_loopback() {
        return Err("echo listens on loopback only".into());
    }
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    eprintln!("tessera-bench echo listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_shutdown(args.listen, tessera::signals::shutdown())
        .await
        .map_err(|e| e.to_string())
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    /// Answers that were meant to be refusals (a flood's garbage).
    refused: u64,
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of /proc (USER_HZ); 100 on Linux.
const USER_HZ: f64 = 100.0;

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

fn with_key<T>(msg: T, key: &Option<String>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(k) = key {
        if let Ok(v) = k.parse() {
            r.metadata_mut()
                .insert(tessera_core::wire::API_KEY_HEADER, v);
        }
    }
    r
}

async fn connect(addr: SocketAddr) -> Result<Channel, String> {
    Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

fn issue_req(subject: String) -> pb::IssueRequest {
    pb::IssueRequest {
        subject,
        tenant: "bench".into(),
        audience: vec!["api".into()],
        scopes: vec!["read".into()],
        ..Default::default()
    }
}

/// Run a bounded load and return the report.
pub async fn run(args: BenchArgs) -> Result<Value, String> {
    for a in std::iter::once(args.addr).chain(args.watch_addr) {
        if !a.ip().is_loopback() {
            return Err(format!(
                "{a} is not a loopback address: bench only loads this machine"
            ));
        }
    }
    let duration = args.duration.0.min(Duration::from_secs(600));
    let max_requests = args.requests.min(10_000_000);
    // A few connections, shared by the streams, like a real client pool.
    let connections = args.connections.clamp(1, args.concurrency.max(1));
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(connect(args.addr).await?);
    }
    let mut setup = TokenAuthorityClient::new(channels[0].clone());
    let minted: Arc<Vec<String>> = Arc::new(match (args.scenario, args.tokens) {
        (Scenario::Verify, TokenMix::Warm) => {
            mint_tokens(&args, args.token_count.unwrap_or(10_000))?
        }
        (Scenario::Verify, TokenMix::Cold) => {
            mint_tokens(&args, args.token_count.unwrap_or(200_000))?
        }
        (Scenario::Verify, TokenMix::Flood) => {
            mint_tokens(&args, args.token_count.unwrap_or(1_000))?
        }
        _ => Vec::new(),
    });
    // Exchange's subject tokens, issued here before the clock starts.
    let subjects: Arc<Vec<String>> = Arc::new(if args.scenario == Scenario::Exchange {
        let mut out = Vec::new();
        for i in 0..args.token_count.unwrap_or(1).clamp(1, 10_000) {
            let pair = setup
                .issue(with_key(issue_req(format!("bench-x-{i}")), &args.api_key))
                .await
                .map_err(|e| format!("setup Issue failed: {e}"))?
                .into_inner()
                .tokens
                .unwrap_or_default();
            out.push(pair.access_token);
        }
        out
    } else {
        Vec::new()
    });
    let next_token = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mix = args.tokens;
    if let Some(a) = args.admin_addr {
        if !a.ip().is_loopback() {
            return Err(format!("{a} is not a loopback address"));
        }
    }
    let cache_before = cache_counters(args.admin_addr).await;
    let token = if args.scenario == Scenario::Echo {
        String::new()
    } else {
        setup
            .issue(with_key(issue_req("bench-verify".into()), &args.api_key))
            .await
            .map_err(|e| format!("setup Issue failed: {e}"))?
            .into_inner()
            .tokens
            .map(|t| t.access_token)
            .unwrap_or_default()
    };

    // Revocation propagation: cursor → when Revoke returned on A, and cursor
    // → when the event arrived at a watcher on B. An event that arrives
    // before A's response counts as 0.
    let sent: Arc<Mutex<HashMap<EventKey, Instant>>> = Arc::default();
    let arrived: Arc<Mutex<HashMap<EventKey, Instant>>> = Arc::default();
    let mut watcher = None;
    if let (Scenario::Revoke, Some(w)) = (args.scenario, args.watch_addr) {
        let mut wc = TokenAuthorityClient::new(connect(w).await?);
        let mut stream = wc
            .watch_revocations(with_key(
                pb::WatchRevocationsRequest::default(),
                &args.api_key,
            ))
            .await
            .map_err(|e| format!("watch failed: {e}"))?
            .into_inner();
        let arrived = arrived.clone();
        watcher = Some(tokio::spawn(async move {
            while let Ok(Some(ev)) = stream.message().await {
                arrived.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    event_key(&ev.cursor, &ev.tenant, &ev.subject),
                    Instant::now(),
                );
            }
        }));
    }

    // CPU of each process that serves the load, the generator's own included.
    let measured: Vec<(&str, u32)> = [
        ("server", args.server_pid),
        ("store", args.store_pid),
        ("generator", Some(std::process::id())),
    ]
    .into_iter()
    .filter_map(|(name, pid)| Some((name, pid?)))
    .collect();
    let cpu_before: Vec<Option<u64>> = measured.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
    let started = Instant::now();
    let deadline = started + duration;
    let run_id = tessera::authority::random_b64::<6>();
    let issued = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let channel = channels[worker % connections].clone();
        let token = token.clone();
        let minted = minted.clone();
        let subjects = subjects.clone();
        let next_token = next_token.clone();
        let issued = issued.clone();
        let api_key = args.api_key.clone();
        let sent = sent.clone();
        let run_id = run_id.clone();
        let scenario = args.scenario;
        let per_worker_interval = (args.rate > 0)
            .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
        tasks.push(tokio::spawn(async move {
            let mut client = TokenAuthorityClient::new(channel.clone());
            let mut health = HealthClient::new(channel);
            let mut stats = Stats::default();
            let mut refresh_token = String::new();
            let mut seq: u64 = 0;
            let mut next_at = Instant::now();
            loop {
                if Instant::now() >= deadline
                    || issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= max_requests
                {
                    break;
                }
                if let Some(iv) = per_worker_interval {
                    tokio::time::sleep_until(next_at.into()).await;
                    next_at += iv;
                }
                seq += 1;
                let op = match scenario {
                    Scenario::Mixed => match seq % 100 {
                        0..=89 => Scenario::Verify,
                        90..=94 => Scenario::Refresh,
                        95..=98 => Scenario::Issue,
                        _ => Scenario::Revoke,
                    },
                    s => s,
                };
                let mut t0 = Instant::now();
                let result: Result<(), tonic::Status> = match op {
                    Scenario::Verify => {
                        let n = next_token.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let access_token = match mix {
                            _ if minted.is_empty() => token.clone(),
                            TokenMix::Flood if n % 2 == 1 => garbage(&minted[0], n),
                            TokenMix::Flood => minted[(n / 2) as usize % minted.len()].clone(),
                            _ => minted[n as usize % minted.len()].clone(),
                        };
                        match client
                            .verify(with_key(
                                pb::VerifyRequest {
                                    access_token,
                                    ..Default::default()
                                },
                                &api_key,
                            ))
                            .await
                        {
                            // A flood's garbage is meant to fail.
                            Err(_) if mix == TokenMix::Flood && n % 2 == 1 => {
                                stats.latencies_us.push(t0.elapsed().as_micros() as u32);
                                stats.refused += 1;
                                continue;
                            }
                            other => other.map(|_| ()),
                        }
                    }
                    Scenario::Issue => client
                        .issue(with_key(
                            issue_req(format!("bench-{worker}-{seq}")),
                            &api_key,
                        ))
                        .await
                        .map(|_| ()),
                    Scenario::Refresh => {
                        if refresh_token.is_empty() {
                            match client
                                .issue(with_key(issue_req(format!("bench-r-{worker}")), &api_key))
                                .await
                            {
                                Ok(r) => {
                                    refresh_token = r
                                        .into_inner()
                                        .tokens
                                        .map(|t| t.refresh_token)
                                        .unwrap_or_default()
                                }
                                Err(e) => {
                                    *stats.errors.entry(format!("{:?}", e.code())).or_default() +=
                                        1;
                                    continue;
                                }
                            }
                        }
                        let t0 = Instant::now();
                        let r = client
                            .refresh(with_key(
                                pb::RefreshRequest {
                                    refresh_token: refresh_token.clone(),
                                    ..Default::default()
                                },
                                &api_key,
                            ))
                            .await;
                        let elapsed = t0.elapsed();
                        match r {
                            Ok(r) => {
                                refresh_token = r
                                    .into_inner()
                                    .tokens
                                    .map(|t| t.refresh_token)
                                    .unwrap_or_default();
                                stats.latencies_us.push(elapsed.as_micros() as u32);
                            }
                            Err(e) => {
                                refresh_token.clear();
                                *stats.errors.entry(format!("{:?}", e.code())).or_default() += 1;
                            }
                        }
                        continue;
                    }
                    Scenario::Revoke => {
                        // "Log out everywhere" of a subject with a live
                        // session: every call is a new event. A subject
                        // logged out holds nothing until it signs in again
                        // (revoking it again is a no-op without an event), so
                        // each Revoke follows an Issue of its own, outside
                        // the timed call (server CPU per request counts both).
                        let subject = format!("bench-rv-{run_id}-{worker}");
                        if let Err(e) = client
                            .issue(with_key(issue_req(subject.clone()), &api_key))
                            .await
                        {
                            *stats.errors.entry(format!("{:?}", e.code())).or_default() += 1;
                            continue;
                        }
                        t0 = Instant::now();
                        let target = pb::revoke_request::Target::Subject(pb::SubjectRef {
                            tenant: "bench".into(),
                            subject: subject.clone(),
                        });
                        match client
                            .revoke(with_key(
                                pb::RevokeRequest {
                                    target: Some(target),
                                    ..Default::default()
                                },
                                &api_key,
                            ))
                            .await
                        {
                            Ok(r) => {
                                let key = event_key(&r.into_inner().cursor, "bench", &subject);
                                sent.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .insert(key, Instant::now());
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Scenario::Exchange => {
                        let n = next_token.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let subject_token = subjects[n as usize % subjects.len()].clone();
                        client
                            .exchange(with_key(
                                pb::ExchangeRequest {
                                    subject_token,
                                    audience: vec!["bench-downstream".into()],
                                    scopes: vec!["read".into()],
                                    ..Default::default()
                                },
                                &api_key,
                            ))
                            .await
                            .map(|_| ())
                    }
                    Scenario::Echo | Scenario::Mixed => health
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .map(|_| ()),
                };
                match result {
                    Ok(()) => stats.latencies_us.push(t0.elapsed().as_micros() as u32),
                    Err(e) => *stats.errors.entry(format!("{:?}", e.code())).or_default() += 1,
                }
            }
            stats
        }));
    }
    let mut all = Stats::default();
    for t in tasks {
        let s = t.await.map_err(|e| e.to_string())?;
        all.latencies_us.extend(s.latencies_us);
        all.refused += s.refused;
        for (k, v) in s.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    let cache_after = cache_counters(args.admin_addr).await;
    let cpu_after: Vec<Option<u64>> = measured.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
    if watcher.is_some() {
        // Let the last events arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(w) = watcher {
        w.abort();
    }
    all.latencies_us.sort_unstable();
    let ok = all.latencies_us.len() as f64;
    let total = ok + all.errors.values().sum::<u64>() as f64;
    let mut cpu_us_per_req = serde_json::Map::new();
    for (((name, _), before), after) in measured.iter().zip(cpu_before).zip(cpu_after) {
        if let (Some(a), Some(b)) = (before, after) {
            if total > 0.0 {
                let us = b.saturating_sub(a) as f64 / USER_HZ * 1e6 / total;
                cpu_us_per_req.insert((*name).to_owned(), json!(us));
            }
        }
    }
    let mut prop: Vec<u32> = {
        let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
        let arrived = arrived.lock().unwrap_or_else(|p| p.into_inner());
        sent.iter()
            .filter_map(|(cursor, t0)| {
                arrived
                    .get(cursor)
                    .map(|t1| t1.saturating_duration_since(*t0).as_micros() as u32)
            })
            .collect()
    };
    let missing = if args.watch_addr.is_some() {
        sent.lock().unwrap_or_else(|p| p.into_inner()).len() - prop.len()
    } else {
        0
    };
    prop.sort_unstable();
    let ok_total = all.latencies_us.len() as f64;
    let verify_cache = match (cache_before, cache_after) {
        (Some((h0, m0)), Some((h1, m1))) => {
            let (hits, misses) = (h1 - h0, m1 - m0);
            // In a flood only the hot half can hit: its hit ratio is hits
            // over the valid tokens presented.
            let valid = ok_total - all.refused as f64;
            Some(json!({
                "hits": hits,
                "misses": misses,
                "hit_ratio": if hits + misses > 0.0 { hits / (hits + misses) } else { 0.0 },
                "valid_token_hit_ratio": if valid > 0.0 { hits / valid } else { 0.0 },
            }))
        }
        _ => None,
    };
    Ok(json!({
        "tokens": format!("{:?}", args.tokens).to_lowercase(),
        "refused_as_meant": all.refused,
        "verify_cache": verify_cache,
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "concurrency": args.concurrency,
        "duration_s": elapsed.as_secs_f64(),
        "requests_ok": ok,
        "errors": all.errors,
        "rps": ok / elapsed.as_secs_f64(),
        "latency_ms": {
            "p50": percentile(&all.latencies_us, 0.50),
            "p90": percentile(&all.latencies_us, 0.90),
            "p99": percentile(&all.latencies_us, 0.99),
            "p999": percentile(&all.latencies_us, 0.999),
        },
        "cpu_us_per_request": cpu_us_per_req,
        "propagation_ms": (!prop.is_empty()).then(|| json!({
            "events": prop.len(),
            "missing": missing,
            "p50": percentile(&prop, 0.50),
            "p99": percentile(&prop, 0.99),
            "max": percentile(&prop, 1.0),
        })),
    }))
}

/// Render a report as a small table.
pub fn table(r: &Value) -> String {
    let mut out = format!(
        "scenario {}  concurrency {}  {:.1}s\n  ok {}  rps {:.0}\n  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}\n  errors {}\n",
        r["scenario"].as_str().unwrap_or(""),
        r["concurrency"],
        r["duration_s"].as_f64().unwrap_or(0.0),
        r["requests_ok"],
        r["rps"].as_f64().unwrap_or(0.0),
        r["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
        r["latency_ms"]["p90"].as_f64().unwrap_or(0.0),
        r["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
        r["latency_ms"]["p999"].as_f64().unwrap_or(0.0),
        r["errors"],
    );
    if let Some(cpu) = r["cpu_us_per_request"].as_object() {
        let parts: Vec<String> = cpu
            .iter()
            .map(|(name, us)| format!("{name} {:.1}", us.as_f64().unwrap_or(0.0)))
            .collect();
        out.push_str(&format!("  CPU µs/request  {}\n", parts.join("  ")));
    }
    if let Some(c) = r["verify_cache"].as_object() {
        out.push_str(&format!(
            "  tokens {}  verify cache: hits {}  misses {}  hit ratio {:.3}  valid-token hit ratio {:.3}  refused as meant {}\n",
            r["tokens"].as_str().unwrap_or(""),
            c["hits"],
            c["misses"],
            c["hit_ratio"].as_f64().unwrap_or(0.0),
            c["valid_token_hit_ratio"].as_f64().unwrap_or(0.0),
            r["refused_as_meant"],
        ));
    }
    if r["propagation_ms"].is_object() {
        let p = &r["propagation_ms"];
        out.push_str(&format!(
            "  propagation ms ({} events, {} missing)  p50 {:.3}  p99 {:.3}  max {:.3}\n",
            p["events"],
            p["missing"],
            p["p50"].as_f64().unwrap_or(0.0),
            p["p99"].as_f64().unwrap_or(0.0),
            p["max"].as_f64().unwrap_or(0.0)
        ));
    }
    out
}

/// A subject revocation's event, the same on both sides: its subject's
/// partition and its position there. (Cursors are composite and each
/// replica's own; Revoke's puts the event's partition exactly at the event,
/// and so does the cursor a watcher gets with the event.)
type EventKey = Option<(u32, (u64, u64))>;

fn event_key(cursor: &str, tenant: &str, subject: &str) -> EventKey {
    let (_, at) = tessera::cursor::Position::parse(cursor)?;
    // The partition of a subject depends on the count only (not on the
    // tags, which take thousands of slot hashes to choose).
    let p = tessera::store::partition::of_subject(
        &tessera::store::subject_key(tenant, subject),
        at.partitions(),
    );
    Some((p, at.get(p)))
}
