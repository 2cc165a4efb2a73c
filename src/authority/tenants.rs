//! A tenant's own budgets (issue #28), as the tenants file (`--tenants`)
//! sets them; its issuers and keys are the key set's (`keys::Keys`). The
//! assembly reads and checks the file (`keyload::load_tenants`) and hands
//! the result down.

use std::collections::HashMap;

use crate::store::{RateLimit, SessionCap};

/// A tenant's own budgets; `None` = only the budgets every call has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantLimits {
    /// Every Issue of the tenant together, across replicas.
    pub issue_rate: Option<RateLimit>,
    /// Every Refresh of the tenant's sessions together, across replicas.
    pub refresh_rate: Option<RateLimit>,
    /// The cap on each of its subjects' sessions, instead of
    /// `--max-sessions-per-subject` (`Some(None)`: no cap).
    pub session_cap: Option<Option<SessionCap>>,
}

/// What the tenants file configures besides the keys.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    limits: HashMap<String, TenantLimits>,
}

impl Tenants {
    /// Each named tenant's budgets.
    pub fn new(limits: HashMap<String, TenantLimits>) -> Self {
        Tenants { limits }
    }

    /// The budgets of `tenant` (none configured: the default).
    pub fn limits(&self, tenant: &str) -> TenantLimits {
        self.limits.get(tenant).copied().unwrap_or_default()
    }

    /// Whether any tenant has a Refresh budget (Refresh then reads the
    /// session's tenant before it rotates).
    pub fn any_refresh_rate(&self) -> bool {
        self.limits.values().any(|l| l.refresh_rate.is_some())
    }
}

/// The store key of a tenant's budget for `rpc` (the name is hashed: any
/// bytes, no injection into key names).
pub fn budget_key(tenant: &str, rpc: &str) -> String {
    format!(
        "tenant:{}:{rpc}",
        crate::tokens::sha256_b64(tenant.as_bytes())
    )
}

/// The tenants' budgets in force, replaced whole on reload (SIGHUP).
#[derive(Debug, Default)]
pub struct TenantRing(std::sync::RwLock<std::sync::Arc<Tenants>>);

impl TenantRing {
    pub fn new(tenants: Tenants) -> Self {
        TenantRing(std::sync::RwLock::new(std::sync::Arc::new(tenants)))
    }

    pub fn current(&self) -> std::sync::Arc<Tenants> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, tenants: Tenants) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(tenants);
    }
}
