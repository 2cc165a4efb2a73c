//! [`Policy`]: the settings the RPCs need, derived once from the
//! configuration (by the config layer), and the horizons computed from them.

use std::sync::Arc;
use std::time::Duration;

use crate::store::FeedPolicy;
use crate::telemetry;
use crate::tokens::{self, CacheBounds, VerifyPolicy};

/// Settings the RPCs need, derived once from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub max_access_ttl: Duration,
    pub max_refresh_ttl: Duration,
    pub leeway: Duration,
    pub refresh_grace: Duration,
    pub renewal: bool,
    pub renewal_warning: Duration,
    pub renewal_critical: Duration,
    pub session_lifetime: Duration,
    /// Idle timeout; `None` = each session's own refresh TTL.
    pub session_idle: Option<Duration>,
    pub watch_send_timeout: Duration,
    pub issue_rate: Option<crate::store::RateLimit>,
    pub refresh_rate: Option<crate::store::RateLimit>,
    /// Per-caller limits by RPC name (`*` = any); Issue's is `caller_issue_rate`.
    pub caller_rates: Vec<(String, crate::store::RateLimit)>,
    /// Per-caller Issue budget, counted in the same atomic step as the
    /// session is written (`None` = off).
    pub caller_issue_rate: Option<crate::store::RateLimit>,
    /// Per-caller Exchange budget, counted by the handler (`None` = off).
    pub caller_exchange_rate: Option<crate::store::RateLimit>,
    /// `--max-exchange-depth`: the most actors of an `act` chain.
    pub max_exchange_depth: usize,
    /// Bounds of the verified-token cache (`--verify-cache-size`/`-bytes`).
    pub verify_cache: CacheBounds,
    /// `--max-sessions-per-subject` (`None` = no cap).
    pub session_cap: Option<crate::store::SessionCap>,
    /// `--dpop-window`: how far a proof's `iat` may be from now.
    pub dpop_window: Duration,
    /// `--dpop-nonce`: proofs must carry a server nonce.
    pub dpop_nonce: bool,
    /// `--ext-authz-header-prefix` and `--ext-authz-strip-authorization`.
    pub ext_authz_header_prefix: String,
    pub ext_authz_strip_authorization: bool,
    /// `--redis-partitions`: which partition a new session id names.
    pub partitions: std::sync::Arc<crate::store::partition::Partitions>,
    /// `--metrics-tenants`: the tenants counted by name (empty = no
    /// per-tenant series).
    pub metrics_tenants: Arc<std::collections::BTreeSet<String>>,
    /// `--watch-raw-subjects`: subject events carry the raw subject too.
    pub watch_raw_subjects: bool,
}

impl Policy {
    /// The `tenant` label of `tenant` in the per-tenant metrics: its name
    /// when `--metrics-tenants` lists it, `other` when it lists others,
    /// `None` (count nothing) without the flag.
    pub fn tenant_label(&self, tenant: &str) -> Option<String> {
        if self.metrics_tenants.is_empty() {
            return None;
        }
        Some(if self.metrics_tenants.contains(tenant) {
            tenant.to_owned()
        } else {
            telemetry::OTHER_TENANT.to_owned()
        })
    }

    pub fn verify_policy(&self) -> VerifyPolicy {
        VerifyPolicy {
            issuer: self.issuer.clone(),
            leeway: self.leeway.as_secs() as i64,
        }
    }

    /// Until when (Unix ms) a revocation of a token whose `exp` is `exp`
    /// must be remembered: past the last instant `Verify` still accepts the
    /// token ([`tokens::refused_from_ms`]), plus one more leeway for the skew
    /// between the clocks of the replica that revoked and the one that
    /// verifies (the skew the leeway exists to tolerate).
    pub fn token_horizon_ms(&self, exp: i64) -> i64 {
        let leeway = self.leeway.as_secs() as i64;
        tokens::refused_from_ms(exp, leeway).saturating_add(leeway * 1000)
    }

    /// The longest lifetime of a token minted now, seconds: a session keeps
    /// the `access_ttl` it was issued with, but a lowered `--max-access-ttl`
    /// caps every token minted afterwards (refresh and renewal included), so
    /// none outlives the revocation horizon of [`Policy::feed`].
    pub fn access_lifetime(&self, requested_s: i64) -> i64 {
        requested_s.min(self.max_access_ttl.as_secs() as i64).max(1)
    }

    /// Lifetimes of revocation state (the remaining life of what it kills),
    /// computed once here so that both stores only persist them.
    pub fn feed(&self) -> FeedPolicy {
        // A token minted at or before now (iat = now in whole seconds, at
        // most) is refused from `token_horizon_ms(iat + max_access_ttl)`;
        // relative to now that is at most `token_horizon_ms(max_access_ttl)`.
        let access_horizon_ms = self.token_horizon_ms(self.max_access_ttl.as_secs() as i64);
        let session_horizon_ms = self.session_lifetime.as_millis() as i64;
        FeedPolicy {
            // A minute of slack so a verifier that reconnects late still
            // finds every event whose token could be alive.
            retention_ms: access_horizon_ms + 60_000,
            access_horizon_ms,
            subject_horizon_ms: session_horizon_ms.max(access_horizon_ms),
        }
    }
}
