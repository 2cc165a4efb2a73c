//! The keys the configuration names: loaded at start, re-read on SIGHUP.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{self, ServeArgs};
use crate::keys::{self, KeyRing, KeySet};

/// Load the signing keys the configuration names, or make an ephemeral one.
pub fn load_keys(args: &ServeArgs) -> Result<KeySet, keys::KeyError> {
    match &args.signing_key {
        Some(path) => {
            let active = KeySet::load(path, args.signing_alg)?;
            // HS256 only when explicitly configured: then a verify key that
            // is not PEM is the previous (or next) HS256 secret.
            let hs256 = args.signing_alg == Some(config::KeyAlg::Hs256);
            let older = args
                .verify_key
                .iter()
                .map(|p| KeySet::load_verifying(p, hs256))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(active.with_older(older))
        }
        None => {
            if args.signing_alg == Some(config::KeyAlg::Hs256) {
                return Err(keys::KeyError::ShortSecret("(no --signing-key)".into()));
            }
            KeySet::ephemeral()
        }
    }
}

/// On SIGHUP re-read every key file; a file that fails keeps the set in
/// force (logged). Ends when `drain` fires.
pub(crate) fn reload_on_sighup(
    keys: Arc<KeyRing>,
    args: ServeArgs,
    mut drain: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    {
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = hup.recv() => {}
                        _ = drain.changed() => return,
                    }
                    match load_keys(&args) {
                        Ok(set) if !set.ephemeral => {
                            tracing::info!(kid = %set.signer.kid, verifying = ?set.kids(), "keys reloaded");
                            keys.replace(set);
                        }
                        Ok(_) => tracing::warn!(
                            "SIGHUP ignored: no --signing-key to reload (ephemeral key kept)"
                        ),
                        Err(e) => {
                            tracing::error!(error = %e, "key reload failed; keeping the current keys")
                        }
                    }
                }
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (keys, args, drain);
}
