//! The audit trail: one event per session event, on the tracing target
//! [`TARGET`] (`tessera::audit`), so operators route it to a sink of their
//! own (with `--log-format json` every event is one JSON line; the schema
//! is docs/audit.md). `--audit=false` turns it off.
//!
//! An event carries who and what — tenant, subject, session id, the caller,
//! the client's IP address when the request gave one, the outcome — and
//! never a secret: no token, refresh secret, hash or fingerprint.

use std::sync::atomic::{AtomicBool, Ordering};

/// The tracing target of every audit event.
pub const TARGET: &str = "tessera::audit";

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turn the trail on or off (`--audit`); on by default.
pub fn configure(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// What happened (the `event` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Issue created a session.
    Issued,
    /// Refresh rotated a refresh token.
    Refreshed,
    /// A rotated token presented again within the grace window got the same successor.
    GraceReplay,
    /// A rotated token presented after the grace window: the session (its
    /// whole token family) is revoked.
    ReuseDetected,
    /// Sliding renewal minted a successor access token.
    Renewed,
    /// A token, session or subject was revoked (by Revoke, or by the session cap).
    Revoked,
    /// A token or refresh presented for another device than it is bound to.
    BindingMismatch,
    /// Issue or Refresh refused by a budget.
    RateLimited,
    /// A call refused for its caller (unauthenticated, not allowed the RPC,
    /// or acting on a tenant outside its scope: outcome `TENANT_NOT_ALLOWED`).
    CallerDenied,
    /// Exchange minted a derived token (or refused one that would widen
    /// what the subject token gives); the detail names the actor chain and
    /// the audience, never a token.
    Exchanged,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Issued => "issued",
            Kind::Refreshed => "refreshed",
            Kind::GraceReplay => "grace_replay",
            Kind::ReuseDetected => "reuse_detected",
            Kind::Renewed => "renewed",
            Kind::Revoked => "revoked",
            Kind::BindingMismatch => "binding_mismatch",
            Kind::RateLimited => "rate_limited",
            Kind::CallerDenied => "caller_denied",
            Kind::Exchanged => "exchanged",
        }
    }
}

/// One audit event. Empty fields are "not known here" (a refresh token
/// names its session, not its subject).
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub tenant: &'a str,
    pub subject: &'a str,
    pub session_id: &'a str,
    pub caller: &'a str,
    /// The caller's tenant scope where it decided or refused something:
    /// `*` for a platform-wide caller, else its tenants comma-separated
    /// (`crate::authority::scope::TenantScope::label`); "" where not recorded.
    pub caller_tenants: &'a str,
    pub client_ip: &'a str,
    /// The RPC the event came from.
    pub rpc: &'a str,
    /// What was revoked, why, and similar detail (never a secret).
    pub detail: &'a str,
}

/// Emit `kind` with `outcome` (`ok`, or what refused it).
///
/// `caller_denied` and `rate_limited`, which anyone can provoke in bulk,
/// are written for at most [`crate::refusals::LINES_PER_SECOND`] events per
/// second each ([`crate::refusals::admitted`]).
pub fn emit(kind: Kind, outcome: &str, e: &Event<'_>) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    if matches!(kind, Kind::CallerDenied | Kind::RateLimited)
        && !crate::refusals::admitted(kind.name())
    {
        return;
    }
    tracing::info!(
        target: TARGET,
        event = kind.name(),
        outcome,
        rpc = e.rpc,
        tenant = e.tenant,
        subject = e.subject,
        session_id = e.session_id,
        caller = e.caller,
        caller_tenants = e.caller_tenants,
        client_ip = e.client_ip,
        detail = e.detail,
        "audit"
    );
}
