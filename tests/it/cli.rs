//! The `tessera` binary driven from a shell, as a person would: two server
//! processes on one Redis, and every client subcommand printing JSON.

use std::process::Command;

use crate::support::*;
use serde_json::Value;

fn tessera(args: &[&str]) -> (bool, Value, String) {
    run(env!("CARGO_BIN_EXE_tessera"), args)
}

/// Run `program` with `args`: (success, its JSON output, all its output).
fn run(program: &str, args: &[&str]) -> (bool, Value, String) {
    run_json(program, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_driven_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let (ok, written, text) =
        tessera(&["keygen", "--alg", "eddsa", "--out", key.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(written["alg"], "eddsa");
    let redis = RedisServer::start().await;
    let flags = vec![
        "--issuer=cli-test".to_owned(),
        format!("--signing-key={}", key.display()),
        format!("--redis-url={}", redis.url()),
    ];
    let a = Process::start(&flags).await;
    let b = Process::start(&flags).await;
    let addr_a = format!("http://{}", a.addr);
    let addr_b = format!("http://{}", b.addr);

    let (ok, pair, text) = tessera(&[
        "issue",
        "--addr",
        &addr_a,
        "--subject",
        "alice",
        "--tenant",
        "acme",
        "--audience",
        "api",
        "--scope",
        "read",
        "--role",
        "admin",
        "--claims",
        r#"{"plan":"pro"}"#,
    ]);
    assert!(ok, "{text}");
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(pair["token_type"], "Bearer");

    let (ok, verified, text) = tessera(&[
        "verify",
        "--addr",
        &addr_b,
        &access,
        "--audience",
        "api",
        "--scope",
        "read",
    ]);
    assert!(ok, "{text}");
    assert_eq!(verified["claims"]["subject"], "alice");
    assert_eq!(verified["claims"]["custom"]["plan"], "pro");

    let (ok, rotated, text) = tessera(&["refresh", "--addr", &addr_b, &refresh]);
    assert!(ok, "{text}");
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_access, access);

    let (ok, revoked, text) = tessera(&[
        "revoke",
        "--addr",
        &addr_b,
        "--session",
        pair["session_id"].as_str().unwrap(),
        "--reason",
        "cli test",
    ]);
    assert!(ok, "{text}");
    assert!(!revoked["cursor"].as_str().unwrap().is_empty());

    let (ok, err, _) = tessera(&["verify", "--addr", &addr_a, &new_access, "--strong"]);
    assert!(!ok);
    assert_eq!(err["error"]["reason"], "TOKEN_REVOKED");
    assert_eq!(err["error"]["code"], "Unauthenticated");

    let (ok, jwks, text) = tessera(&["jwks", "--addr", &addr_a]);
    assert!(ok, "{text}");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    let (_, jwks_b, _) = tessera(&["jwks", "--addr", &addr_b]);
    assert_eq!(jwks, jwks_b, "replicas with one key publish one JWKS");

    // `watch --snapshot` prints the revocation as a JSON line (bounded by a timeout).
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["watch", "--addr", &addr_a, "--snapshot"])
            .kill_on_drop(true)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
            .stdout
            .take()
            .map(|s| async move {
                use tokio::io::AsyncBufReadExt;
                tokio::io::BufReader::new(s).lines().next_line().await
            })
            .unwrap(),
    )
    .await
    .expect("a watch line")
    .unwrap()
    .unwrap();
    let event: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(event["kind"], "REVOCATION_KIND_SESSION");
    assert_eq!(event["session_id"], pair["session_id"]);

    // Bad configuration exits 64 with a reason.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--leeway", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("leeway"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let env = Env::new(Backend::Memory).await;
    let server = env.server(&[]).await;
    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("{reply:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"tessera.v1.TokenAuthority".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

/// The production binary carries no load generator (`tessera-bench` is a
/// crate of its own, crates/tessera-bench, with its tests there).
#[test]
fn the_server_binary_carries_no_load_generator() {
    let (ok, _, text) = tessera(&["bench", "--requests", "1"]);
    assert!(!ok && text.contains("unrecognized subcommand"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_the_others_logged_out_from_the_cli() {
    let env = Env::new(Backend::Memory).await;
    let process = Process::start(&env.flags(&["--issue-rate=off"])).await;
    let addr = format!("http://{}", process.addr);
    let mut ids = Vec::new();
    for device in ["phone", "laptop", "tablet"] {
        let (ok, pair, text) = tessera(&[
            "issue",
            "--addr",
            &addr,
            "--subject",
            "mo",
            "--tenant",
            "acme",
            "--device-name",
            device,
            "--ip-address",
            "192.0.2.1",
        ]);
        assert!(ok, "{text}");
        ids.push(pair["session_id"].as_str().unwrap().to_owned());
    }
    let (ok, listed, text) = tessera(&[
        "sessions",
        "--addr",
        &addr,
        "--subject",
        "mo",
        "--tenant",
        "acme",
    ]);
    assert!(ok, "{text}");
    let mut devices: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["device_name"].as_str().unwrap())
        .collect();
    devices.sort_unstable();
    assert_eq!(devices, vec!["laptop", "phone", "tablet"]);
    assert_eq!(listed[0]["ip_address"], "192.0.2.1");

    let (ok, revoked, text) = tessera(&[
        "revoke",
        "--addr",
        &addr,
        "--subject",
        "mo",
        "--tenant",
        "acme",
        "--keep-session",
        &ids[1],
    ]);
    assert!(ok, "{text}");
    assert!(!revoked["cursor"].as_str().unwrap().is_empty());
    let (_, listed, _) = tessera(&[
        "sessions",
        "--addr",
        &addr,
        "--subject",
        "mo",
        "--tenant",
        "acme",
    ]);
    let left: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec![ids[1].as_str()]);
    // --keep-session needs --subject.
    let (ok, _, _) = tessera(&[
        "revoke",
        "--addr",
        &addr,
        "--session",
        &ids[1],
        "--keep-session",
        &ids[1],
    ]);
    assert!(!ok);
}

/// The client subcommands against an mTLS server whose callers present an
/// API key: `--ca`, `--cert`, `--key` and `--api-key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_subcommands_speak_tls_mtls_and_api_keys() {
    use crate::tls::{write, Pki};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("localhost", &["localhost"], &[]);
    let (client_cert, client_key) = pki.leaf("ops", &[], &[]);
    let env = Env::new(Backend::Memory).await;
    let callers = callers_flag(&dir, &[("ops", "ops-secret-key", &["Issue", "Verify"])]);
    // Health is probed over plaintext by the harness: spawn without waiting.
    let server = Server::spawn(&env.flags(&[
        &format!("--tls-cert={}", write(&dir, "c.pem", &cert)),
        &format!("--tls-key={}", write(&dir, "k.pem", &key)),
        &format!("--tls-client-ca={}", write(&dir, "ca.pem", &pki.ca_pem)),
        &callers,
    ]))
    .await;
    let addr = format!("https://{}", server.addr);
    let ca = dir.path().join("ca.pem").display().to_string();
    let cc = write(&dir, "client.pem", &client_cert);
    let ck = write(&dir, "client.key", &client_key);
    let tls: Vec<&str> = vec!["--addr", &addr, "--ca", &ca, "--cert", &cc, "--key", &ck];
    let with = |extra: &[&str]| {
        let mut args = vec!["issue", "--subject", "alice"];
        args.extend(&tls);
        args.extend(extra);
        tessera(&args)
    };
    let (ok, pair, text) = with(&["--api-key", "ops-secret-key"]);
    assert!(ok, "{text}");
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let mut verify = vec!["verify", &token];
    verify.extend(&tls);
    verify.extend(["--api-key", "ops-secret-key"]);
    let (ok, claims, text) = tessera(&verify);
    assert!(ok, "{text}");
    assert_eq!(claims["claims"]["subject"], "alice", "{text}");
    // Without the API key: the caller is unknown.
    let (ok, _, text) = with(&[]);
    assert!(!ok && text.contains("UNAUTHENTICATED"), "{text}");
    // Without the client certificate: the handshake fails.
    let (ok, _, text) = tessera(&[
        "issue",
        "--subject",
        "alice",
        "--addr",
        &addr,
        "--ca",
        &ca,
        "--api-key",
        "ops-secret-key",
    ]);
    assert!(!ok, "{text}");
    // TLS flags with a plaintext address are refused, not ignored.
    let plain = format!("http://{}", server.addr);
    let (ok, _, text) = tessera(&["issue", "--subject", "a", "--addr", &plain, "--ca", &ca]);
    assert!(!ok && text.contains("https://"), "{text}");
    server.stop().await.unwrap();
}

/// `--verify-key` reads `TESSERA_VERIFY_KEY`, like every other flag, and
/// still its old name `TESSERA_VERIFY_KEYS` (deprecated). A missing file
/// shows that the variable was read: the server refuses to start on it.
#[test]
fn verify_key_reads_tessera_verify_key_and_its_old_name() {
    let key = TestKey::new();
    for var in ["TESSERA_VERIFY_KEY", "TESSERA_VERIFY_KEYS"] {
        let missing = format!("/nonexistent/{var}.pem");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "serve",
                "--listen=127.0.0.1:0",
                "--admin-listen=127.0.0.1:0",
                &format!("--signing-key={}", key.path.display()),
            ])
            .env(var, &missing)
            .env_remove(if var.ends_with('S') {
                "TESSERA_VERIFY_KEY"
            } else {
                "TESSERA_VERIFY_KEYS"
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A server that started anyway is killed rather than waited for.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{var}: {text}");
        assert!(text.contains(&missing), "{var}: {text}");
    }
}
