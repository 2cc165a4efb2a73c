//! Caller authorization (DESIGN.md §8): who may call which RPC.
//!
//! ```toml
//! [[caller]]
//! name = "login-service"
//! api_key_sha256 = "<64 hex chars>"   # or: tls_identity = "spiffe://…"
//! allow = ["Issue", "Refresh", "Revoke"]  # RPC names, or "*"
//! ```
//!
//! A caller presents its API key as metadata `x-tessera-key`; the file holds
//! only the key's SHA-256, compared in constant time against every caller (so
//! the time taken does not tell which entry, if any, was close). Health and
//! reflection stay open for probes; every `tessera.v1.TokenAuthority` RPC is
//! checked by [`AuthLayer`], before any handler runs.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{to_status, Error};

/// The metadata key that carries an API key.
pub const API_KEY_HEADER: &str = "x-tessera-key";
/// The RPC names a caller may be allowed.
pub const RPC_NAMES: &[&str] = &[
    "Issue",
    "Refresh",
    "Verify",
    "Revoke",
    "WatchRevocations",
    "GetJwks",
];
const SERVICE_PREFIX: &str = "/tessera.v1.TokenAuthority/";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerFile {
    #[serde(default)]
    caller: Vec<CallerEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerEntry {
    name: String,
    #[serde(default)]
    api_key_sha256: Option<String>,
    #[serde(default)]
    tls_identity: Option<String>,
    allow: Vec<String>,
}

/// One allowed caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    api_key_sha256: Option<[u8; 32]>,
    pub tls_identity: Option<String>,
    allow_all: bool,
    allow: HashSet<String>,
}

impl Caller {
    pub fn may_call(&self, rpc: &str) -> bool {
        self.allow_all || self.allow.contains(rpc)
    }
}

/// Who may call: either anyone (no callers configured, allowed by the
/// start-up rule) or the listed callers.
#[derive(Debug, Clone)]
pub enum Callers {
    Anonymous,
    Listed(Arc<Vec<Caller>>),
}

impl Callers {
    /// Load `--callers`.
    pub fn load(path: &Path) -> Result<Vec<Caller>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read callers file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("callers file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Vec<Caller>, String> {
        let file: CallerFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = HashSet::new();
        file.caller
            .into_iter()
            .map(|c| {
                if c.name.is_empty() || !names.insert(c.name.clone()) {
                    return Err(format!("caller names must be unique and non-empty ({:?})", c.name));
                }
                let api_key_sha256 = match &c.api_key_sha256 {
                    None => None,
                    Some(h) => {
                        let bytes = hex::decode(h).ok().filter(|b| b.len() == 32).ok_or_else(|| {
                            format!("caller {:?}: api_key_sha256 must be 64 hex characters", c.name)
                        })?;
                        let mut out = [0u8; 32];
                        out.copy_from_slice(&bytes);
                        Some(out)
                    }
                };
                if api_key_sha256.is_none() && c.tls_identity.is_none() {
                    return Err(format!("caller {:?}: needs api_key_sha256 or tls_identity", c.name));
                }
                for rpc in &c.allow {
                    if rpc != "*" && !RPC_NAMES.contains(&rpc.as_str()) {
                        return Err(format!("caller {:?}: unknown RPC {rpc:?} in allow (one of {RPC_NAMES:?} or \"*\")", c.name));
                    }
                }
                Ok(Caller {
                    allow_all: c.allow.iter().any(|a| a == "*"),
                    allow: c.allow.into_iter().collect(),
                    name: c.name,
                    api_key_sha256,
                    tls_identity: c.tls_identity,
                })
            })
            .collect()
    }

    /// Decide for one call: `Ok(Some(name))` for a known caller allowed to
    /// call `rpc`, `Ok(None)` in anonymous mode.
    pub fn authorize(
        &self,
        rpc: &str,
        api_key: Option<&[u8]>,
        tls_identities: &[String],
    ) -> Result<Option<String>, Error> {
        let callers = match self {
            Callers::Anonymous => return Ok(None),
            Callers::Listed(c) => c,
        };
        let presented = api_key.map(Sha256::digest);
        let mut found: Option<&Caller> = None;
        for caller in callers.iter() {
            // Compare against every entry: no early exit on a match.
            let key_match = match (&presented, &caller.api_key_sha256) {
                (Some(p), Some(h)) => bool::from(p.as_slice().ct_eq(h)),
                _ => false,
            };
            let tls_match = caller
                .tls_identity
                .as_ref()
                .is_some_and(|id| tls_identities.iter().any(|t| t == id));
            if (key_match || tls_match) && found.is_none() {
                found = Some(caller);
            }
        }
        let caller = found.ok_or(Error::CallerUnauthenticated)?;
        if !caller.may_call(rpc) {
            return Err(Error::CallerNotAllowed);
        }
        Ok(Some(caller.name.clone()))
    }
}

/// The identities a client certificate proves: its URI SANs (SPIFFE ids),
/// DNS SANs and subject common name. A caller's `tls_identity` must equal
/// one of them. The certificate chain was already verified against
/// `--tls-client-ca` by the TLS handshake.
pub fn certificate_identities(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => ids.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => ids.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            ids.push(cn.to_owned());
        }
    }
    ids
}

fn peer_identities<B>(req: &http::Request<B>) -> Vec<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    req.extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .and_then(|certs| {
            certs
                .first()
                .map(|leaf| certificate_identities(leaf.as_ref()))
        })
        .unwrap_or_default()
}

/// The authorized caller of a request (request extension), for per-caller
/// rate limits and logs. `anonymous` when no callers are configured.
#[derive(Debug, Clone)]
pub struct CallerName(pub String);

/// Tower layer that authorizes every `TokenAuthority` call.
#[derive(Clone)]
pub struct AuthLayer {
    callers: Callers,
}

impl AuthLayer {
    pub fn new(callers: Callers) -> Self {
        AuthLayer { callers }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            callers: self.callers.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    callers: Callers,
}

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, futures::future::Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let Some(rpc) = req.uri().path().strip_prefix(SERVICE_PREFIX) else {
            // Health and reflection stay open for probes.
            return futures::future::Either::Left(self.inner.call(req));
        };
        let key = req.headers().get(API_KEY_HEADER).map(|v| v.as_bytes());
        let ids = peer_identities(&req);
        match self.callers.authorize(rpc, key, &ids) {
            Ok(caller) => {
                let name = caller.unwrap_or_else(|| "anonymous".to_owned());
                tracing::trace!(caller = %name, rpc, "authorized");
                req.extensions_mut().insert(CallerName(name));
                futures::future::Either::Left(self.inner.call(req))
            }
            Err(e) => {
                tracing::info!(rpc, reason = e.reason(), "call refused");
                futures::future::Either::Right(futures::future::ready(
                    Ok(to_status(&e).into_http()),
                ))
            }
        }
    }
}

/// SHA-256 of an API key as the callers file wants it.
pub fn api_key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callers() -> Callers {
        let text = format!(
            "[[caller]]\nname = \"login\"\napi_key_sha256 = \"{}\"\nallow = [\"Issue\", \"Refresh\"]\n\n[[caller]]\nname = \"ops\"\napi_key_sha256 = \"{}\"\nallow = [\"*\"]\n",
            api_key_sha256("login-key"),
            api_key_sha256("ops-key")
        );
        Callers::Listed(Arc::new(Callers::parse(&text).unwrap()))
    }

    #[test]
    fn keys_and_allow_lists_decide() {
        let c = callers();
        assert_eq!(
            c.authorize("Issue", Some(b"login-key"), &[])
                .unwrap()
                .as_deref(),
            Some("login")
        );
        assert!(matches!(
            c.authorize("Revoke", Some(b"login-key"), &[]),
            Err(Error::CallerNotAllowed)
        ));
        assert!(c.authorize("Revoke", Some(b"ops-key"), &[]).is_ok());
        assert!(matches!(
            c.authorize("Issue", Some(b"wrong"), &[]),
            Err(Error::CallerUnauthenticated)
        ));
        assert!(matches!(
            c.authorize("Issue", None, &[]),
            Err(Error::CallerUnauthenticated)
        ));
        assert!(Callers::Anonymous
            .authorize("Issue", None, &[])
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Callers::parse(
            "[[caller]]\nname = \"x\"\napi_key_sha256 = \"abc\"\nallow = [\"Issue\"]\n"
        )
        .is_err());
        let h = api_key_sha256("k");
        assert!(Callers::parse(&format!(
            "[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = [\"Mint\"]\n"
        ))
        .is_err());
        assert!(Callers::parse("[[caller]]\nname = \"x\"\nallow = [\"Issue\"]\n").is_err());
        assert!(Callers::parse(&format!(
            "[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = []\n[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = []\n"
        ))
        .is_err());
    }
}
