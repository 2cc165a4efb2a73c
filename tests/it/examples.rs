//! The Python and Node examples, run to completion against a live server;
//! their JSON-lines output is checked step by step. `scripts/test` installs
//! their dependencies (a venv for Python, `npm ci` for Node).

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn check_output(lang: &str, stdout: &[u8]) {
    let steps = Steps::parse(lang, stdout);
    let step = |name: &str| steps.get(name);
    assert_eq!(step("issue")["token_type"], "Bearer", "{lang}");
    assert_eq!(step("issue")["expires_in"], 900, "{lang}");
    assert_eq!(step("verify")["subject"], "alice", "{lang}");
    assert_eq!(
        step("verify")["scopes"],
        serde_json::json!(["read"]),
        "{lang}"
    );
    assert_eq!(step("refresh")["rotated"], true, "{lang}");
    assert_eq!(step("replay")["code"], "UNAUTHENTICATED", "{lang}");
    assert_eq!(step("replay")["reason"], "REFRESH_TOKEN_REUSED", "{lang}");
    assert_eq!(
        step("verify_after_reuse")["reason"],
        "TOKEN_REVOKED",
        "{lang}"
    );
    assert_eq!(step("revoke")["cursor_set"], true, "{lang}");
    assert!(
        step("watch")["events"].as_u64().unwrap() >= 2,
        "{lang}: {}",
        step("watch")
    );
    assert_eq!(
        step("watch")["kinds"],
        serde_json::json!(["REVOCATION_KIND_SESSION"]),
        "{lang}"
    );
}

/// Run `program script` against a fresh server and check its output.
async fn run_example(lang: &str, program: &Path, script: &Path) {
    let env = Env::new(Backend::Memory).await;
    let p = Process::start(&env.flags(&["--refresh-grace=0s"])).await;
    let out = Command::new(program)
        .arg(script)
        .arg(p.addr.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{lang} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_output(lang, &out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_runs_against_a_live_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("examples/python/.venv/bin/python");
    assert!(
        python.exists(),
        "no Python venv for the example: run scripts/test (it creates examples/python/.venv)"
    );
    assert!(
        root.join("examples/python/gen/tessera/v1/tessera_pb2.py")
            .exists(),
        "stubs not generated: run scripts/test"
    );
    run_example("python", &python, &root.join("examples/python/client.py")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_example_runs_against_a_live_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("examples/node/node_modules/@grpc/grpc-js")
            .exists(),
        "node modules missing: run scripts/test (npm ci in examples/node)"
    );
    run_example(
        "node",
        Path::new("node"),
        &root.join("examples/node/client.js"),
    )
    .await;
}

/// Reflection as Python's grpcio-reflection speaks it (v1alpha): lists the
/// services and resolves the authority's file descriptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reflection_client_discovers_the_api_by_v1alpha() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("examples/python/.venv/bin/python");
    assert!(
        python.exists(),
        "no Python venv for the example: run scripts/test (it creates examples/python/.venv)"
    );
    let env = Env::new(Backend::Memory).await;
    let p = Process::start(&env.flags(&[])).await;
    let out = Command::new(&python)
        .arg(root.join("examples/python/reflection.py"))
        .arg(p.addr.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reflection.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let services: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for want in [
        "tessera.v1.TokenAuthority",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(services.contains(&want), "{want} not in {services:?}");
    }
    assert_eq!(v["file"], "tessera/v1/tessera.proto");
    let methods = v["methods"].as_array().unwrap();
    for want in [
        "Issue",
        "Refresh",
        "Verify",
        "Revoke",
        "WatchRevocations",
        "GetJwks",
        "ListSessions",
    ] {
        assert!(
            methods.iter().any(|m| m == want),
            "{want} not in {methods:?}"
        );
    }
}

/// DPoP from Node with panva's `dpop` package: its proofs are accepted, a
/// replay and a missing or foreign key are refused with their reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_dpop_example_runs_against_a_live_server() {
    let env = Env::new(Backend::Memory).await;
    let p = Process::start(&env.flags(&[])).await;
    let steps = node_steps("dpop.mjs", &[&p.addr.to_string()], &[]);
    let step = |name: &str| steps.get(name);
    assert_eq!(step("issue")["bound"], true);
    assert_eq!(step("verify")["result"], "OK");
    assert_eq!(step("replay")["result"], "DPOP_PROOF_REPLAYED");
    assert_eq!(step("no_proof")["result"], "TOKEN_BINDING_MISMATCH");
    assert_eq!(
        step("refresh_other_key")["result"],
        "TOKEN_BINDING_MISMATCH"
    );
    assert_eq!(step("refresh")["rotated"], true);
}
