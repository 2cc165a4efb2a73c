//! `tessera-bench` against a real `tessera serve` process (the one cargo
//! built beside this test: `cargo build --workspace` or `cargo test
//! --workspace` builds it; or set `TESSERA_BIN`).

use serde_json::Value;
use tessera_test_support::{free_port, run_json, Process};

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
