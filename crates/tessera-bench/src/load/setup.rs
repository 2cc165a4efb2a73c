//! Before the clock starts: loopback checks, connections, and the tokens a
//! run presents (minted with the server's key, or issued by the server).

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use tessera_client::{pb, TesseraClient};
use tonic::transport::Channel;

use super::{BenchArgs, Scenario, TokenMix};

/// `N` random bytes in base64url (run ids that keep subjects apart).
pub fn random_b64<const N: usize>() -> String {
    let mut buf = [0u8; N];
    rand::thread_rng().fill_bytes(&mut buf);
    B64.encode(buf)
}

/// Loads only ever target this machine.
pub fn loopback(a: SocketAddr) -> Result<(), String> {
    if a.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "{a} is not a loopback address: bench only loads this machine"
        ))
    }
}

pub async fn connect(addr: SocketAddr) -> Result<Channel, String> {
    Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

/// The SDK's client on `channel`, with the run's API key.
pub fn client(channel: Channel, api_key: &Option<String>) -> Result<TesseraClient, String> {
    TesseraClient::new(channel, api_key.as_deref()).map_err(|e| e.to_string())
}

pub fn issue_req(subject: String) -> pb::IssueRequest {
    pb::IssueRequest {
        subject,
        tenant: "bench".into(),
        audience: vec!["api".into()],
        scopes: vec!["read".into()],
        ..Default::default()
    }
}

/// The tokens a run presents.
pub struct Tokens {
    /// Issued by the server: the one token of `--tokens hot`.
    pub hot: String,
    /// Minted here for `warm`, `cold` and `flood`.
    pub minted: Vec<String>,
    /// Exchange's subject tokens, issued by the server.
    pub subjects: Vec<String>,
    /// `revoke --sessions`: the session ids to revoke, in order.
    pub sessions: Vec<String>,
}

/// The most sessions `--sessions` takes.
pub const MAX_SESSIONS: usize = 100_000;

/// `--sessions`: one session id a line (blank lines skipped), from a file
/// or `-` (stdin); at most [`MAX_SESSIONS`].
fn read_sessions(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| format!("--sessions {}: {e}", path.display()))?;
    let ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.len() > MAX_SESSIONS {
        return Err(format!(
            "--sessions: {} ids, at most {MAX_SESSIONS}",
            ids.len()
        ));
    }
    Ok(ids)
}

/// `--returned-out`: `session_id unix_time_ns`, one line per Revoke that
/// returned OK.
pub fn write_returned(
    path: &std::path::Path,
    shared: &super::worker::Shared,
) -> Result<(), String> {
    use std::fmt::Write;
    let returned = shared.returned.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::with_capacity(returned.len() * 48);
    for (i, ns) in returned.iter() {
        let _ = writeln!(out, "{} {ns}", shared.tokens.sessions[*i]);
    }
    std::fs::write(path, out).map_err(|e| format!("--returned-out {}: {e}", path.display()))
}

impl Tokens {
    pub async fn prepare(args: &BenchArgs, channel: Channel) -> Result<Self, String> {
        let setup = client(channel, &args.api_key)?;
        let minted = match (args.scenario, args.tokens) {
            (Scenario::Verify, TokenMix::Warm) => {
                mint_tokens(args, args.token_count.unwrap_or(10_000))?
            }
            (Scenario::Verify, TokenMix::Cold) => {
                mint_tokens(args, args.token_count.unwrap_or(200_000))?
            }
            (Scenario::Verify, TokenMix::Flood) => {
                mint_tokens(args, args.token_count.unwrap_or(1_000))?
            }
            _ => Vec::new(),
        };
        let mut subjects = Vec::new();
        if args.scenario == Scenario::Exchange {
            for i in 0..args.token_count.unwrap_or(1).clamp(1, 10_000) {
                subjects.push(issue(&setup, format!("bench-x-{i}")).await?);
            }
        }
        let sessions = match (&args.sessions, args.scenario) {
            (Some(path), Scenario::Revoke) => read_sessions(path)?,
            (Some(_), _) => return Err("--sessions is for --scenario revoke".into()),
            (None, _) => Vec::new(),
        };
        let hot = if args.scenario == Scenario::Echo || !sessions.is_empty() {
            String::new()
        } else {
            issue(&setup, "bench-verify".into()).await?
        };
        Ok(Tokens {
            hot,
            minted,
            subjects,
            sessions,
        })
    }
}

async fn issue(client: &TesseraClient, subject: String) -> Result<String, String> {
    client
        .issue(issue_req(subject))
        .await
        .map(|pair| pair.access_token)
        .map_err(|e| format!("setup Issue failed: {e}"))
}

/// Valid access tokens minted with the server's key, as `Issue` would
/// (their sessions do not exist in the store, which the default `Verify`
/// path never asks).
fn mint_tokens(args: &BenchArgs, count: usize) -> Result<Vec<String>, String> {
    let path = args
        .signing_key
        .as_ref()
        .ok_or("--tokens warm, cold and flood need --signing-key (the server's key)")?;
    let keys = tessera_core::keys::KeySet::load(path, None).map_err(|e| e.to_string())?;
    let now = tessera_core::unix_now_ms() / 1000;
    let run = random_b64::<6>();
    (0..count)
        .map(|i| {
            let claims = tessera_core::tokens::AccessClaims {
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
            tessera_core::tokens::mint(&keys, &claims).map_err(|e| e.to_string())
        })
        .collect()
}

/// The `n`-th garbage token of a flood: `valid` with its signature's
/// middle replaced by `n`, so that it parses and fails the signature.
pub fn garbage(valid: &str, n: u64) -> String {
    let cut = valid.len() - 20;
    format!("{}{:010}{}", &valid[..cut], n, &valid[cut + 10..])
}
