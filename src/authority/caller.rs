//! Who calls, as values the transport hands down: the caller's name and
//! the audiences it may ask Exchange for (request extensions the transport
//! layer inserts after authenticating the call, read here), and the
//! per-caller budgets the authority and the transport both spend.

use std::sync::Arc;

use tessera_core::wire::Rpc;

use crate::error::Error;

/// The authorized caller of a request (request extension), for per-caller
/// rate limits and logs. `anonymous` when no callers are configured.
#[derive(Debug, Clone)]
pub struct CallerName(pub String);

/// The name of the authorized caller of a request (`anonymous` without callers).
pub fn caller_name(extensions: &http::Extensions) -> &str {
    extensions
        .get::<CallerName>()
        .map_or("anonymous", |c| c.0.as_str())
}

/// The audiences a caller may ask Exchange for: any in anonymous mode (no
/// callers file: every RPC is open anyway), else its `exchange_audiences`.
#[derive(Debug, Clone)]
pub enum ExchangeAudiences {
    Any,
    Only(Arc<[String]>),
}

impl ExchangeAudiences {
    pub fn allows(&self, audience: &str) -> bool {
        match self {
            ExchangeAudiences::Any => true,
            ExchangeAudiences::Only(list) => list.iter().any(|a| a == audience),
        }
    }
}

/// The store key of a caller's budget for `rpc` (the name is hashed: any
/// bytes, no injection into key names).
pub fn budget_key(caller: &str, rpc: Rpc) -> String {
    format!(
        "caller:{}:{rpc}",
        crate::tokens::sha256_b64(caller.as_bytes())
    )
}

/// Spend one call of `caller`'s budget for `rpc`: `RateLimited` when it is
/// spent (audited with the caller's tenant scope, its
/// `TenantScope::label`), a store error when the store cannot count.
pub async fn charge<S: crate::store::Store>(
    store: &S,
    limit: crate::store::RateLimit,
    (caller, caller_tenants): (&str, &str),
    rpc: Rpc,
) -> Result<(), Error> {
    let event = crate::audit::Event {
        caller,
        caller_tenants,
        rpc: rpc.as_str(),
        detail: "per-caller budget",
        ..Default::default()
    };
    spend(store, &budget_key(caller, rpc), limit, &event).await
}

/// Spend one event of the budget under `key`: `RateLimited` when it is
/// spent (audited as `refused`), a store error when the store cannot count.
/// Per-caller and per-tenant budgets (`--tenants`) both count here.
pub async fn spend<S: crate::store::Store>(
    store: &S,
    key: &str,
    limit: crate::store::RateLimit,
    refused: &crate::audit::Event<'_>,
) -> Result<(), Error> {
    let now_ms = crate::clock::now_ms();
    match store.rate_limit(key, limit, now_ms).await? {
        None => Ok(()),
        Some(ms) => {
            crate::audit::emit(crate::audit::Kind::RateLimited, "refused", refused);
            Err(Error::RateLimited {
                retry_after: std::time::Duration::from_millis(ms.max(1) as u64),
            })
        }
    }
}
