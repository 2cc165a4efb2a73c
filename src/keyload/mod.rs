//! The keys the configuration names, and the tenants file with its keys:
//! loaded at start, re-read on SIGHUP.

mod tenants;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::config::{self, ServeArgs};
use crate::keys::{self, KeyRing, KeySet};

pub use tenants::load_tenants;

/// Load the signing keys the configuration names, or make an ephemeral one.
pub(crate) fn load_keys(args: &ServeArgs) -> Result<KeySet, keys::KeyError> {
    match &args.signing_key {
        Some(path) => load_set(path, args.signing_alg, &args.verify_key),
        None => {
            if args.signing_alg == Some(config::KeyAlg::Hs256) {
                return Err(keys::KeyError::ShortSecret("(no --signing-key)".into()));
            }
            KeySet::ephemeral()
        }
    }
}

/// A signing key and the keys that verify beside it (the previous one
/// after a rotation, the next one before it signs): the default keys, or
/// a tenant's (`--tenants`).
pub(crate) fn load_set(
    signing: &Path,
    alg: Option<config::KeyAlg>,
    verify: &[PathBuf],
) -> Result<KeySet, keys::KeyError> {
    let active = KeySet::load(signing, alg)?;
    // HS256 only when explicitly configured: then a verify key that
    // is not PEM is the previous (or next) HS256 secret.
    let hs256 = alg == Some(config::KeyAlg::Hs256);
    let older = verify
        .iter()
        .map(|p| KeySet::load_verifying(p, hs256))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(active.with_older(older))
}

/// On SIGHUP re-read every key file and the tenants file (its issuers,
/// keys and budgets); anything that fails keeps everything in force
/// (logged). Ends when `drain` fires. `None` where there is no SIGHUP.
pub(crate) fn reload_on_sighup(
    keys: Arc<KeyRing>,
    tenants: Arc<crate::authority::tenants::TenantRing>,
    args: ServeArgs,
    mut drain: watch::Receiver<bool>,
) -> Option<BoxFuture<'static, ()>> {
    #[cfg(unix)]
    {
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            return Some(Box::pin(async move {
                loop {
                    tokio::select! {
                        _ = hup.recv() => {}
                        _ = drain.changed() => return,
                    }
                    match load_tenants(&args) {
                        Ok((set, _)) if set.default_keys().ephemeral && args.tenants.is_none() => {
                            tracing::warn!(
                                "SIGHUP ignored: no --signing-key to reload (ephemeral key kept)"
                            )
                        }
                        Ok((set, limits)) => {
                            let set = if set.default_keys().ephemeral {
                                // Keep the ephemeral default key: a new one
                                // would end every default-key token.
                                match set.with_default(keys.current().default_keys_arc()) {
                                    Ok(set) => set,
                                    Err(e) => {
                                        tracing::error!(error = %e, "key reload failed; keeping the current keys");
                                        continue;
                                    }
                                }
                            } else {
                                set
                            };
                            let default = set.default_keys();
                            tracing::info!(
                                kid = %default.signer.kid,
                                verifying = ?default.kids(),
                                tenants = ?set.tenant_names(),
                                "keys reloaded"
                            );
                            keys.replace(set);
                            tenants.replace(limits);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "key reload failed; keeping the current keys")
                        }
                    }
                }
            }));
        }
    }
    #[cfg(not(unix))]
    let _ = (keys, tenants, args, drain);
    None
}
