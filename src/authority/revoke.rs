//! `Revoke`: one token, one session, or every session of a subject.
//!
//! RFC 7009 §2.2: revoking an unknown, expired, malformed or already revoked
//! token succeeds, so a client can always call it on logout and a caller
//! learns nothing about which tokens exist. Such calls return an empty cursor.
//!
//! Subject revocation is at millisecond precision against sessions and at
//! second precision against access tokens (`iat` is whole seconds): an access
//! token issued in the same second as a "log out everywhere", even just after
//! it, is treated as revoked. The refresh path is exact.

use std::time::Duration;
use tessera_core::wire::Rpc;

use tracing::instrument;

use super::tenancy::{Acting, Owner};
use super::validate::Violations;
use super::{Authority, RefreshToken};
use crate::error::Error;
use crate::pb;
use crate::store::{RevokeRequest, RevokeTarget, Store};
use crate::tokens::MAX_TOKEN_BYTES;

/// Longest accepted revocation reason (bytes).
pub const MAX_REASON_BYTES: usize = 256;

/// How long Revoke waits for this replica's cache to apply its own event.
/// Normally a millisecond; if the feed is slower, Verify on this replica
/// still fails closed once the cache notices it is behind.
const OWN_WRITE_WAIT: Duration = Duration::from_millis(250);

impl<S: Store> Authority<S> {
    /// After a revocation, wait until this replica's cache has it, so that a
    /// default `Verify` here right after `Revoke` returns sees it.
    pub(crate) async fn read_own_write(&self, cursor: &str) {
        if !cursor.is_empty()
            && self.feed.in_sync()
            && !self.feed.wait_applied(cursor, OWN_WRITE_WAIT).await
        {
            tracing::warn!(revocation.cursor = %cursor, "revocation cache is slow to apply a local revocation");
        }
    }

    /// Turn the request into a store target; `None` = nothing to revoke.
    fn revoke_target(&self, request: pb::RevokeRequest) -> Result<Option<RevokeTarget>, Error> {
        use pb::revoke_request::Target;
        let mut v = Violations::default();
        v.max_len("reason", &request.reason, MAX_REASON_BYTES);
        if request.reason.chars().any(super::validate::is_hidden_char) {
            // It goes to the audit log: no line breaks, escapes or bidi tricks in it.
            v.add(
                "reason",
                "must not contain control or invisible format characters",
            );
        }
        let keep = request.keep_session_id;
        if !keep.is_empty() {
            if matches!(request.target, Some(Target::Subject(_))) {
                v.name("keep_session_id", &keep, false);
            } else {
                v.add("keep_session_id", "only with a subject target");
            }
        }
        let target = match request.target {
            None => {
                v.add("target", "one of token, session_id or subject is required");
                None
            }
            Some(Target::Token(token)) => {
                if token.is_empty() {
                    v.add("token", "must not be empty");
                }
                v.max_len("token", &token, MAX_TOKEN_BYTES);
                Some(Target::Token(token))
            }
            Some(Target::SessionId(sid)) => {
                v.name("session_id", &sid, true);
                Some(Target::SessionId(sid))
            }
            Some(Target::Subject(subject)) => {
                v.name("subject.subject", &subject.subject, true);
                v.name("subject.tenant", &subject.tenant, false);
                Some(Target::Subject(subject))
            }
        };
        v.finish()?;
        Ok(match target {
            None => None,
            Some(Target::Token(token)) => self.token_target(&token),
            Some(Target::SessionId(sid)) => Some(RevokeTarget::Session {
                sid,
                refresh_hash: None,
            }),
            Some(Target::Subject(s)) if !keep.is_empty() => Some(RevokeTarget::SubjectExcept {
                tenant: s.tenant,
                subject: s.subject,
                keep_sid: keep,
            }),
            Some(Target::Subject(s)) => Some(RevokeTarget::Subject {
                tenant: s.tenant,
                subject: s.subject,
            }),
        })
    }

    /// An access token revokes its `jti`; a refresh token revokes its session,
    /// but only if the secret is really that session's.
    fn token_target(&self, token: &str) -> Option<RevokeTarget> {
        if let Some(refresh) = RefreshToken::parse(token) {
            return Some(RevokeTarget::Session {
                refresh_hash: Some(refresh.hash()),
                sid: refresh.sid,
            });
        }
        let now = crate::clock::now_ms().div_euclid(1000);
        // Only tokens we signed and that are still alive need a marker.
        let claims = self
            .verifier
            .verify(self.keys.current().as_ref(), token, now)
            .ok()?;
        Some(RevokeTarget::Token {
            exp_ms: self.policy.token_horizon_ms(claims.exp),
            jti: claims.jti.clone(),
            sid: claims.sid.clone(),
            tenant: claims.tid.clone(),
            subject: claims.sub.clone(),
        })
    }

    /// The tenant check of a revocation (`service::tenancy`), before
    /// anything is written: `false` when the target is a refresh token
    /// whose secret is not its session's (nothing to revoke, as for an
    /// unscoped caller). A session id the store does not keep for one of
    /// the caller's tenants is refused like another tenant's.
    async fn allow_target(&self, who: &Acting<'_>, target: &RevokeTarget) -> Result<bool, Error> {
        match target {
            RevokeTarget::Token {
                tenant,
                subject,
                sid,
                ..
            } => {
                let who = Acting {
                    subject,
                    session_id: sid,
                    ..*who
                };
                self.allow_tenant(&who, tenant).map(|()| true)
            }
            RevokeTarget::Subject { tenant, subject }
            | RevokeTarget::SubjectExcept {
                tenant, subject, ..
            } => {
                let who = Acting { subject, ..*who };
                self.allow_tenant(&who, tenant).map(|()| true)
            }
            RevokeTarget::Session { sid, refresh_hash } => {
                match self
                    .allow_session(who, sid, refresh_hash.as_deref())
                    .await?
                {
                    Owner::Allowed => Ok(true),
                    Owner::Unknown if refresh_hash.is_some() => Ok(false),
                    Owner::Unknown => {
                        let who = Acting {
                            session_id: sid,
                            ..*who
                        };
                        Err(self.refuse(&who, ""))
                    }
                }
            }
        }
    }

    #[instrument(level = "debug", skip_all, fields(kind = tracing::field::Empty))]
    pub(crate) async fn revoke(
        &self,
        request: pb::RevokeRequest,
        who: &Acting<'_>,
    ) -> Result<pb::RevokeResponse, Error> {
        let caller = who.caller;
        let reason = request.reason.clone();
        let nothing = || pb::RevokeResponse {
            cursor: String::new(),
        };
        let Some(target) = self.revoke_target(request)? else {
            return Ok(nothing());
        };
        if !self.allow_target(who, &target).await? {
            return Ok(nothing());
        }
        // (kind, tenant, subject, session) for metrics and the audit trail.
        let (kind, tenant, subject, session) = match &target {
            RevokeTarget::Token {
                tenant,
                subject,
                sid,
                ..
            } => ("token", tenant.clone(), subject.clone(), sid.clone()),
            RevokeTarget::Session { sid, .. } => {
                ("session", String::new(), String::new(), sid.clone())
            }
            RevokeTarget::Subject { tenant, subject } => {
                ("subject", tenant.clone(), subject.clone(), String::new())
            }
            RevokeTarget::SubjectExcept {
                tenant,
                subject,
                keep_sid,
            } => (
                "other_sessions",
                tenant.clone(),
                subject.clone(),
                keep_sid.clone(),
            ),
        };
        tracing::Span::current().record("kind", kind);
        let request = RevokeRequest {
            target,
            now_ms: crate::clock::now_ms(),
            feed: self.policy.feed(),
            traceparent: crate::trace::current_traceparent().unwrap_or_default(),
        };
        let cursor = self.store.revoke(&request).await?.unwrap_or_default();
        if !cursor.is_empty() {
            metrics::counter!(crate::telemetry::REVOCATIONS, "kind" => kind).increment(1);
        }
        self.read_own_write(&cursor).await;
        tracing::info!(revocation.cursor = %cursor, reason = %reason, "revoked");
        let detail = format!("{kind}; reason: {reason}");
        let caller_tenants = who.scope.label();
        let event = crate::audit::Event {
            tenant: &tenant,
            subject: &subject,
            session_id: &session,
            caller,
            caller_tenants: &caller_tenants,
            rpc: Rpc::Revoke.as_str(),
            detail: &detail,
            ..Default::default()
        };
        let outcome = if cursor.is_empty() { "nothing" } else { "ok" };
        crate::audit::emit(crate::audit::Kind::Revoked, outcome, &event);
        Ok(pb::RevokeResponse {
            cursor: self.cursor_after(&cursor).await?,
        })
    }
}
