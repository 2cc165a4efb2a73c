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
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::authority::caller::ExchangeAudiences;
pub use crate::authority::scope::TenantScope;
use crate::error::Error;

pub use tessera_core::wire::{API_KEY_HEADER, RPC_NAMES};

mod file;
mod layer;

pub(crate) use file::CallersConfig;
pub(crate) use layer::AuthLayer;

/// Which part of a client certificate a caller is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsIdentity {
    /// A URI SAN (SPIFFE ids).
    Uri(String),
    /// A DNS SAN.
    Dns(String),
    /// The subject common name.
    Cn(String),
}

/// The identities a verified client certificate proves, by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerIdentities {
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

/// One allowed caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
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
pub(crate) enum Callers {
    Anonymous,
    Listed(Arc<Vec<Caller>>),
}

impl Callers {
    /// Decide for one call from `client_ip` (the peer's address, for the
    /// `caller_denied` audit event; "" = unknown): `Ok(Some((name,
    /// scope)))` for a known caller allowed to call `rpc`, with its tenant
    /// scope, `Ok(None)` in anonymous mode (platform-wide). A refusal is
    /// counted and logged through [`crate::refusals`].
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

/// The identities a client certificate proves, each kept with its type:
/// URI SANs (SPIFFE ids), DNS SANs and subject common names. The
/// certificate chain was already verified against `--tls-client-ca` by the
/// TLS handshake.
pub(crate) fn certificate_identities(der: &[u8]) -> PeerIdentities {
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

/// SHA-256 of an API key as the callers file wants it.
pub fn api_key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests;
