//! `tessera-bench load`: a bounded load generator for a Tessera server on
//! this machine, over the SDK's client.
//!
//! Safety: targets must be loopback addresses; every run is bounded by a
//! request count and a duration.
//!
//! - [`setup`]: connections, the tokens a run presents, minted or issued
//!   before the clock starts;
//! - [`worker`]: one request stream, scenario by scenario;
//! - [`propagation`]: revocation events timed from Revoke on one replica to
//!   their arrival at a watcher of another;
//! - [`report`]: CPU, latency percentiles, cache counters, the table.

mod propagation;
mod report;
mod setup;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::Value;

pub use report::table;
use tessera_core::duration::Dur;

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
    /// `revoke`: revoke these sessions by id instead (a file of one session
    /// id a line, `-` for stdin; at most 100,000), each once, in order; the
    /// run ends when they run out. For timing another process's verifier
    /// (the client libraries' benches).
    #[arg(long)]
    pub sessions: Option<std::path::PathBuf>,
    /// With `--sessions`: write `session_id unix_time_ns` here for each
    /// Revoke that returned OK, the wall clock (CLOCK_REALTIME) when its
    /// answer arrived. Failed ones are counted in the report's errors.
    #[arg(long, requires = "sessions")]
    pub returned_out: Option<std::path::PathBuf>,
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
    /// `issue` and `refresh`: every session belongs to this one subject
    /// (tenant `bench`), the machine-client case of a subject holding many
    /// sessions. Without it each Issue names a subject of its own, new to
    /// the store, and each refresh stream one subject.
    #[arg(long)]
    pub subject: Option<String>,
}

/// Run a bounded load and return the report.
pub async fn run(args: BenchArgs) -> Result<Value, String> {
    for a in [Some(args.addr), args.watch_addr, args.admin_addr]
        .into_iter()
        .flatten()
    {
        setup::loopback(a)?;
    }
    let duration = args.duration.0.min(Duration::from_secs(600));
    let mut max_requests = args.requests.min(10_000_000);
    // A few connections, shared by the streams, like a real client pool.
    let connections = args.connections.clamp(1, args.concurrency.max(1));
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(setup::connect(args.addr).await?);
    }
    let tokens = setup::Tokens::prepare(&args, channels[0].clone()).await?;
    if args.sessions.is_some() {
        max_requests = max_requests.min(tokens.sessions.len() as u64);
    }
    let cache_before = report::cache_counters(args.admin_addr).await;
    let propagation = propagation::Propagation::start(&args).await?;
    let cpu = report::Cpu::start(args.server_pid, args.store_pid);
    let started = Instant::now();
    let shared = Arc::new(worker::Shared {
        tokens,
        mix: args.tokens,
        scenario: args.scenario,
        deadline: started + duration,
        max_requests,
        issued: Default::default(),
        next_token: Default::default(),
        run_id: setup::random_b64::<6>(),
        subject: args.subject.clone(),
        sent: propagation.sent(),
        returned: Default::default(),
        per_worker_interval: (args.rate > 0)
            .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64)),
    });
    let mut tasks = Vec::new();
    for id in 0..args.concurrency {
        let w = worker::Worker::new(id, &channels[id % connections], &args, shared.clone())?;
        tasks.push(tokio::spawn(w.run()));
    }
    let mut all = report::Stats::default();
    for t in tasks {
        all.merge(t.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed();
    if let Some(path) = &args.returned_out {
        setup::write_returned(path, &shared)?;
    }
    let cache_after = report::cache_counters(args.admin_addr).await;
    let cpu = cpu.finish();
    let propagation = propagation.finish(args.watch_addr.is_some()).await;
    Ok(report::Report {
        args: &args,
        stats: all,
        elapsed,
        cpu,
        cache: cache_before.zip(cache_after),
        propagation,
    }
    .json())
}
