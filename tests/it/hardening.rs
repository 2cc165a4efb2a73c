//! Defects found by the outside red-team pass (issue "Hardening"), each
//! guarded by a test that failed before its fix, on both stores where a
//! store is involved.

use std::time::{Duration, Instant};

use crate::support::*;

/// Poll default and strong `Verify` of a revoked token until both say
/// `TOKEN_EXPIRED`; every answer before that must be `TOKEN_REVOKED`.
/// Before the fix the revocation marker died one second before the token
/// check stopped accepting, and the token verified again in that second.
async fn never_verifies_again(c: &mut Client, token: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut expired = [false, false];
    while expired != [true, true] {
        assert!(Instant::now() < deadline, "{what}: never expired");
        for (i, req) in [verify_request(token), strong(token)]
            .into_iter()
            .enumerate()
        {
            match c.verify(req).await {
                Ok(r) => panic!(
                    "{what}: a revoked token verified again ({} consistency) at {:?}",
                    if i == 0 { "default" } else { "strong" },
                    r.into_inner().server_time
                ),
                Err(s) => match reason(&s).as_str() {
                    "TOKEN_REVOKED" => {}
                    "TOKEN_EXPIRED" => expired[i] = true,
                    other => panic!("{what}: unexpected {other}"),
                },
            }
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn revoked_token_stays_revoked_to_its_last_instant(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env
        .server(&[
            "--access-ttl=1s",
            "--max-access-ttl=1s",
            "--leeway=0s",
            "--issue-rate=off",
        ])
        .await;
    let mut c = server.client().await;
    let subjects = ["walk-token", "walk-session", "walk-subject"];
    let mut tokens = Vec::new();
    for subject in subjects {
        tokens.push(issue(&mut c, subject).await);
    }
    c.revoke(revoke_token(&tokens[0].access_token))
        .await
        .expect("revoke token");
    c.revoke(revoke_session_id(&tokens[1].session_id))
        .await
        .expect("revoke session");
    c.revoke(revoke_subject("acme", subjects[2]))
        .await
        .expect("revoke subject");
    for (pair, what) in tokens.iter().zip(["token", "session", "subject"]) {
        never_verifies_again(&mut c, &pair.access_token, what).await;
    }
}

#[tokio::test]
async fn revoked_token_stays_revoked_to_its_last_instant_memory() {
    revoked_token_stays_revoked_to_its_last_instant(Backend::Memory).await;
}

#[tokio::test]
async fn revoked_token_stays_revoked_to_its_last_instant_redis() {
    revoked_token_stays_revoked_to_its_last_instant(Backend::Redis).await;
}

/// A lowered `--max-access-ttl` caps renewed (and refreshed) tokens, so none
/// outlives the revocation horizon the new setting computes.
#[tokio::test]
async fn lowered_max_access_ttl_caps_renewal_and_refresh() {
    let env = Env::new(Backend::Redis).await;
    let before = env
        .server(&["--access-ttl=1h", "--max-access-ttl=1h"])
        .await;
    let mut c = before.client().await;
    let pair = issue(&mut c, "capped").await;
    let after = env
        .server(&[
            "--access-ttl=5m",
            "--max-access-ttl=10m",
            "--renewal-warning=2h",
            "--renewal-critical=2h",
        ])
        .await;
    let mut c2 = after.client().await;
    // A token of that session minted 55 minutes ago with the old 1 h
    // lifetime: 5 minutes left, so renewal has something to gain.
    let keys = env.key.keyset();
    let now = tessera::clock::now_ms() / 1000;
    let policy = tessera::tokens::VerifyPolicy {
        issuer: "tessera-test".into(),
        leeway: 30,
    };
    let mut claims =
        tessera::tokens::verify(&keys, &pair.access_token, now, &policy).expect("claims");
    claims.iat = now - 55 * 60;
    claims.nbf = claims.iat;
    claims.exp = now + 5 * 60;
    claims.jti = "old-lifetime".into();
    let old = tessera::tokens::mint(&keys, &claims).expect("mint");
    let mut req = verify_request(&old);
    req.renew = true;
    let renewed = c2.verify(req).await.expect("verify").into_inner();
    assert!(
        !renewed.renewed_access_token.is_empty(),
        "renewal minted nothing"
    );
    assert!(lifetime(&mut c2, &renewed.renewed_access_token).await <= 600);
    let next = refreshed(&mut c2, &pair.refresh_token).await;
    assert!(lifetime(&mut c2, &next.access_token).await <= 600);
}

/// `exp - iat` of a token, as `Verify` reports them.
async fn lifetime(c: &mut Client, token: &str) -> i64 {
    let claims = c
        .verify(verify_request(token))
        .await
        .expect("verify")
        .into_inner()
        .claims
        .expect("claims");
    claims.expires_at.expect("exp").seconds - claims.issued_at.expect("iat").seconds
}

/// The session id is public (in every access token and in the feed): a
/// guessed secret for a bound session must answer exactly as one for an
/// unknown session (the theft warning and the mismatch metric sit on the
/// `FINGERPRINT_MISMATCH` path only, so they stay quiet too).
async fn guessed_secret_is_no_binding_oracle(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let mut req = issue_request("bound-user");
    req.device_fingerprint = "device-1".into();
    let bound = c
        .issue(req)
        .await
        .expect("issue")
        .into_inner()
        .tokens
        .unwrap();
    let garbage = "A".repeat(43);
    for sid in [bound.session_id.as_str(), "AAAAAAAAAAAAAAAAAAAAAA"] {
        expect_reason(
            c.refresh(refresh_req(&format!("{sid}.{garbage}"))).await,
            "REFRESH_TOKEN_INVALID",
        );
    }
    // The holder of the real secret on another device is told.
    expect_reason(
        c.refresh(refresh_req(&bound.refresh_token)).await,
        "FINGERPRINT_MISMATCH",
    );
}

#[tokio::test]
async fn guessed_secret_is_no_binding_oracle_memory() {
    guessed_secret_is_no_binding_oracle(Backend::Memory).await;
}

#[tokio::test]
async fn guessed_secret_is_no_binding_oracle_redis() {
    guessed_secret_is_no_binding_oracle(Backend::Redis).await;
}

/// Revoking session ids that were never issued, or a subject with no
/// session, is a no-op: an empty cursor, no event to any watcher, nothing
/// held in the replicas' caches or in Redis.
async fn unknown_targets_hold_nothing(backend: Backend) {
    let env = Env::new(backend).await;
    // A process of its own: the cache gauge is not shared with other tests.
    let process = Process::start(&env.flags(&[])).await;
    let server = process.server();
    let mut c = server.client().await;
    let mut watcher = c
        .watch_revocations(tessera::pb::WatchRevocationsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    for i in 0..200 {
        let sid = format!("{i:0>22}");
        let cursor = c.revoke(revoke_session_id(&sid)).await.expect("revoke");
        assert_eq!(cursor.into_inner().cursor, "", "unknown session {sid}");
        let subject = revoke_subject("acme", &format!("nobody-{i}"));
        let cursor = c.revoke(subject).await.expect("revoke");
        assert_eq!(cursor.into_inner().cursor, "", "subject with no session");
    }
    // The first real revocation is the first event any watcher sees.
    let real = issue(&mut c, "somebody").await;
    let cursor = c
        .revoke(revoke_session_id(&real.session_id))
        .await
        .expect("revoke")
        .into_inner()
        .cursor;
    assert!(!cursor.is_empty());
    let first = tokio::time::timeout(Duration::from_secs(5), watcher.message())
        .await
        .expect("an event")
        .expect("stream")
        .expect("open");
    assert_eq!(first.session_id, real.session_id);
    // The cache gauge is refreshed every second: it reaches the one real
    // entry and never counts the no-ops.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = server.admin_get("/metrics").await;
        let cached = metric_with(&metrics, "tessera_revocation_cache_entries", &[]);
        assert!(
            cached.unwrap_or(0.0) <= 1.0,
            "{cached:?} cached revocations"
        );
        if cached == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "gauge never showed the entry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(redis) = &env.redis {
        // The made-up ids are zero-padded: no real (random) id starts
        // with sixteen zeros.
        for pattern in ["rs:0000000000000000*", "ru:*"] {
            let keys = redis.command(&format!("KEYS tessera:*:{pattern}")).await;
            assert!(keys.starts_with("*0"), "{pattern} keys written: {keys}");
        }
    }
}

#[tokio::test]
async fn unknown_targets_hold_nothing_memory() {
    unknown_targets_hold_nothing(Backend::Memory).await;
}

#[tokio::test]
async fn unknown_targets_hold_nothing_redis() {
    unknown_targets_hold_nothing(Backend::Redis).await;
}

/// A cursor beyond the log (made up, from another deployment) or malformed
/// is refused with `CURSOR_INVALID`; before the fix a cursor far ahead got
/// the caught-up marker at once and then silence, so a local verifier
/// failed open. Any cursor the log really gave out still resumes.
async fn cursor_ahead_of_the_log_is_refused(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let sid = issue(&mut c, "cursor").await.session_id;
    let head = c
        .revoke(revoke_session_id(&sid))
        .await
        .expect("revoke")
        .into_inner()
        .cursor;
    // The cursor is opaque to clients; the test takes it apart to make
    // the positions no log gave out.
    use tessera::cursor::Position;
    let (deployment, at) = Position::parse(&head).expect("a composite cursor");
    let p = (0..at.partitions())
        .find(|p| at.get(*p) != (0, 0))
        .expect("the revoked session's partition");
    let (ms, seq) = at.get(p);
    let mut next = at.clone();
    next.advance(p, (ms, seq + 1));
    let mut far = at.clone();
    far.advance(p, (99_999_999_999_999, 0));
    let next = next.encode(deployment);
    let far = far.encode(deployment);
    // Another deployment's, another partition count's, and the format of
    // versions before partitions.
    let foreign = at.encode(deployment ^ 1);
    let other_count = Position::start(at.partitions() + 1).encode(deployment);
    let old_format = format!("{ms}-{seq}");
    let watch = |after: &str| tessera::pb::WatchRevocationsRequest {
        after_cursor: after.to_owned(),
        include_snapshot: false,
        mark_caught_up: true,
        ..Default::default()
    };
    for bad in [
        far.as_str(),
        next.as_str(),
        foreign.as_str(),
        other_count.as_str(),
        old_format.as_str(),
        "nonsense",
        "1-x",
    ] {
        let status = expect_reason(c.watch_revocations(watch(bad)).await, "CURSOR_INVALID");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(violations(&status), vec!["after_cursor"], "{bad}");
    }
    for good in ["", head.as_str()] {
        let mut stream = c
            .watch_revocations(watch(good))
            .await
            .expect("a cursor the log gave out")
            .into_inner();
        let marker = stream.message().await.expect("stream").expect("marker");
        assert_eq!(marker.kind, tessera::pb::RevocationKind::Unspecified as i32);
    }
}

#[tokio::test]
async fn cursor_ahead_of_the_log_is_refused_memory() {
    cursor_ahead_of_the_log_is_refused(Backend::Memory).await;
}

#[tokio::test]
async fn cursor_ahead_of_the_log_is_refused_redis() {
    cursor_ahead_of_the_log_is_refused(Backend::Redis).await;
}

/// Puts a value into one field of an Issue request.
type SetField = Box<dyn Fn(&mut tessera::pb::IssueRequest)>;

/// Unicode format and bidi characters, separators and controls are refused
/// in every name, list and reason; so are controls in custom claims and
/// custom names that equal a reserved claim in any case. Nothing is stored.
#[tokio::test]
async fn hidden_characters_and_reserved_names_are_refused() {
    let env = Env::new(Backend::Memory).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let hidden = [
        "\u{202E}", "\u{200B}", "\u{2028}", "\u{FEFF}", "\u{0}", "\u{85}",
    ];
    for h in hidden {
        let cases: Vec<(&str, SetField)> = vec![
            (
                "subject",
                Box::new(move |r| r.subject = format!("adm{h}in")),
            ),
            ("tenant", Box::new(move |r| r.tenant = format!("ac{h}me"))),
            (
                "audience",
                Box::new(move |r| r.audience = vec![format!("api{h}")]),
            ),
            (
                "roles",
                Box::new(move |r| r.roles = vec![format!("{h}admin")]),
            ),
            (
                "scopes",
                Box::new(move |r| r.scopes = vec![format!("re{h}ad")]),
            ),
        ];
        for (field, set) in cases {
            let mut req = issue_request("victim");
            set(&mut req);
            let status = expect_reason(c.issue(req).await, "FIELD_INVALID");
            assert_eq!(violations(&status), vec![field], "{h:?}");
        }
        let mut revoke = revoke_subject("acme", "victim");
        revoke.reason = format!("lost {h} laptop");
        let status = expect_reason(c.revoke(revoke).await, "FIELD_INVALID");
        assert_eq!(violations(&status), vec!["reason"], "{h:?}");
    }
    let claims = |pairs: &[(&str, prost_types::Value)]| prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    let string = |s: &str| prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    };
    let nested = |k: &str, v: prost_types::Value| prost_types::Value {
        kind: Some(prost_types::value::Kind::StructValue(claims(&[(k, v)]))),
    };
    for bad in [
        claims(&[
            ("Sub", string("admin")),
            ("EXP", string("1")),
            ("Iss", string("evil")),
        ]),
        claims(&[("CNF", string("x"))]),
        claims(&[("de\u{0}pt", string("x"))]),
        claims(&[("dept", string("a\u{0}b"))]),
        claims(&[("dept", string("line\nbreak"))]),
        claims(&[("org", nested("na\u{7}me", string("x")))]),
        claims(&[("org", nested("name", string("\u{1b}[31m")))]),
        claims(&[("\u{202E}dept", string("x"))]),
    ] {
        let mut req = issue_request("victim");
        req.claims = Some(bad.clone());
        let status = expect_reason(c.issue(req).await, "FIELD_INVALID");
        assert_eq!(violations(&status), vec!["claims"], "{bad:?}");
    }
    // Many small claims under the message cap: refused by count, before
    // any JSON is built.
    let many: Vec<(String, prost_types::Value)> =
        (0..3000).map(|i| (format!("c{i}"), string("v"))).collect();
    let mut req = issue_request("victim");
    req.claims = Some(prost_types::Struct {
        fields: many.into_iter().collect(),
    });
    let status = expect_reason(c.issue(req).await, "FIELD_INVALID");
    assert_eq!(violations(&status), vec!["claims"]);
    // Nothing was stored: a revocation of the subject finds no session.
    let cursor = c
        .revoke(revoke_subject("acme", "victim"))
        .await
        .expect("revoke")
        .into_inner()
        .cursor;
    assert_eq!(cursor, "", "a refused Issue stored a session");
}

/// Raw request bytes, for messages no generated client would send.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_issue(server: &Server, body: Vec<u8>) -> tonic::Status {
    let channel = tonic::transport::Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/tessera.v1.TokenAuthority/Issue");
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .expect_err("a bad message must be refused")
}

/// A string field that is not UTF-8, and a message over the cap, get
/// `INVALID_ARGUMENT` with a reason, not tonic's bare `INTERNAL` or
/// `OUT_OF_RANGE`.
#[tokio::test]
async fn undecodable_and_oversized_messages_are_invalid_arguments() {
    use prost::Message;
    let env = Env::new(Backend::Memory).await;
    let server = env.server(&[]).await;
    let mut body = issue_request("xyz").encode_to_vec();
    let at = body
        .windows(3)
        .position(|w| w == b"xyz")
        .expect("subject bytes");
    body[at] = 0xff;
    let status = raw_issue(&server, body).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "FIELD_INVALID");
    let mut huge = issue_request("victim");
    huge.device_fingerprint = "f".repeat(2 * 1024 * 1024);
    let status = raw_issue(&server, huge.encode_to_vec()).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "FIELD_INVALID");
    assert_eq!(violations(&status), vec!["request"]);
}

/// A Redis URL carries credentials: `--help` does not print the value of
/// `TESSERA_REDIS_URL`, and an error about the URL shows it redacted.
#[test]
fn redis_credentials_never_reach_help_or_errors() {
    let tessera = env!("CARGO_BIN_EXE_tessera");
    let secret = "pw-s3cret-0451";
    let help = std::process::Command::new(tessera)
        .args(["serve", "--help"])
        .env(
            "TESSERA_REDIS_URL",
            format!("redis://default:{secret}@127.0.0.1:6390"),
        )
        .output()
        .expect("run tessera");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--redis-url"), "{text}");
    assert!(
        !text.contains(secret),
        "--help printed the password:\n{text}"
    );
    let bad = std::process::Command::new(tessera)
        .args([
            "serve",
            "--listen=127.0.0.1:0",
            "--admin-listen=127.0.0.1:0",
            &format!("--redis-url=redis://default:{secret}@127.0.0.1:notaport"),
        ])
        .output()
        .expect("run tessera");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("Redis URL"), "{err}");
    assert!(
        !err.contains(secret),
        "an error printed the password:\n{err}"
    );
}

// === Denial of service: connections, handshakes, streams ===

/// Wait until the server closes `socket` (EOF or an error), or panic.
async fn closed_by_server(socket: &mut tokio::net::TcpStream, what: &str, within: Duration) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut buf)).await {
            Err(_) => panic!("{what}: still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {} // the server's SETTINGS, a 408, …: keep reading
        }
    }
}

/// The server keeps serving a well-behaved client: health and Verify.
async fn still_serving(server: &Server, c: &mut Client, token: &str) {
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        assert_eq!(
            server.health().await,
            Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
        );
        c.verify(verify_request(token)).await.expect("verify");
        let (status, _) = server.admin_get("/readyz").await;
        assert_eq!(status, 200);
    });
    answer
        .await
        .expect("the server stopped answering under attack");
}

/// Slowloris on both ports: idle sockets, a half-sent HTTP/2 preface,
/// headers that never end, a request body that stalls, an HTTP/1 head that
/// never ends. Every one is closed by the server; a well-behaved client is
/// served throughout; the server's RSS stays under 200 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_both_ports_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    const RSS_BOUND_KIB: u64 = 200 * 1024;
    let env = Env::new(Backend::Memory).await;
    let mut process = Process::start(&env.flags(&[
        "--idle-timeout=2s",
        "--http2-keepalive-interval=500ms",
        "--http2-keepalive-timeout=500ms",
        "--header-read-timeout=1s",
        "--request-timeout=2s",
    ]))
    .await;
    let pid = process.child.id().expect("pid");
    let server = process.server();
    let mut c = server.client().await;
    let pair = issue(&mut c, "bystander").await;
    still_serving(&server, &mut c, &pair.access_token).await;

    let connect =
        |addr| async move { tokio::net::TcpStream::connect(addr).await.expect("connect") };
    let mut attackers = Vec::new();
    for _ in 0..100 {
        attackers.push(("idle gRPC socket", connect(server.addr).await));
    }
    for _ in 0..40 {
        let mut s = connect(server.addr).await;
        s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        attackers.push(("half-sent preface", s));
    }
    for _ in 0..20 {
        let mut s = connect(server.addr).await;
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // empty SETTINGS
                                                                  // HEADERS on stream 1 announcing 100 bytes, END_HEADERS unset, 3 sent.
        s.write_all(&[0, 0, 100, 1, 0, 0, 0, 0, 1, 0x82, 0x86, 0x84])
            .await
            .unwrap();
        attackers.push(("headers that never end", s));
    }
    for _ in 0..20 {
        attackers.push(("idle admin socket", connect(server.admin).await));
    }
    for _ in 0..20 {
        let mut s = connect(server.admin).await;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow:")
            .await
            .unwrap();
        attackers.push(("HTTP/1 head that never ends", s));
    }
    // A gRPC request whose body announces 1,000 bytes and sends 10: a real
    // HTTP/2 client, which answers pings, so only the request timeout ends it.
    let tcp = connect(server.addr).await;
    let (h2, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut h2 = h2.ready().await.expect("ready");
    let request = http::Request::post(format!("{}/tessera.v1.TokenAuthority/Issue", server.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = h2.send_request(request, false).expect("send");
    let mut prefix = vec![0u8, 0, 0, 0x03, 0xe8];
    prefix.extend_from_slice(b"0123456789");
    body.send_data(bytes::Bytes::from(prefix), false)
        .expect("data");

    still_serving(&server, &mut c, &pair.access_token).await;
    let stalled = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("a stalled body is answered within the request timeout")
        .expect("response");
    let status = stalled
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let status = match status {
        Some(s) => s,
        None => {
            let mut stream = stalled.into_body();
            let trailers = tokio::time::timeout(Duration::from_secs(5), stream.trailers())
                .await
                .expect("trailers")
                .expect("trailers frame")
                .unwrap_or_default();
            trailers
                .get("grpc-status")
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .unwrap_or_default()
        }
    };
    assert_ne!(status, "0", "a stalled request must fail");
    assert!(!status.is_empty(), "no grpc-status for the stalled request");

    for (what, socket) in attackers.iter_mut() {
        closed_by_server(socket, what, Duration::from_secs(10)).await;
    }
    still_serving(&server, &mut c, &pair.access_token).await;
    let rss = rss_kib(pid);
    assert!(rss > 0 && rss < RSS_BOUND_KIB, "RSS {rss} KiB");
    process.signal("TERM");
    process.wait_exit(Duration::from_secs(10)).await;
}

/// More watchers and health watches than the caps get RESOURCE_EXHAUSTED;
/// a slot comes back when a stream ends; the advertised per-connection
/// stream limit is the configured one; RSS stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_floods_are_capped() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    const RSS_BOUND_KIB: u64 = 200 * 1024;
    let env = Env::new(Backend::Memory).await;
    let process = Process::start(&env.flags(&[
        "--max-watchers=50",
        "--max-health-watches=20",
        "--max-concurrent-streams=100",
    ]))
    .await;
    let pid = process.child.id().expect("pid");
    let server = process.server();
    let mut c = server.client().await;

    let watch = tessera::pb::WatchRevocationsRequest::default;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        match c.watch_revocations(watch()).await {
            Ok(stream) => open.push(stream.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), "RATE_LIMITED");
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (50, 150));
    open.pop();
    // The slot is released when the stream's body is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.watch_revocations(watch()).await {
            Ok(stream) => {
                open.push(stream.into_inner());
                break;
            }
            Err(_) => assert!(Instant::now() < deadline, "slot never came back"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut watches = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        match health.watch(request).await {
            Ok(stream) => watches.push(stream.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted);
                refused += 1;
            }
        }
    }
    assert_eq!((watches.len(), refused), (20, 40));

    // SETTINGS_MAX_CONCURRENT_STREAMS as configured.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (h2, mut connection) = h2::client::handshake(tcp).await.expect("h2");
    let settle = tokio::time::timeout(Duration::from_millis(300), &mut connection).await;
    assert!(settle.is_err(), "connection ended: {settle:?}");
    assert_eq!(connection.max_concurrent_send_streams(), 100);
    drop(h2);

    let rss = rss_kib(pid);
    assert!(rss > 0 && rss < RSS_BOUND_KIB, "RSS {rss} KiB");
}

/// The sealed successor kept for the grace window lives in Redis no longer
/// than the window (plus a second of clock slack): before the fix it stayed
/// in the session hash until the next rotation.
#[tokio::test]
async fn sealed_successor_expires_with_the_grace_window() {
    let env = Env::new(Backend::Redis).await;
    let server = env.server(&["--refresh-grace=1s"]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "sealed").await;
    let first = refreshed(&mut c, &pair.refresh_token).await;
    // A retry inside the window gets the same pair.
    let retry = refreshed(&mut c, &pair.refresh_token).await;
    assert_eq!(retry.refresh_token, first.refresh_token);
    let redis = env.redis.as_ref().unwrap();
    let session = format!("{}s:{}", key_prefix_of(&pair.session_id), pair.session_id);
    let seal = redis.command(&format!("HEXISTS {session} seal")).await;
    assert_eq!(seal.trim(), ":0", "sealed successor in the session hash");
    let sealed = format!("{}sl:{}", key_prefix_of(&pair.session_id), pair.session_id);
    let ttl: i64 = redis
        .command(&format!("PTTL {sealed}"))
        .await
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 2_000, "sealed successor TTL {ttl} ms");
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.command(&format!("EXISTS {sealed}")).await.trim() != ":0" {
        assert!(
            Instant::now() < deadline,
            "sealed successor outlived the window"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // After the window the old token is reuse, as before.
    expect_reason(
        c.refresh(refresh_req(&pair.refresh_token)).await,
        "REFRESH_TOKEN_REUSED",
    );
}

/// A failed call leaves one log line with its RPC and reason, at the level
/// its cause deserves: a store failure during Issue logged nothing before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_are_logged_once_with_their_reason() {
    let mut env = Env::new(Backend::Redis).await;
    let process = Process::start_logging(&env.flags(&[]), "info").await;
    let mut c = process.server().client().await;
    let pair = issue(&mut c, "logged").await;
    env.redis.as_mut().unwrap().kill();
    let status = c.issue(issue_request("logged")).await.unwrap_err();
    assert_eq!(reason(&status), "STORE_UNAVAILABLE");
    let status = c.verify(strong(&pair.access_token)).await.unwrap_err();
    assert_eq!(reason(&status), "STORE_UNAVAILABLE");
    let deadline = Instant::now() + Duration::from_secs(5);
    let failures = |log: &str, rpc: &str| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["fields"]["message"] == "call failed"
                    && v["fields"]["rpc"] == rpc
                    && v["fields"]["reason"] == "STORE_UNAVAILABLE"
                    && v["level"] == "WARN"
            })
            .count()
    };
    loop {
        let log = process.log_text();
        if failures(&log, "Issue") == 1 && failures(&log, "Verify") == 1 {
            assert!(!log.contains(&pair.access_token), "a token in the log");
            break;
        }
        assert!(Instant::now() < deadline, "no failure lines:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replica clocks: a replica whose clock runs 20 s ahead (`faketime`, less
/// than the leeway, so its tokens verify) issued sessions and tokens that
/// survived a "log out everywhere" made through a replica on time — the
/// cut-off and the session's creation came from two clocks. Every replica
/// now takes the store's clock (Redis TIME) before it mints anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_fast_clock_cannot_outlive_a_logout() {
    let env = Env::new(Backend::Redis).await;
    let on_time = Process::start(&env.flags(&[])).await;
    let ahead = Process::start_with_env(
        &faketime_env("+20s"),
        &env.flags(&["--issue-rate=off"]),
        "info",
    )
    .await;
    let mut a = on_time.server().client().await;
    let mut b = ahead.server().client().await;
    let pair = issue(&mut b, "skewed").await;
    let (_, metrics) = ahead.server().admin_get("/metrics").await;
    let offset = metric_with(&metrics, "tessera_clock_offset_seconds", &[]).expect("offset gauge");
    assert!(
        (-21.0..=-19.0).contains(&offset),
        "measured offset {offset}"
    );
    a.revoke(revoke_subject("acme", "skewed"))
        .await
        .expect("log out everywhere");
    expect_reason(
        a.refresh(refresh_req(&pair.refresh_token)).await,
        "REFRESH_TOKEN_INVALID",
    );
    expect_reason(a.verify(strong(&pair.access_token)).await, "TOKEN_REVOKED");
    wait_revoked(&mut b, &pair.access_token).await;
    // A session issued after the logout, on either replica, lives.
    tokio::time::sleep(Duration::from_millis(1100)).await; // the next second
    let later = issue(&mut b, "skewed").await;
    refreshed(&mut a, &later.refresh_token).await;
}

/// A session id carries its partition in its first two characters. A
/// refresh token or session id whose prefix was changed (to another
/// partition, or to none of them) names no session: Refresh answers
/// REFRESH_TOKEN_INVALID, Revoke is a no-op with an empty cursor, nothing
/// is revoked as a reuse, and the real session goes on.
async fn tampered_partition_prefixes_name_nothing(backend: Backend) {
    let env = Env::new(backend).await;
    let server = env.server(&[]).await;
    let mut c = server.client().await;
    let pair = issue(&mut c, "prefix").await;
    let sid = pair.session_id.clone();
    let (prefix, rest) = sid.split_at(2);
    let other = if prefix == "AB" { "AC" } else { "AB" }; // another partition (of 64)
    let tampered = [
        format!("{other}{rest}"), // another partition
        format!("__{rest}"),      // partition 4095: out of range
        format!("-A{rest}"),      // partition 3968: out of range
    ];
    let (_, secret) = pair.refresh_token.split_once('.').unwrap();
    for bad in &tampered {
        let token = format!("{bad}.{secret}");
        expect_reason(
            c.refresh(refresh_req(&token)).await,
            "REFRESH_TOKEN_INVALID",
        );
        for revoke in [revoke_token(&token), revoke_session_id(bad)] {
            let r = c.revoke(revoke).await.expect("a no-op, not an error");
            assert_eq!(r.into_inner().cursor, "", "{bad}: nothing revoked");
        }
    }
    // The real session was neither revoked nor taken for a reuse.
    c.verify(strong(&pair.access_token))
        .await
        .expect("the session is untouched");
    refreshed(&mut c, &pair.refresh_token).await;
}

#[tokio::test]
async fn tampered_partition_prefixes_name_nothing_memory() {
    tampered_partition_prefixes_name_nothing(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_partition_prefixes_name_nothing_redis() {
    tampered_partition_prefixes_name_nothing(Backend::Redis).await;
}
