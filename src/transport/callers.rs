//! Caller authorization (docs/design.md §8): who may call which RPC.
//!
//! ```toml
//! [[caller]]
//! name = "login-service"
//! api_key_sha256 = "<64 hex chars>"   # or a client certificate, below
//! allow = ["Issue", "Refresh", "Revoke"]  # RPC names, or "*"
//!
//! [[caller]]
//! name = "gateway"
//! tls_uri = "spiffe://example.org/gateway"  # or tls_dns = "…", tls_cn = "…"
//! allow = ["Verify"]
//!
//! [[caller]]
//! name = "acme-login"
//! api_key_sha256 = "<64 hex chars>"
//! allow = ["Issue", "Refresh", "Revoke", "ListSessions"]
//! tenants = ["acme"]   # absent: every tenant (a platform-wide caller)
//! ```
//!
//! `tenants` scopes a caller to those tenants ([`TenantScope`]): it may act
//! only on their subjects, tokens, sessions and refresh tokens, and its
//! `WatchRevocations` carries only their events (`service::tenancy`).
//!
//! A certificate identity names its type and matches only that part of the
//! certificate: `tls_uri` a URI SAN, `tls_dns` a DNS SAN, `tls_cn` the
//! subject common name. (One untyped list once let a certificate with
//! `CN=spiffe://x/gw` and no URI SAN pass as the caller of that SPIFFE id.)
//! `exchange_audiences = ["billing", …]` lists the audiences a caller may
//! ask Exchange for (RFC 8693 token exchange; none when absent).
//!
//! The older `tls_identity` is still read, with a warning at start-up, as
//! `tls_uri` when it has a scheme (`spiffe://…`) and as `tls_dns` otherwise;
//! it never matches the common name.
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

use crate::authority::caller::{CallerName, ExchangeAudiences};
pub use crate::authority::scope::TenantScope;
use crate::error::{to_status, Error};

use tessera_core::wire::Rpc;
pub use tessera_core::wire::{API_KEY_HEADER, RPC_NAMES};

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
    #[serde(default)]
    tls_uri: Option<String>,
    #[serde(default)]
    tls_dns: Option<String>,
    #[serde(default)]
    tls_cn: Option<String>,
    allow: Vec<String>,
    /// The tenants this caller may act on; absent = every tenant.
    #[serde(default)]
    tenants: Option<Vec<String>>,
    #[serde(default)]
    exchange_audiences: Vec<String>,
}

/// Which part of a client certificate a caller is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsIdentity {
    /// A URI SAN (SPIFFE ids).
    Uri(String),
    /// A DNS SAN.
    Dns(String),
    /// The subject common name.
    Cn(String),
}

/// The identities a verified client certificate proves, by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentities {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub cns: Vec<String>,
}

impl PeerIdentities {
    /// Does the certificate prove `id`, in the part of it `id` names?
    pub fn proves(&self, id: &TlsIdentity) -> bool {
        let (list, want) = match id {
            TlsIdentity::Uri(u) => (&self.uris, u),
            TlsIdentity::Dns(d) => (&self.dns, d),
            TlsIdentity::Cn(c) => (&self.cns, c),
        };
        list.iter().any(|have| have == want)
    }
}

impl CallerEntry {
    /// The typed certificate identity of this entry, if any.
    fn tls(&self) -> Result<Option<TlsIdentity>, String> {
        let mut ids = Vec::new();
        if let Some(legacy) = &self.tls_identity {
            tracing::warn!(
                caller = %self.name,
                "callers file: tls_identity is deprecated; write tls_uri, tls_dns or tls_cn (read as {})",
                if legacy.contains("://") { "tls_uri" } else { "tls_dns" }
            );
            ids.push(if legacy.contains("://") {
                TlsIdentity::Uri(legacy.clone())
            } else {
                TlsIdentity::Dns(legacy.clone())
            });
        }
        ids.extend(self.tls_uri.clone().map(TlsIdentity::Uri));
        ids.extend(self.tls_dns.clone().map(TlsIdentity::Dns));
        ids.extend(self.tls_cn.clone().map(TlsIdentity::Cn));
        match ids.len() {
            0 => Ok(None),
            1 => Ok(ids.pop()),
            _ => Err(format!(
                "caller {:?}: give one of tls_uri, tls_dns, tls_cn (or the older tls_identity)",
                self.name
            )),
        }
    }
}

/// One allowed caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    api_key_sha256: Option<[u8; 32]>,
    pub tls: Option<TlsIdentity>,
    allow_all: bool,
    allow: HashSet<String>,
    /// The tenants it may act on (`tenants`; all when absent).
    pub tenants: TenantScope,
    /// The audiences Exchange may mint tokens for on this caller's behalf.
    exchange_audiences: Arc<[String]>,
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
                let tls = c.tls()?;
                if api_key_sha256.is_none() && tls.is_none() {
                    return Err(format!("caller {:?}: needs api_key_sha256 or a certificate identity (tls_uri, tls_dns, tls_cn)", c.name));
                }
                for rpc in &c.allow {
                    if rpc != "*" && rpc.parse::<Rpc>().is_err() {
                        return Err(format!("caller {:?}: unknown RPC {rpc:?} in allow (one of {RPC_NAMES:?} or \"*\")", c.name));
                    }
                }
                let tenants = match c.tenants {
                    None => TenantScope::All,
                    Some(list) => {
                        if list.is_empty() {
                            return Err(format!("caller {:?}: tenants = [] allows no tenant; list at least one, or leave tenants out for a platform-wide caller", c.name));
                        }
                        if let Some(bad) = list.iter().find(|t| {
                            t.len() > crate::authority::MAX_NAME_BYTES
                                || t.chars().any(crate::authority::is_hidden_char)
                        }) {
                            return Err(format!(
                                "caller {:?}: tenant {bad:?} is not a tenant name (at most {} bytes of printable text)",
                                c.name,
                                crate::authority::MAX_NAME_BYTES
                            ));
                        }
                        TenantScope::only(list)
                    }
                };
                if c.exchange_audiences.iter().any(|a| a.is_empty() || a.chars().any(char::is_control)) {
                    return Err(format!("caller {:?}: exchange_audiences entries must be non-empty printable text", c.name));
                }
                Ok(Caller {
                    tenants,
                    exchange_audiences: c.exchange_audiences.into(),
                    allow_all: c.allow.iter().any(|a| a == "*"),
                    allow: c.allow.into_iter().collect(),
                    name: c.name,
                    api_key_sha256,
                    tls,
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
        peer: &PeerIdentities,
    ) -> Result<Option<String>, Error> {
        self.authorize_at(rpc, api_key, peer, "")
    }

    /// [`Callers::authorize`] for a call from `client_ip` (the peer's
    /// address, for the `caller_denied` audit event; "" = unknown). A
    /// refusal is counted and logged through [`crate::refusals`].
    pub fn authorize_at(
        &self,
        rpc: &str,
        api_key: Option<&[u8]>,
        peer: &PeerIdentities,
        client_ip: &str,
    ) -> Result<Option<String>, Error> {
        self.authorize_scoped(rpc, api_key, peer, client_ip)
            .map(|found| found.map(|(name, _)| name))
    }

    /// [`Callers::authorize_at`] with the caller's tenant scope:
    /// `Ok(Some((name, scope)))` for a known caller, `Ok(None)` in
    /// anonymous mode (platform-wide).
    pub fn authorize_scoped(
        &self,
        rpc: &str,
        api_key: Option<&[u8]>,
        peer: &PeerIdentities,
        client_ip: &str,
    ) -> Result<Option<(String, TenantScope)>, Error> {
        let callers = match self {
            Callers::Anonymous => return Ok(None),
            Callers::Listed(c) => c,
        };
        let found = find(callers, api_key, peer);
        let denied = |caller: Option<&Caller>, e: Error| {
            let refusal = crate::audit::Event {
                rpc,
                caller: caller.map_or("", |c| c.name.as_str()),
                caller_tenants: &caller.map(|c| c.tenants.label()).unwrap_or_default(),
                client_ip,
                ..Default::default()
            };
            crate::refusals::refused(e.reason(), &refusal);
            e
        };
        let Some(caller) = found else {
            return Err(denied(None, Error::CallerUnauthenticated));
        };
        if !caller.may_call(rpc) {
            return Err(denied(Some(caller), Error::CallerNotAllowed));
        }
        Ok(Some((caller.name.clone(), caller.tenants.clone())))
    }
}

/// The caller whose key or certificate matches, the first in the file.
fn find<'c>(
    callers: &'c [Caller],
    api_key: Option<&[u8]>,
    peer: &PeerIdentities,
) -> Option<&'c Caller> {
    let presented = api_key.map(Sha256::digest);
    let mut found: Option<&Caller> = None;
    for caller in callers {
        // Compare against every entry: no early exit on a match.
        let key_match = match (&presented, &caller.api_key_sha256) {
            (Some(p), Some(h)) => bool::from(p.as_slice().ct_eq(h)),
            _ => false,
        };
        let tls_match = caller.tls.as_ref().is_some_and(|id| peer.proves(id));
        if (key_match || tls_match) && found.is_none() {
            found = Some(caller);
        }
    }
    found
}

impl Callers {
    /// The name of the listed caller an API key authenticates, whatever it
    /// may call (`None` in anonymous mode, where no key is right).
    pub fn authenticate(&self, api_key: &[u8]) -> Option<String> {
        match self {
            Callers::Anonymous => None,
            Callers::Listed(c) => {
                find(c, Some(api_key), &PeerIdentities::default()).map(|c| c.name.clone())
            }
        }
    }

    /// The audiences caller `name` may ask Exchange for.
    pub fn exchange_audiences(&self, name: &str) -> ExchangeAudiences {
        match self {
            Callers::Anonymous => ExchangeAudiences::Any,
            Callers::Listed(c) => ExchangeAudiences::Only(
                c.iter()
                    .find(|c| c.name == name)
                    .map_or_else(|| Arc::from(Vec::new()), |c| c.exchange_audiences.clone()),
            ),
        }
    }
}

/// Where the callers come from (`--callers`, `--allow-anonymous`).
#[derive(Debug, Clone, Default)]
pub struct CallersConfig {
    /// The callers file, if any.
    pub file: Option<std::path::PathBuf>,
    /// Anonymous calls on a non-loopback address too (a proxy in front
    /// authenticates callers).
    pub allow_anonymous: bool,
}

impl Callers {
    /// Who may call on `local`, as `config` says (docs/design.md §8):
    /// with no callers configured, anonymous calls only on a loopback address
    /// or with `--allow-anonymous`; otherwise the server refuses to start.
    pub fn for_listener(
        config: &CallersConfig,
        local: std::net::SocketAddr,
    ) -> Result<Callers, String> {
        match &config.file {
            Some(path) => {
                let list = Callers::load(path)?;
                if list.is_empty() {
                    return Err(format!("callers file {} lists no [[caller]]", path.display()));
                }
                Ok(Callers::Listed(Arc::new(list)))
            }
            None if local.ip().is_loopback() || config.allow_anonymous => Ok(Callers::Anonymous),
            None => Err(format!(
                "refusing to serve anonymous callers on non-loopback address {local}: give --callers FILE, or --allow-anonymous if a proxy in front authenticates callers"
            )),
        }
    }
}

/// The identities a client certificate proves, each kept with its type:
/// URI SANs (SPIFFE ids), DNS SANs and subject common names. The
/// certificate chain was already verified against `--tls-client-ca` by the
/// TLS handshake.
pub fn certificate_identities(der: &[u8]) -> PeerIdentities {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return PeerIdentities::default();
    };
    let mut ids = PeerIdentities::default();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => ids.uris.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => ids.dns.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            ids.cns.push(cn.to_owned());
        }
    }
    ids
}

/// The IP address of the peer of a gRPC call ("" when unknown).
fn peer_ip<B>(req: &http::Request<B>) -> String {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

fn peer_identities<B>(req: &http::Request<B>) -> PeerIdentities {
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
        let Some(rpc) = tessera_core::wire::rpc_of_path(req.uri().path()) else {
            // Health and reflection stay open for probes.
            return futures::future::Either::Left(self.inner.call(req));
        };
        let key = req.headers().get(API_KEY_HEADER).map(|v| v.as_bytes());
        let ids = peer_identities(&req);
        let ip = peer_ip(&req);
        match self.callers.authorize_scoped(rpc, key, &ids, &ip) {
            Ok(caller) => {
                let (name, scope) =
                    caller.unwrap_or_else(|| ("anonymous".to_owned(), TenantScope::All));
                tracing::trace!(caller = %name, rpc, "authorized");
                if rpc == Rpc::Exchange.as_str() {
                    let audiences = self.callers.exchange_audiences(&name);
                    req.extensions_mut().insert(audiences);
                }
                req.extensions_mut().insert(CallerName(name));
                req.extensions_mut().insert(scope);
                futures::future::Either::Left(self.inner.call(req))
            }
            Err(e) => {
                // Logged (rate-limited) and counted by `authorize_at`.
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
            c.authorize("Issue", Some(b"login-key"), &PeerIdentities::default())
                .unwrap()
                .as_deref(),
            Some("login")
        );
        assert!(matches!(
            c.authorize("Revoke", Some(b"login-key"), &PeerIdentities::default()),
            Err(Error::CallerNotAllowed)
        ));
        assert!(c
            .authorize("Revoke", Some(b"ops-key"), &PeerIdentities::default())
            .is_ok());
        assert!(matches!(
            c.authorize("Issue", Some(b"wrong"), &PeerIdentities::default()),
            Err(Error::CallerUnauthenticated)
        ));
        assert!(matches!(
            c.authorize("Issue", None, &PeerIdentities::default()),
            Err(Error::CallerUnauthenticated)
        ));
        assert!(Callers::Anonymous
            .authorize("Issue", None, &PeerIdentities::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn certificate_identities_match_only_their_own_type() {
        let text = "[[caller]]\nname = \"gw\"\ntls_uri = \"spiffe://x/gw\"\nallow = [\"*\"]\n\n[[caller]]\nname = \"host\"\ntls_dns = \"gw.internal\"\nallow = [\"*\"]\n\n[[caller]]\nname = \"cn\"\ntls_cn = \"legacy-client\"\nallow = [\"*\"]\n\n[[caller]]\nname = \"old\"\ntls_identity = \"spiffe://x/old\"\nallow = [\"*\"]\n";
        let c = Callers::Listed(Arc::new(Callers::parse(text).unwrap()));
        let who = |peer: PeerIdentities| c.authorize("Issue", None, &peer).ok().flatten();
        let cn = |v: &str| PeerIdentities {
            cns: vec![v.into()],
            ..Default::default()
        };
        let uri = |v: &str| PeerIdentities {
            uris: vec![v.into()],
            ..Default::default()
        };
        let dns = |v: &str| PeerIdentities {
            dns: vec![v.into()],
            ..Default::default()
        };
        assert_eq!(who(uri("spiffe://x/gw")).as_deref(), Some("gw"));
        assert_eq!(who(cn("spiffe://x/gw")), None, "a CN is not a URI SAN");
        assert_eq!(who(dns("spiffe://x/gw")), None);
        assert_eq!(who(dns("gw.internal")).as_deref(), Some("host"));
        assert_eq!(who(cn("gw.internal")), None, "a CN is not a DNS SAN");
        assert_eq!(who(cn("legacy-client")).as_deref(), Some("cn"));
        assert_eq!(who(uri("legacy-client")), None);
        // The older key: a URI SAN when it has a scheme, never the CN.
        assert_eq!(who(uri("spiffe://x/old")).as_deref(), Some("old"));
        assert_eq!(who(cn("spiffe://x/old")), None);
        // One identity per entry.
        assert!(Callers::parse(
            "[[caller]]\nname = \"x\"\ntls_uri = \"a://b\"\ntls_cn = \"b\"\nallow = [\"*\"]\n"
        )
        .is_err());
    }

    #[test]
    fn tenants_scope_a_caller() {
        let h = api_key_sha256("k");
        let g = api_key_sha256("g");
        let text = format!(
            "[[caller]]\nname = \"acme\"\napi_key_sha256 = \"{h}\"\nallow = [\"*\"]\ntenants = [\"acme\", \"initech\"]\n\n[[caller]]\nname = \"ops\"\napi_key_sha256 = \"{g}\"\nallow = [\"*\"]\n"
        );
        let c = Callers::Listed(Arc::new(Callers::parse(&text).unwrap()));
        let none = PeerIdentities::default();
        let (name, scope) = c
            .authorize_scoped("Issue", Some(b"k"), &none, "")
            .unwrap()
            .unwrap();
        assert_eq!(name, "acme");
        assert!(scope.allows("acme") && scope.allows("initech") && !scope.allows("globex"));
        let (_, scope) = c
            .authorize_scoped("Issue", Some(b"g"), &none, "")
            .unwrap()
            .unwrap();
        assert_eq!(scope, TenantScope::All, "no tenants: platform-wide");
        // An empty list, or a name no tenant can have, is refused.
        for tenants in ["[]", "[\"a\\u202eb\"]", &format!("[{:?}]", "x".repeat(257))] {
            let text = format!(
                "[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = [\"*\"]\ntenants = {tenants}\n"
            );
            assert!(Callers::parse(&text).is_err(), "{tenants}");
        }
    }

    #[test]
    fn exchange_audiences_are_per_caller() {
        let h = api_key_sha256("k");
        let text = format!(
            "[[caller]]\nname = \"svc\"\napi_key_sha256 = \"{h}\"\nallow = [\"Exchange\"]\nexchange_audiences = [\"billing\"]\n\n[[caller]]\nname = \"other\"\napi_key_sha256 = \"{}\"\nallow = [\"Exchange\"]\n",
            api_key_sha256("k2")
        );
        let c = Callers::Listed(Arc::new(Callers::parse(&text).unwrap()));
        assert!(c.exchange_audiences("svc").allows("billing"));
        assert!(!c.exchange_audiences("svc").allows("payroll"));
        assert!(!c.exchange_audiences("other").allows("billing"));
        assert!(!c.exchange_audiences("nobody").allows("billing"));
        assert!(Callers::Anonymous
            .exchange_audiences("anonymous")
            .allows("x"));
        assert_eq!(c.authenticate(b"k2").as_deref(), Some("other"));
        assert_eq!(c.authenticate(b"nope"), None);
        assert!(Callers::parse(&format!(
            "[[caller]]\nname = \"x\"\napi_key_sha256 = \"{h}\"\nallow = [\"Exchange\"]\nexchange_audiences = [\"\"]\n"
        ))
        .is_err());
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
