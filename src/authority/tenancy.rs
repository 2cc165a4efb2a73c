//! The tenant check of every RPC (DESIGN §10, issue #28): a caller scoped
//! to tenants (`tenants = [...]` in the callers file) acts only on their
//! subjects, tokens, sessions and refresh tokens. Every RPC — and the
//! OAuth endpoints, and any RPC added later (Exchange) — decides through
//! [`Authority::allow_tenant`], or [`Authority::allow_session`] for a
//! session it knows only by id; nothing else compares tenants.
//!
//! What a refusal may say. "Not yours" and "does not exist" look the same
//! wherever existence is itself information:
//! - A request that *names* a tenant (Issue, ListSessions, a subject
//!   revocation, a watch's `tenants`) or *presents* a token that verifies
//!   tells the caller nothing it did not know: another tenant's is refused
//!   with `TENANT_NOT_ALLOWED` before anything is read.
//! - A session id alone (Revoke by `session_id`) is refused with
//!   `TENANT_NOT_ALLOWED` unless the store keeps that session for one of
//!   the caller's tenants: an unknown id is refused exactly like another
//!   tenant's, so a scoped caller cannot probe which ids exist elsewhere.
//! - A refresh token counts as the session's only when its secret is the
//!   session's (current, or superseded and remembered): another tenant's
//!   real refresh token is `TENANT_NOT_ALLOWED` (its holder knows it
//!   exists), while a made-up secret for another tenant's session id gets
//!   the same answer as an unknown token (`REFRESH_TOKEN_INVALID` from
//!   Refresh, an empty success from Revoke).
//!
//! In every case the check comes first: nothing of the other tenant's
//! state changes (no rotation, no reuse detection, no renewal, no event).

use super::Authority;
use crate::authority::scope::TenantScope;
use crate::error::Error;
use crate::store::Store;
use tessera_core::wire::Rpc;

/// Who acts, and on what when it is known, for the audit event of a
/// refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acting<'a> {
    /// The RPC (or `Check`, `Verify` for introspection, `Revoke` for the
    /// OAuth revocation endpoint).
    pub rpc: Rpc,
    /// The caller's name.
    pub caller: &'a str,
    /// The caller's scope.
    pub scope: &'a TenantScope,
    /// The subject and session the call was about, where known.
    pub subject: &'a str,
    pub session_id: &'a str,
}

impl<'a> Acting<'a> {
    /// `caller` of `scope` calling `rpc`.
    pub fn new(rpc: Rpc, caller: &'a str, scope: &'a TenantScope) -> Self {
        Acting {
            rpc,
            caller,
            scope,
            subject: "",
            session_id: "",
        }
    }
}

/// What the store says about a session a scoped caller named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// One of the caller's tenants (or the caller is platform-wide, and
    /// nothing was read).
    Allowed,
    /// The store keeps no such session (or the refresh secret is not
    /// one of its): the RPC answers as for an unknown one.
    Unknown,
}

impl<S: Store> Authority<S> {
    /// The one tenant check: `Ok` when `who` may act on `tenant`.
    /// Otherwise the refusal is counted
    /// (`tessera_calls_refused_total{reason="TENANT_NOT_ALLOWED"}`, and
    /// per tenant for `--metrics-tenants`), written to the audit trail as
    /// `caller_denied` with the caller's scope, and returned as
    /// `PERMISSION_DENIED`/`TENANT_NOT_ALLOWED`.
    pub(crate) fn allow_tenant(&self, who: &Acting<'_>, tenant: &str) -> Result<(), Error> {
        if who.scope.allows(tenant) {
            Ok(())
        } else {
            Err(self.refuse(who, tenant))
        }
    }

    /// The refusal of [`Self::allow_tenant`], counted and audited; also
    /// for a session the store does not know (`tenant` "": unknown), which
    /// a scoped caller may not touch either.
    pub(crate) fn refuse(&self, who: &Acting<'_>, tenant: &str) -> Error {
        self.count_tenant(tenant, "denied");
        let error = Error::TenantNotAllowed;
        let refusal = crate::audit::Event {
            rpc: who.rpc.as_str(),
            caller: who.caller,
            caller_tenants: &who.scope.label(),
            tenant,
            subject: who.subject,
            session_id: who.session_id,
            ..Default::default()
        };
        crate::refusals::refused(error.reason(), &refusal);
        error
    }

    /// [`Self::allow_tenant`] for a session known by its id `sid` (and,
    /// with `refresh_hash`, a refresh secret that must be its own): its
    /// tenant is read from the store only for a scoped caller. `Unknown`
    /// when the store keeps no such session; the caller decides what
    /// that answers (see the module docs).
    pub(crate) async fn allow_session(
        &self,
        who: &Acting<'_>,
        sid: &str,
        refresh_hash: Option<&str>,
    ) -> Result<Owner, Error> {
        if who.scope.is_all() {
            return Ok(Owner::Allowed);
        }
        let now_ms = crate::clock::now_ms();
        match self.store.session_tenant(sid, refresh_hash, now_ms).await? {
            Some(tenant) => {
                let who = Acting {
                    session_id: sid,
                    ..*who
                };
                self.allow_tenant(&who, &tenant).map(|()| Owner::Allowed)
            }
            None => Ok(Owner::Unknown),
        }
    }

    /// Count `event` (`issued`, `refreshed`, `verified`, `denied`) in
    /// `tessera_tenant_events_total{tenant, event}` when `--metrics-tenants`
    /// is given: the listed tenants by name, every other as `other`, so
    /// the series stay as few as the operator chose.
    pub(crate) fn count_tenant(&self, tenant: &str, event: &'static str) {
        if let Some(label) = self.policy.tenant_label(tenant) {
            metrics::counter!(crate::telemetry::TENANT_EVENTS, "tenant" => label, "event" => event)
                .increment(1);
        }
    }
}

impl<S: Store> Authority<S> {
    /// Spend one call of `tenant`'s own budget for `rpc` (`--tenants`),
    /// before anything else is counted or written, so a tenant over its
    /// budget spends nobody else's (a caller's, a subject's).
    pub(crate) async fn charge_tenant(
        &self,
        tenant: &str,
        rpc: Rpc,
        limit: Option<crate::store::RateLimit>,
        (caller, scope): (&str, &TenantScope),
    ) -> Result<(), Error> {
        let Some(limit) = limit else {
            return Ok(());
        };
        let event = crate::audit::Event {
            tenant,
            caller,
            caller_tenants: &scope.label(),
            rpc: rpc.as_str(),
            detail: "per-tenant budget",
            ..Default::default()
        };
        let key = crate::authority::tenants::budget_key(tenant, rpc.as_str());
        crate::authority::caller::spend(self.store.as_ref(), &key, limit, &event).await
    }
}
