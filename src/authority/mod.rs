//! The authority layer: the `tessera.v1.TokenAuthority` RPCs, generic
//! over the [`Store`]. Below the transport (which calls it, and holds the
//! tonic service glue: `transport::grpc`), above the feed and the store
//! (which it calls).
//!
//! One file per RPC group; each turns its request into a domain value in one
//! validating function (proto types stay at the edge), then works on domain
//! types only. Shared by the RPCs: `policy` (settings), `mint` (claims and
//! signing), `dpop` (proofs and nonces), `tenancy` (the tenant check),
//! `validate` (field limits, `Violations`).

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::Error;
use crate::feed::Feed;
use crate::keys::KeyRing;
use crate::pb;
use crate::store::Store;
use crate::tokens::TokenVerifier;

pub mod caller;
pub mod convert;
mod dpop;
mod exchange;
mod ext_authz;
mod issue;
mod mint;
mod policy;
mod refresh;
mod revoke;
pub mod scope;
mod secrets;
mod sessions;
mod tenancy;
pub mod tenants;
mod validate;
mod verify;
mod watch_feed;

pub(crate) use crate::authority::convert::{timestamp_ms, timestamp_s};
pub(crate) use mint::token_pair;
pub use policy::Policy;
pub use secrets::random_b64;
pub(crate) use secrets::{derive_jti, RefreshToken};
pub(crate) use tenancy::Acting;
pub(crate) use validate::Violations;
pub use validate::{is_hidden_char, MAX_NAME_BYTES};
pub(crate) use watch_feed::WatchStream;

/// The token authority: keys, store, feed and policy.
pub struct Authority<S: Store> {
    pub(crate) store: Arc<S>,
    pub(crate) keys: Arc<KeyRing>,
    /// The tenants' own budgets (`--tenants`).
    pub(crate) tenants: Arc<crate::authority::tenants::TenantRing>,
    pub(crate) feed: Arc<Feed>,
    pub(crate) policy: Policy,
    pub(crate) verifier: TokenVerifier,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The DPoP nonces of the current and previous windows, with the window.
    nonces: std::sync::Mutex<Option<(i64, String, String)>>,
}

impl<S: Store> Authority<S> {
    pub fn new(
        store: Arc<S>,
        keys: Arc<KeyRing>,
        tenants: Arc<crate::authority::tenants::TenantRing>,
        feed: Arc<Feed>,
        policy: Policy,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let verifier = TokenVerifier::with_cache(policy.verify_policy(), policy.verify_cache);
        Authority {
            store,
            keys,
            tenants,
            feed,
            policy,
            verifier,
            shutdown,
            nonces: std::sync::Mutex::new(None),
        }
    }
}

/// Whether `name` is a tenant name Issue accepts (the `/t/{tenant}/...`
/// paths answer 404 for any other).
pub(crate) fn tenant_name_ok(name: &str) -> bool {
    let mut v = Violations::default();
    v.name("tenant", name, true);
    v.finish().is_ok()
}

pub(crate) use tessera_core::checks::fingerprint_hash;

/// Validate an `IssueRequest` as the server does (for fuzzing and clients).
pub fn check_issue_request(r: pb::IssueRequest) -> Result<(), Error> {
    issue::IssueInput::try_from(r).map(|_| ())
}

/// Validate a `VerifyRequest` as the server does (for fuzzing and clients).
pub fn check_verify_request(r: pb::VerifyRequest) -> Result<(), Error> {
    verify::VerifyInput::try_from(r).map(|_| ())
}
