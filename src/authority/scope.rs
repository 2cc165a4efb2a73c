//! Which tenants a caller may act on (DESIGN §10, issue #28): the callers
//! file's `tenants = ["acme", …]`. A caller without `tenants` (and every
//! call in anonymous mode) is platform-wide: it reaches every tenant.
//!
//! The scope travels with each gRPC request as an extension, put there by
//! the authorization layer ([`crate::transport::callers::AuthLayer`]) beside the
//! caller's name; the RPCs decide with it through the one check of
//! `service::tenancy`.

use std::collections::BTreeSet;
use std::sync::Arc;

/// The tenants a caller may act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant: a platform-wide caller (no `tenants` in its entry).
    #[default]
    All,
    /// Only these (never empty: the callers file refuses `tenants = []`).
    Only(Arc<BTreeSet<String>>),
}

impl TenantScope {
    /// A scope of exactly `tenants`.
    pub fn only<I: IntoIterator<Item = String>>(tenants: I) -> Self {
        TenantScope::Only(Arc::new(tenants.into_iter().collect()))
    }

    /// May a caller of this scope act on `tenant`? (`""`, the tenant of
    /// sessions issued without one, is a tenant like any other here.)
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(set) => set.contains(tenant),
        }
    }

    /// Is this a platform-wide scope?
    pub fn is_all(&self) -> bool {
        matches!(self, TenantScope::All)
    }

    /// The scope as the audit trail writes it: `*` for every tenant, else
    /// the tenants, comma-separated, in order. (No allocation for a
    /// platform-wide caller: Verify labels every refusal it audits.)
    pub fn label(&self) -> std::borrow::Cow<'static, str> {
        match self {
            TenantScope::All => "*".into(),
            TenantScope::Only(set) => set.iter().cloned().collect::<Vec<_>>().join(",").into(),
        }
    }

    /// The scope of a stream that asked for `wanted` (empty = no narrowing):
    /// `Err(tenant)` names the first wanted tenant outside this scope.
    pub fn narrow(&self, wanted: &[String]) -> Result<TenantScope, String> {
        if wanted.is_empty() {
            return Ok(self.clone());
        }
        if let Some(outside) = wanted.iter().find(|t| !self.allows(t)) {
            return Err(outside.clone());
        }
        Ok(TenantScope::only(wanted.iter().cloned()))
    }
}

/// The scope of a request's caller: the extension the authorization layer
/// put there; platform-wide when there is none (anonymous mode).
pub fn of(extensions: &http::Extensions) -> TenantScope {
    extensions.get::<TenantScope>().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_allow_their_tenants_and_narrow_within_them() {
        let all = TenantScope::All;
        let acme = TenantScope::only(["acme".to_owned(), "initech".to_owned()]);
        assert!(all.allows("globex") && all.allows(""));
        assert!(acme.allows("acme") && !acme.allows("globex") && !acme.allows(""));
        assert_eq!(acme.label(), "acme,initech");
        assert_eq!(all.label(), "*");
        assert!(matches!(all.label(), std::borrow::Cow::Borrowed(_)));
        assert_eq!(acme.narrow(&[]), Ok(acme.clone()));
        assert_eq!(
            acme.narrow(&["acme".to_owned()]),
            Ok(TenantScope::only(["acme".to_owned()]))
        );
        assert_eq!(
            acme.narrow(&["acme".to_owned(), "globex".to_owned()]),
            Err("globex".to_owned())
        );
        assert_eq!(
            all.narrow(&["globex".to_owned()]),
            Ok(TenantScope::only(["globex".to_owned()]))
        );
    }
}
