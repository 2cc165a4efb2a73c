//! The report of a run: latency percentiles, errors by code, CPU per
//! request of every process from /proc, the verified-token cache's counters
//! from the server's /metrics; as JSON, or [`table`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use super::BenchArgs;

/// What the streams measured.
#[derive(Default)]
pub struct Stats {
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    /// Answers that were meant to be refusals (a flood's garbage).
    pub refused: u64,
}

impl Stats {
    pub fn latency(&mut self, d: Duration) {
        self.latencies_us.push(d.as_micros() as u32);
    }

    pub fn error(&mut self, code: String) {
        *self.errors.entry(code).or_default() += 1;
    }

    pub fn merge(&mut self, s: Stats) {
        self.latencies_us.extend(s.latencies_us);
        self.refused += s.refused;
        for (k, v) in s.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
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

/// CPU of each process that serves the load, the generator's own included.
pub struct Cpu {
    measured: Vec<(&'static str, u32)>,
    before: Vec<Option<u64>>,
    after: Vec<Option<u64>>,
}

impl Cpu {
    pub fn start(server_pid: Option<u32>, store_pid: Option<u32>) -> Self {
        let measured: Vec<(&str, u32)> = [
            ("server", server_pid),
            ("store", store_pid),
            ("generator", Some(std::process::id())),
        ]
        .into_iter()
        .filter_map(|(name, pid)| Some((name, pid?)))
        .collect();
        let before = measured.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
        Cpu {
            measured,
            before,
            after: Vec::new(),
        }
    }

    pub fn finish(mut self) -> Self {
        self.after = self
            .measured
            .iter()
            .map(|(_, pid)| cpu_ticks(*pid))
            .collect();
        self
    }

    /// Microseconds of CPU per request (of `total`), by process.
    fn per_request(&self, total: f64) -> serde_json::Map<String, Value> {
        let mut out = serde_json::Map::new();
        for (((name, _), before), after) in self.measured.iter().zip(&self.before).zip(&self.after)
        {
            if let (Some(a), Some(b)) = (before, after) {
                if total > 0.0 {
                    let us = b.saturating_sub(*a) as f64 / USER_HZ * 1e6 / total;
                    out.insert((*name).to_owned(), json!(us));
                }
            }
        }
        out
    }
}

pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
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
pub async fn cache_counters(admin: Option<SocketAddr>) -> Option<(f64, f64)> {
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

/// Everything a run's report is made of.
pub struct Report<'a> {
    pub args: &'a BenchArgs,
    pub stats: Stats,
    pub elapsed: Duration,
    pub cpu: Cpu,
    /// The cache's (hits, misses) before and after.
    pub cache: Option<((f64, f64), (f64, f64))>,
    pub propagation: Option<Value>,
}

impl Report<'_> {
    pub fn json(mut self) -> Value {
        let all = &mut self.stats;
        all.latencies_us.sort_unstable();
        let ok = all.latencies_us.len() as f64;
        let total = ok + all.errors.values().sum::<u64>() as f64;
        let verify_cache = self.cache.map(|((h0, m0), (h1, m1))| {
            let (hits, misses) = (h1 - h0, m1 - m0);
            // In a flood only the hot half can hit: its hit ratio is hits
            // over the valid tokens presented.
            let valid = ok - all.refused as f64;
            json!({
                "hits": hits,
                "misses": misses,
                "hit_ratio": if hits + misses > 0.0 { hits / (hits + misses) } else { 0.0 },
                "valid_token_hit_ratio": if valid > 0.0 { hits / valid } else { 0.0 },
            })
        });
        let args = self.args;
        json!({
            "tokens": format!("{:?}", args.tokens).to_lowercase(),
            "refused_as_meant": all.refused,
            "verify_cache": verify_cache,
            "scenario": format!("{:?}", args.scenario).to_lowercase(),
            "concurrency": args.concurrency,
            "duration_s": self.elapsed.as_secs_f64(),
            "requests_ok": ok,
            "errors": all.errors,
            "rps": ok / self.elapsed.as_secs_f64(),
            "latency_ms": {
                "p50": percentile(&all.latencies_us, 0.50),
                "p90": percentile(&all.latencies_us, 0.90),
                "p99": percentile(&all.latencies_us, 0.99),
                "p999": percentile(&all.latencies_us, 0.999),
            },
            "cpu_us_per_request": self.cpu.per_request(total),
            "propagation_ms": self.propagation,
        })
    }
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
