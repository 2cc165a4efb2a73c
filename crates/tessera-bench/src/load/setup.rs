//! Before the clock starts: loopback checks, connections, and the tokens a
//! run presents (minted with the server's key, or issued by the server).

use std::net::SocketAddr;
use std::time::Duration;
use std::{fmt, str::FromStr};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use tessera_client::{pb, TesseraClient};
use tonic::transport::Channel;

use super::{BenchArgs, Scenario, TokenMix};

/// A duration flag written `500ms`, `30s`, `15m`, `2h` or `7d` (a bare
/// number is seconds), as the server's flags are.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 15m, 2h, 7d")
        })?;
        let ms = match unit.trim() {
            "ms" => Some(n),
            "" | "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            other => return Err(format!("invalid duration unit {other:?} in {s:?}")),
        };
        ms.map(|ms| Dur(Duration::from_millis(ms)))
            .ok_or_else(|| format!("duration {s:?} is too large"))
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

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
        let hot = if args.scenario == Scenario::Echo {
            String::new()
        } else {
            issue(&setup, "bench-verify".into()).await?
        };
        Ok(Tokens {
            hot,
            minted,
            subjects,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_server_reads_them() {
        for (s, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("8", 8_000),
            ("10m", 600_000),
        ] {
            assert_eq!(
                s.parse::<Dur>().unwrap().0,
                Duration::from_millis(ms),
                "{s}"
            );
        }
        assert!("10x".parse::<Dur>().is_err());
        assert!("s".parse::<Dur>().is_err());
    }
}
