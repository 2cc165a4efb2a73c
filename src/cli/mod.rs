//! Client subcommands for people at a shell: each prints JSON on stdout, or
//! `{"error": …}` on stderr with exit code 1.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::config::{Dur, KeyAlg};
use crate::error::status_reason;
use crate::pb;
use crate::pb::token_authority_client::TokenAuthorityClient;

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Server address.
    #[arg(long, env = "TESSERA_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// API key sent as `x-tessera-key`.
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// CA bundle (PEM) the server's certificate must chain to. TLS needs an
    /// `https://` --addr; without --ca it is verified against the system's roots.
    #[arg(long, env = "TESSERA_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for a server that requires one (mTLS).
    #[arg(long, env = "TESSERA_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, env = "TESSERA_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[arg(long)]
    pub subject: String,
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Audience (repeatable).
    #[arg(long)]
    pub audience: Vec<String>,
    /// Role (repeatable).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Scope (repeatable).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Custom claims as a JSON object.
    #[arg(long)]
    pub claims: Option<String>,
    #[arg(long, default_value = "")]
    pub device_fingerprint: String,
    #[arg(long)]
    pub access_ttl: Option<Dur>,
    #[arg(long)]
    pub refresh_ttl: Option<Dur>,
    /// Shown by `tessera sessions` ("Alice's phone").
    #[arg(long, default_value = "")]
    pub device_name: String,
    #[arg(long, default_value = "")]
    pub client_id: String,
    #[arg(long, default_value = "")]
    pub ip_address: String,
    #[arg(long, default_value = "")]
    pub user_agent: String,
    /// Bind the session to this client certificate's `x5t#S256` (RFC 8705).
    #[arg(long, default_value = "")]
    pub cert_thumbprint: String,
}

#[derive(Debug, Clone, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[arg(long)]
    pub subject: String,
    #[arg(long, default_value = "")]
    pub tenant: String,
}

#[derive(Debug, Clone, Args)]
pub struct JwksArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// A tenant's keys (the server's `--tenants`); none: the default keys.
    #[arg(long, default_value = "")]
    pub tenant: String,
}

#[derive(Debug, Clone, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// (Session ids and tokens may begin with `-`: base64url.)
    #[arg(allow_hyphen_values = true)]
    pub refresh_token: String,
    #[arg(long, default_value = "")]
    pub device_fingerprint: String,
    /// The client certificate's thumbprint, for a certificate-bound session
    /// (else, over mTLS, that of the certificate the call is made with).
    #[arg(long, default_value = "")]
    pub cert_thumbprint: String,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[arg(allow_hyphen_values = true)]
    pub access_token: String,
    #[arg(long, default_value = "")]
    pub audience: String,
    #[arg(long, default_value = "")]
    pub device_fingerprint: String,
    /// Allow sliding renewal.
    #[arg(long)]
    pub renew: bool,
    /// Required scope (repeatable).
    #[arg(long = "scope")]
    pub required_scopes: Vec<String>,
    /// Check revocation in the store, not only the replica's cache.
    #[arg(long)]
    pub strong: bool,
    /// The presenter's certificate thumbprint, for certificate-bound tokens.
    #[arg(long, default_value = "")]
    pub cert_thumbprint: String,
}

#[derive(Debug, Clone, Args)]
#[group(id = "target", required = true, multiple = false)]
pub struct RevokeTargetArgs {
    /// An access or refresh token.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub token: Option<String>,
    /// A session id (ids may begin with `-`: base64url).
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub session: Option<String>,
    /// A subject: every session of it ("log out everywhere").
    #[arg(long, group = "target")]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub target: RevokeTargetArgs,
    /// Tenant of `--subject`.
    #[arg(long, default_value = "")]
    pub tenant: String,
    #[arg(long, default_value = "")]
    pub reason: String,
    /// With `--subject`: revoke every session of the subject but this one
    /// ("log out my other devices").
    #[arg(long, requires = "subject", allow_hyphen_values = true)]
    pub keep_session: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Resume after this cursor.
    #[arg(long, default_value = "")]
    pub after: String,
    /// First print every revocation still in force.
    #[arg(long)]
    pub snapshot: bool,
    /// Only events of these tenants (comma-separated or repeated; within
    /// the caller's own when it is scoped to tenants).
    #[arg(long, value_delimiter = ',')]
    pub tenant: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    #[arg(long, value_parser = crate::config::key_alg_parser(), default_value = "eddsa")]
    pub alg: KeyAlg,
    /// Write the private key here (mode 0600) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A failed client call, printed as JSON.
#[derive(Debug)]
pub struct CliError(pub Value);

impl From<Status> for CliError {
    fn from(s: Status) -> Self {
        CliError(json!({ "error": {
            "code": format!("{:?}", s.code()),
            "reason": status_reason(&s),
            "message": s.message(),
        }}))
    }
}

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError(json!({ "error": { "message": message.to_string() } }))
}

async fn connect(c: &ConnectArgs) -> Result<TokenAuthorityClient<Channel>, CliError> {
    let mut endpoint = Channel::from_shared(c.addr.clone())
        .map_err(|e| fail(format!("invalid --addr: {e}")))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = client_tls(c)? {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| fail(format!("TLS: {e}")))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| fail(format!("cannot connect to {}: {e}", c.addr)))?;
    Ok(TokenAuthorityClient::new(channel))
}

/// TLS of an `https://` --addr: --ca (else the system's roots), and the
/// client certificate of --cert/--key. TLS flags with `http://` are refused
/// rather than ignored.
fn client_tls(c: &ConnectArgs) -> Result<Option<tonic::transport::ClientTlsConfig>, CliError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let https = c.addr.to_ascii_lowercase().starts_with("https://");
    if !https {
        if c.ca.is_some() || c.cert.is_some() {
            return Err(fail("--ca, --cert and --key need an https:// --addr"));
        }
        return Ok(None);
    }
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| fail(format!("cannot read {}: {e}", p.display())))
    };
    let mut tls = ClientTlsConfig::new();
    tls = match &c.ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => {
            let roots = rustls_native_certs::load_native_certs().certs;
            tls.ca_certificates(roots.into_iter().map(|der| {
                Certificate::from_pem(pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
            }))
        }
    };
    if let (Some(cert), Some(key)) = (&c.cert, &c.key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(tls))
}

fn request<T>(c: &ConnectArgs, msg: T) -> Result<Request<T>, CliError> {
    let mut req = Request::new(msg);
    if let Some(key) = &c.api_key {
        let value: MetadataValue<_> = key.parse().map_err(|_| fail("invalid --api-key"))?;
        req.metadata_mut()
            .insert(tessera_core::wire::API_KEY_HEADER, value);
    }
    Ok(req)
}

fn ts(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref().map_or(Value::Null, |t| json!(t.seconds))
}

fn pair_json(p: Option<pb::TokenPair>) -> Value {
    let Some(p) = p else { return Value::Null };
    json!({
        "access_token": p.access_token,
        "refresh_token": p.refresh_token,
        "token_type": p.token_type,
        "expires_in": p.expires_in,
        "access_expires_at": ts(&p.access_expires_at),
        "refresh_expires_at": ts(&p.refresh_expires_at),
        "session_id": p.session_id,
    })
}

/// The `tessera` command line: `serve`, and the client subcommands for
/// people at a shell. The server's modules never import this tree.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "A gRPC token authority: issue, rotate, verify and revoke JWT sessions"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the token authority.
    Serve(Box<crate::config::ServeArgs>),
    /// Mint a session (prints the token pair as JSON).
    Issue(IssueArgs),
    /// Rotate a refresh token.
    Refresh(RefreshArgs),
    /// Verify an access token.
    Verify(VerifyArgs),
    /// Revoke a token, a session or a subject.
    Revoke(RevokeArgs),
    /// Follow the revocation feed (JSON lines).
    Watch(WatchArgs),
    /// List a subject's live sessions (every page, as one JSON array).
    Sessions(SessionsArgs),
    /// Print the public JWK set (of one tenant with `--tenant`).
    Jwks(JwksArgs),
    /// Write a new signing key pair (PKCS#8 PEM).
    Keygen(KeygenArgs),
}

/// Run a client subcommand; returns what to print.
pub async fn run(command: Command) -> Result<Value, CliError> {
    match command {
        Command::Serve(_) => Err(fail("serve is not a client command")),
        Command::Issue(a) => {
            let claims = match &a.claims {
                None => None,
                Some(text) => {
                    let value: Value =
                        serde_json::from_str(text).map_err(|e| fail(format!("--claims: {e}")))?;
                    let Value::Object(map) = value else {
                        return Err(fail("--claims must be a JSON object"));
                    };
                    Some(crate::authority::convert::json_to_struct(&map))
                }
            };
            let dur = |d: Option<Dur>| {
                d.map(|d| prost_types::Duration {
                    seconds: d.0.as_secs() as i64,
                    nanos: 0,
                })
            };
            let msg = pb::IssueRequest {
                subject: a.subject.clone(),
                tenant: a.tenant.clone(),
                audience: a.audience.clone(),
                roles: a.roles.clone(),
                scopes: a.scopes.clone(),
                claims,
                device_fingerprint: a.device_fingerprint.clone(),
                access_ttl: dur(a.access_ttl),
                refresh_ttl: dur(a.refresh_ttl),
                device_name: a.device_name.clone(),
                client_id: a.client_id.clone(),
                ip_address: a.ip_address.clone(),
                user_agent: a.user_agent.clone(),
                cert_thumbprint: a.cert_thumbprint.clone(),
                ..Default::default()
            };
            let r = connect(&a.connect)
                .await?
                .issue(request(&a.connect, msg)?)
                .await?;
            Ok(pair_json(r.into_inner().tokens))
        }
        Command::Refresh(a) => {
            let msg = pb::RefreshRequest {
                refresh_token: a.refresh_token.clone(),
                device_fingerprint: a.device_fingerprint.clone(),
                cert_thumbprint: a.cert_thumbprint.clone(),
                ..Default::default()
            };
            let r = connect(&a.connect)
                .await?
                .refresh(request(&a.connect, msg)?)
                .await?;
            Ok(pair_json(r.into_inner().tokens))
        }
        Command::Verify(a) => {
            let msg = pb::VerifyRequest {
                access_token: a.access_token.clone(),
                audience: a.audience.clone(),
                device_fingerprint: a.device_fingerprint.clone(),
                renew: a.renew,
                required_scopes: a.required_scopes.clone(),
                consistency: if a.strong {
                    pb::Consistency::Strong
                } else {
                    pb::Consistency::Unspecified
                } as i32,
                cert_thumbprint: a.cert_thumbprint.clone(),
                ..Default::default()
            };
            let r = connect(&a.connect)
                .await?
                .verify(request(&a.connect, msg)?)
                .await?
                .into_inner();
            let c = r.claims.unwrap_or_default();
            Ok(json!({
                "claims": {
                    "subject": c.subject, "tenant": c.tenant, "session_id": c.session_id,
                    "token_id": c.token_id, "audience": c.audience, "roles": c.roles,
                    "scopes": c.scopes, "issued_at": ts(&c.issued_at), "expires_at": ts(&c.expires_at),
                    "custom": c.custom.map(|s| crate::authority::convert::struct_to_json_lossy(&s)).unwrap_or(Value::Null),
                },
                "renewed_access_token": r.renewed_access_token,
                "renewed_expires_at": ts(&r.renewed_expires_at),
                "server_time": ts(&r.server_time),
                "expires_in": r.expires_in,
            }))
        }
        Command::Revoke(a) => {
            use pb::revoke_request::Target;
            let target = match (&a.target.token, &a.target.session, &a.target.subject) {
                (Some(t), _, _) => Target::Token(t.clone()),
                (_, Some(s), _) => Target::SessionId(s.clone()),
                (_, _, Some(s)) => Target::Subject(pb::SubjectRef {
                    tenant: a.tenant.clone(),
                    subject: s.clone(),
                }),
                _ => return Err(fail("one of --token, --session, --subject is required")),
            };
            let msg = pb::RevokeRequest {
                target: Some(target),
                reason: a.reason.clone(),
                keep_session_id: a.keep_session.clone().unwrap_or_default(),
            };
            let r = connect(&a.connect)
                .await?
                .revoke(request(&a.connect, msg)?)
                .await?;
            Ok(json!({ "cursor": r.into_inner().cursor }))
        }
        Command::Watch(a) => {
            let msg = pb::WatchRevocationsRequest {
                after_cursor: a.after.clone(),
                include_snapshot: a.snapshot,
                mark_caught_up: false,
                tenants: a.tenant.clone(),
            };
            let mut stream = connect(&a.connect)
                .await?
                .watch_revocations(request(&a.connect, msg)?)
                .await?
                .into_inner();
            while let Some(ev) = stream.message().await? {
                let kind = pb::RevocationKind::try_from(ev.kind)
                    .map(|k| k.as_str_name())
                    .unwrap_or("UNKNOWN");
                println!(
                    "{}",
                    json!({
                        "cursor": ev.cursor, "kind": kind, "token_id": ev.token_id,
                        "session_id": ev.session_id, "tenant": ev.tenant, "subject": ev.subject,
                        "subject_key": ev.subject_key,
                        "revoked_at": ts(&ev.revoked_at), "issued_before": ts(&ev.issued_before),
                        "expires_at": ts(&ev.expires_at),
                    })
                );
            }
            Ok(Value::Null)
        }
        Command::Sessions(a) => {
            let mut client = connect(&a.connect).await?;
            let mut out = Vec::new();
            let mut page_token = String::new();
            loop {
                let msg = pb::ListSessionsRequest {
                    tenant: a.tenant.clone(),
                    subject: a.subject.clone(),
                    page_size: 500,
                    page_token,
                };
                let page = client
                    .list_sessions(request(&a.connect, msg)?)
                    .await?
                    .into_inner();
                out.extend(page.sessions.iter().map(|s| {
                    json!({
                        "session_id": s.session_id, "created_at": ts(&s.created_at),
                        "last_refreshed_at": ts(&s.last_refreshed_at),
                        "idle_expires_at": ts(&s.idle_expires_at),
                        "absolute_expires_at": ts(&s.absolute_expires_at),
                        "device_name": s.device_name, "client_id": s.client_id,
                        "ip_address": s.ip_address, "user_agent": s.user_agent,
                        "bound": s.bound, "audience": s.audience, "scopes": s.scopes,
                        "roles": s.roles,
                    })
                }));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            Ok(Value::Array(out))
        }
        Command::Jwks(a) => {
            let c = &a.connect;
            let tenant = a.tenant.clone();
            let r = connect(c)
                .await?
                .get_jwks(request(c, pb::GetJwksRequest { tenant })?)
                .await?;
            serde_json::from_str(&r.into_inner().jwks_json)
                .map_err(|e| fail(format!("server sent invalid JWKS: {e}")))
        }
        Command::Keygen(a) => {
            let pem = crate::keys::generate_pem(a.alg).map_err(fail)?;
            match &a.out {
                None => {
                    print!("{pem}");
                    Ok(Value::Null)
                }
                Some(path) => {
                    write_private(path, pem.as_bytes())
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                    Ok(
                        json!({ "written": path.display().to_string(), "alg": format!("{:?}", a.alg).to_lowercase() }),
                    )
                }
            }
        }
    }
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Session ids and tokens are base64url, so one in 64 begins with `-`:
    /// each is still a value, never taken for a flag (a CLI test failed on
    /// such an id by chance). Real flags beside them still parse.
    #[test]
    fn ids_and_tokens_may_begin_with_a_hyphen() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["tessera"][..], args].concat())
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        };
        match parse(&[
            "revoke",
            "--subject",
            "mo",
            "--keep-session",
            "-Vx9",
            "--reason",
            "r",
        ])
        .command
        {
            Command::Revoke(a) => {
                assert_eq!(a.keep_session.as_deref(), Some("-Vx9"));
                assert_eq!(a.reason, "r");
            }
            c => panic!("{c:?}"),
        }
        match parse(&["revoke", "--session", "-abc"]).command {
            Command::Revoke(a) => assert_eq!(a.target.session.as_deref(), Some("-abc")),
            c => panic!("{c:?}"),
        }
        match parse(&["revoke", "--token", "-abc.def"]).command {
            Command::Revoke(a) => assert_eq!(a.target.token.as_deref(), Some("-abc.def")),
            c => panic!("{c:?}"),
        }
        match parse(&["refresh", "-sid.secret", "--device-fingerprint", "d"]).command {
            Command::Refresh(a) => {
                assert_eq!(a.refresh_token, "-sid.secret");
                assert_eq!(a.device_fingerprint, "d");
            }
            c => panic!("{c:?}"),
        }
        match parse(&["verify", "--audience", "api", "-eyJ.x.y"]).command {
            Command::Verify(a) => {
                assert_eq!(a.access_token, "-eyJ.x.y");
                assert_eq!(a.audience, "api");
            }
            c => panic!("{c:?}"),
        }
    }
}
