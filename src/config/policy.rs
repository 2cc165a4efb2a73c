//! The authority's [`Policy`], built from the configuration: the one
//! place where flags become the values the authority works with.

use std::sync::Arc;

use tessera_core::wire::Rpc;

use super::{CallerRate, RateSpec, ServeArgs, SessionCapPolicy, DEFAULT_CALLER_ISSUE_RATE};
use crate::authority::Policy;
use crate::tokens::CacheBounds;

impl ServeArgs {
    /// The authority's [`Policy`], built here so that the clap struct
    /// stays in the assembly layer.
    pub fn policy(&self) -> Policy {
        let a = self;
        Policy {
            issuer: a.issuer.clone(),
            access_ttl: a.access_ttl.0,
            refresh_ttl: a.refresh_ttl.0,
            // A default above the cap raises the cap: the operator asked for it.
            max_access_ttl: a.max_access_ttl.0.max(a.access_ttl.0),
            max_refresh_ttl: a.max_refresh_ttl.0.max(a.refresh_ttl.0),
            leeway: a.leeway.0,
            refresh_grace: a.refresh_grace.0,
            renewal: a.renewal,
            renewal_warning: a.renewal_warning.0,
            renewal_critical: a.renewal_critical.0,
            session_lifetime: a.session_lifetime.0,
            session_idle: a.session_idle.map(|d| d.0),
            watch_send_timeout: a.watch_send_timeout.0,
            issue_rate: a.issue_rate.limit(),
            refresh_rate: a.refresh_rate.limit(),
            caller_rates: a
                .caller_rate
                .iter()
                .filter_map(|c| c.rate.limit().map(|l| (c.rpc.clone(), l)))
                .collect(),
            caller_issue_rate: minting_budget(&a.caller_rate, Rpc::Issue),
            caller_exchange_rate: minting_budget(&a.caller_rate, Rpc::Exchange),
            max_exchange_depth: a.max_exchange_depth as usize,
            verify_cache: CacheBounds {
                max_entries: a.verify_cache_size,
                max_bytes: a.verify_cache_bytes,
            },
            dpop_window: a.dpop_window.0,
            dpop_nonce: a.dpop_nonce,
            ext_authz_header_prefix: a.ext_authz_header_prefix.clone(),
            ext_authz_strip_authorization: a.ext_authz_strip_authorization,
            partitions: std::sync::Arc::new(
                crate::store::partition::Partitions::new(a.redis_partitions).unwrap_or_else(|_| {
                    crate::store::partition::Partitions::new(
                        crate::store::partition::DEFAULT_PARTITIONS,
                    )
                    .expect("the default partition count is valid")
                }),
            ),
            watch_raw_subjects: a.watch_raw_subjects,
            metrics_tenants: Arc::new(
                a.metrics_tenants
                    .iter()
                    .filter(|t| !t.is_empty())
                    .cloned()
                    .collect(),
            ),
            session_cap: (a.max_sessions_per_subject > 0).then_some(crate::store::SessionCap {
                max: a.max_sessions_per_subject,
                evict_oldest: a.session_cap_policy == SessionCapPolicy::EvictOldest,
            }),
        }
    }
}

/// The caller budget of an RPC that mints tokens (Issue, Exchange): the
/// `--caller-rate` entry for it, else the default one.
fn minting_budget(rates: &[CallerRate], rpc: Rpc) -> Option<crate::store::RateLimit> {
    caller_rate_for(rates, rpc).map_or_else(
        || {
            DEFAULT_CALLER_ISSUE_RATE
                .parse::<RateSpec>()
                .ok()
                .and_then(|r| r.limit())
        },
        |r| r.limit(),
    )
}

/// The `--caller-rate` entry that applies to `rpc`: its own, else `*`.
fn caller_rate_for(rates: &[CallerRate], rpc: Rpc) -> Option<RateSpec> {
    rates
        .iter()
        .find(|c| c.rpc == rpc.as_str())
        .or_else(|| rates.iter().find(|c| c.rpc == "*"))
        .map(|c| c.rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_has_a_caller_budget_unless_lifted() {
        let policy = |flags: &[&str]| {
            let args =
                ServeArgs::parse_with_file(flags.iter().map(|f| f.to_string()).collect()).unwrap();
            args.policy().caller_issue_rate
        };
        assert_eq!(policy(&[]), crate::store::RateLimit::new(1000, 2000));
        assert_eq!(
            policy(&["--caller-rate=Issue=5:10"]),
            crate::store::RateLimit::new(5, 10)
        );
        assert_eq!(
            policy(&["--caller-rate=*=7:7"]),
            crate::store::RateLimit::new(7, 7)
        );
        assert_eq!(policy(&["--caller-rate=Issue=off"]), None);
        assert_eq!(
            policy(&["--caller-rate=Verify=1:1"]),
            crate::store::RateLimit::new(1000, 2000)
        );
    }
}
