//! `tessera-bench` against a real `tessera serve` process (the one cargo
//! built beside this test: `cargo build --workspace` or `cargo test
//! --workspace` builds it; or set `TESSERA_BIN`).

use serde_json::Value;
use tessera_test_support::{free_port, run_json, session_ids, wait_revoked, Process};

/// Run `program` with `args`: (success, its JSON output, all its output).
fn run(program: &str, args: &[&str]) -> (bool, Value, String) {
    run_json(program, args)
}

/// The load generator (`tessera-bench load`) against a real server process
/// and `tessera-bench echo`: bounded runs of every scenario, each a JSON report
/// with rates, percentiles, errors by code and CPU per request from /proc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_reports_every_scenario() {
    // As in BENCHMARKS.md: per-subject budgets off, or Refresh is throttled.
    let server = Process::start(&["--issue-rate=off".into(), "--refresh-rate=off".into()]).await;
    let addr = server.addr.to_string();
    let pid = server.child.id().expect("pid").to_string();
    let (_echo, echo_addr) = spawn_echo().await;

    let runs = [
        ("echo", echo_addr.as_str()),
        ("verify", &addr),
        ("issue", &addr),
        ("refresh", &addr),
        ("revoke", &addr),
        ("mixed", &addr),
    ];
    for (scenario, target) in runs {
        let mut args = vec![
            "load",
            "--addr",
            target,
            "--scenario",
            scenario,
            "--requests",
            "200",
            "--concurrency",
            "4",
            "--connections",
            "2",
            "--duration",
            "60s",
            "--json",
        ];
        if target == addr {
            args.extend(["--server-pid", &pid]);
        }
        if scenario == "revoke" {
            args.extend(["--watch-addr", &addr]);
        }
        let (ok, r, text) = run(env!("CARGO_BIN_EXE_tessera-bench"), &args);
        assert!(ok, "{scenario}: {text}");
        check_report(scenario, target == addr, &r);
    }

    // Load only ever targets this machine.
    let (ok, _, text) = run(
        env!("CARGO_BIN_EXE_tessera-bench"),
        &["load", "--addr", "192.0.2.1:50051", "--requests", "1"],
    );
    assert!(!ok);
    assert!(text.contains("not a loopback address"), "{text}");
}

/// `load --scenario revoke --sessions`: the revoker of the client
/// libraries' propagation benches revokes each session given once, by id,
/// and writes when each Revoke returned on the wall clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_given_sessions_and_writes_when_each_returned() {
    let server = Process::start(&["--issue-rate=off".into()]).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut c = tessera_test_support::Client::new(channel);
    let subjects = (0..30).map(|i| format!("rv-given-{i}"));
    let sids = session_ids(&mut c, subjects).await;
    let pair = tessera_test_support::issue(&mut c, "rv-given-check").await;
    let sids: Vec<String> = sids.into_iter().chain([pair.session_id]).collect();
    let dir = std::env::temp_dir().join(format!("tessera-bench-sessions-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, out) = (dir.join("sessions"), dir.join("returned"));
    std::fs::write(&input, sids.join("\n") + "\n").unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let addr = server.addr.to_string();
    let (ok, r, text) = run(
        env!("CARGO_BIN_EXE_tessera-bench"),
        &[
            "load",
            "--addr",
            &addr,
            "--scenario",
            "revoke",
            "--sessions",
            input.to_str().unwrap(),
            "--returned-out",
            out.to_str().unwrap(),
            "--rate",
            "500",
            "--concurrency",
            "4",
            "--connections",
            "2",
            "--json",
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(r["requests_ok"], 31.0, "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    let written = std::fs::read_to_string(&out).unwrap();
    let mut seen: Vec<&str> = written
        .lines()
        .map(|l| {
            let (sid, ns) = l.split_once(' ').expect("session_id unix_time_ns");
            let ns: u128 = ns.parse().expect("nanoseconds");
            assert!(ns > before, "{l}");
            sid
        })
        .collect();
    seen.sort_unstable();
    let mut want: Vec<&str> = sids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(seen, want);
    wait_revoked(&mut c, &pair.access_token).await;
    std::fs::remove_dir_all(&dir).unwrap();

    // Only for revoke, and bounded.
    let (ok, _, text) = run(
        env!("CARGO_BIN_EXE_tessera-bench"),
        &[
            "load",
            "--addr",
            &addr,
            "--scenario",
            "verify",
            "--sessions",
            "/dev/null",
        ],
    );
    assert!(!ok);
    assert!(
        text.contains("--sessions is for --scenario revoke"),
        "{text}"
    );
}

/// Start `tessera-bench echo` on a free port and wait until it listens.
async fn spawn_echo() -> (tokio::process::Child, String) {
    let echo_addr = format!("127.0.0.1:{}", free_port());
    let echo = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .args(["echo", "--listen", &echo_addr])
        .kill_on_drop(true)
        .spawn()
        .expect("spawn bench-echo");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&echo_addr).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "tessera-bench echo never listened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (echo, echo_addr)
}

/// One scenario's JSON report: every request answered, rates, ordered
/// percentiles, CPU per request (the server's only when it was the
/// target), and for `revoke` every event propagated.
fn check_report(scenario: &str, against_server: bool, r: &Value) {
    assert_eq!(r["scenario"], scenario);
    assert_eq!(r["requests_ok"], 200.0, "{scenario}: {r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{scenario}: {r}");
    assert!(r["rps"].as_f64().unwrap() > 0.0, "{r}");
    let l = &r["latency_ms"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(
        0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("p999"),
        "{scenario}: {l}"
    );
    let cpu = &r["cpu_us_per_request"];
    assert!(cpu["generator"].as_f64().is_some(), "{scenario}: {cpu}");
    assert_eq!(
        cpu["server"].is_number(),
        against_server,
        "{scenario}: {cpu}"
    );
    if scenario == "revoke" {
        let prop = &r["propagation_ms"];
        assert_eq!(prop["events"], 200, "{prop}");
        assert_eq!(prop["missing"], 0, "{prop}");
    }
}
