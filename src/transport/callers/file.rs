//! The callers file (`--callers`) and the start-up rule for anonymous
//! callers.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tessera_core::wire::{Rpc, RPC_NAMES};

use super::{Caller, Callers, TenantScope, TlsIdentity};

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

impl Callers {
    /// Load `--callers`.
    pub(crate) fn load(path: &Path) -> Result<Vec<Caller>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read callers file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("callers file {}: {e}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> Result<Vec<Caller>, String> {
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
}

/// Where the callers come from (`--callers`, `--allow-anonymous`).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallersConfig {
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
    pub(crate) fn for_listener(
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
