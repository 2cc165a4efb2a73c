//! `Exchange`: RFC 8693 token exchange. A subject token (a user's access
//! token, or an exchanged one for a chain) becomes a narrower access token
//! for another audience that names the actor in `act`.
//!
//! Narrow only: the scopes are a subset of the subject token's, the
//! audience one the caller may request (`exchange_audiences`), the lifetime
//! within the subject token's own and `--max-access-ttl`; anything wider is
//! `EXCHANGE_NOT_ALLOWED` and mints nothing.
//!
//! The derived token keeps the subject token's `sub`, `tid` and `sid`, so
//! every revocation that covers the parent — its session, its subject —
//! covers the derived token with no new store state: Verify, the feed and
//! every local verifier already check `sid` and the subject's cut-off.
//! Revoking the derived token by `jti` touches only its own `jti`.
//!
//! It is not sender-constrained, whatever the subject token was: the
//! actor, not the user's client, presents it downstream, and holds neither
//! the user's DPoP key nor certificate. Exchanging a bound subject token
//! needs its proof (docs/security.md, "Token exchange").

use std::sync::Arc;
use tessera_core::wire::Rpc;

use tracing::instrument;

use super::tenancy::Acting;
use super::validate::{Violations, MAX_FINGERPRINT_BYTES};
use super::verify::Presented;
use super::{timestamp_s, Authority};
use crate::authority::caller::ExchangeAudiences;
use crate::authority::scope::TenantScope;
use crate::error::{Error, ExchangeRefusal, TokenError};
use crate::pb;
use crate::store::Store;
use crate::tokens::{AccessClaims, Actor, Verified, MAX_TOKEN_BYTES};

/// The DPoP replay set of the proofs Exchange accepts (see [`Presented`]).
const EXCHANGE_REPLAY_SCOPE: &str = "exchange";

/// A validated Exchange request.
pub(crate) struct ExchangeInput {
    pub subject_token: String,
    pub actor_token: String,
    pub audience: Vec<String>,
    pub scopes: Vec<String>,
    /// `None` = the default lifetime.
    pub ttl_seconds: Option<i64>,
    pub fingerprint: String,
    pub cert_thumbprint: String,
    pub dpop_proof: String,
    pub http_method: String,
    pub http_url: String,
}

impl TryFrom<pb::ExchangeRequest> for ExchangeInput {
    type Error = Error;
    fn try_from(r: pb::ExchangeRequest) -> Result<Self, Error> {
        let mut v = Violations::default();
        if r.subject_token.is_empty() {
            v.add("subject_token", "must not be empty");
        }
        v.max_len("subject_token", &r.subject_token, MAX_TOKEN_BYTES);
        v.max_len("actor_token", &r.actor_token, MAX_TOKEN_BYTES);
        if r.audience.is_empty() {
            v.add("audience", "at least one audience is required");
        }
        v.list("audience", &r.audience, false);
        v.list("scopes", &r.scopes, true);
        if r.ttl_seconds < 0 {
            v.add("ttl_seconds", "must not be negative");
        }
        v.max_len(
            "device_fingerprint",
            &r.device_fingerprint,
            MAX_FINGERPRINT_BYTES,
        );
        v.thumbprint("cert_thumbprint", &r.cert_thumbprint);
        v.dpop(&r.dpop_proof, &r.http_method, &r.http_url);
        v.finish()?;
        Ok(ExchangeInput {
            subject_token: r.subject_token,
            actor_token: r.actor_token,
            audience: r.audience,
            scopes: r.scopes,
            ttl_seconds: (r.ttl_seconds > 0).then_some(r.ttl_seconds),
            fingerprint: r.device_fingerprint,
            cert_thumbprint: r.cert_thumbprint,
            dpop_proof: r.dpop_proof,
            http_method: r.http_method,
            http_url: r.http_url,
        })
    }
}

/// Who an exchange is for and who acts: the verified subject token and
/// the `act` claim of the new token.
pub(crate) struct Parties {
    pub subject: Arc<Verified>,
    pub act: Actor,
}

/// The audit event of an exchange of `subject`'s token by `caller`.
fn exchange_event<'a>(
    subject: &'a Verified,
    caller: &'a str,
    detail: &'a str,
) -> crate::audit::Event<'a> {
    crate::audit::Event {
        tenant: &subject.tid,
        subject: &subject.sub,
        session_id: &subject.sid,
        caller,
        rpc: Rpc::Exchange.as_str(),
        detail,
        ..Default::default()
    }
}

/// Audit an exchange refused for asking more than it may (the refusal is
/// the detail; it names no token).
fn audit_refusal(subject: &Verified, caller: &str, e: &Error) {
    if matches!(e, Error::ExchangeNotAllowed { .. }) {
        let detail = e.to_string();
        let event = exchange_event(subject, caller, &detail);
        crate::audit::emit(crate::audit::Kind::Exchanged, "refused", &event);
    }
}

/// An exchange done: the answer and the claims it minted.
pub(crate) struct Exchanged {
    pub response: pb::ExchangeResponse,
    pub claims: AccessClaims,
}

impl<S: Store> Authority<S> {
    /// `caller`: the caller's name (its budget, the actor when no actor
    /// token is given, the audit trail); `audiences`: what it may request;
    /// `peer_thumbprint`: the mTLS certificate's thumbprint, for a
    /// certificate-bound subject token when the request names none.
    #[instrument(level = "debug", skip_all, fields(session.id = tracing::field::Empty))]
    pub(crate) async fn exchange(
        &self,
        request: pb::ExchangeRequest,
        (caller, scope): (&str, &TenantScope),
        audiences: &ExchangeAudiences,
        peer_thumbprint: impl FnOnce() -> Option<String> + Send,
    ) -> Result<Exchanged, Error> {
        let input = ExchangeInput::try_from(request)?;
        // Counted first, as Issue's: a refused exchange still counts.
        if let Some(limit) = self.policy.caller_exchange_rate {
            let charged = (caller, scope.label());
            crate::authority::caller::charge(
                self.store.as_ref(),
                limit,
                (charged.0, &charged.1),
                Rpc::Exchange,
            )
            .await?;
        }
        let now_ms = crate::clock::now_ms();
        let parties = self
            .exchange_parties(&input, (caller, scope), peer_thumbprint, now_ms)
            .await?;
        let subject = &parties.subject;
        tracing::Span::current().record("session.id", subject.sid.as_str());
        let mut claims = self
            .narrowed(&parties, &input, audiences, now_ms)
            .inspect_err(|e| audit_refusal(subject, caller, e))?;
        // The tenant's own issuer and key (`--tenants`), as Issue's.
        let access_token = self.mint_claims(&mut claims)?;
        if access_token.len() > MAX_TOKEN_BYTES {
            return Err(Error::invalid(
                "subject_token",
                format!("the exchanged token would be over {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        let detail = serde_json::json!({
            "actors": parties.act.chain(),
            "audience": claims.aud,
        })
        .to_string();
        crate::audit::emit(
            crate::audit::Kind::Exchanged,
            "ok",
            &exchange_event(subject, caller, &detail),
        );
        let now = now_ms.div_euclid(1000);
        Ok(Exchanged {
            response: pb::ExchangeResponse {
                access_token,
                expires_at: Some(timestamp_s(claims.exp)),
                issued_token_type: tessera_core::wire::ACCESS_TOKEN_TYPE.to_owned(),
                expires_in: (claims.exp - now).max(0),
                scopes: claims.scopes().map(str::to_owned).collect(),
            },
            claims,
        })
    }

    /// The subject token and the actor, each checked as a strong Verify
    /// checks it (signature, type, issuer, validity window, bindings,
    /// revocation in the store): a refused token answers its own reason.
    /// The one place where the parties of an exchange are checked, so a
    /// rule about them (a caller's tenants) goes here.
    async fn exchange_parties(
        &self,
        input: &ExchangeInput,
        (caller, scope): (&str, &TenantScope),
        peer_thumbprint: impl FnOnce() -> Option<String> + Send,
        now_ms: i64,
    ) -> Result<Parties, Error> {
        let now = now_ms.div_euclid(1000);
        let keys = self.keys.current();
        let subject = self
            .verifier
            .verify(keys.as_ref(), &input.subject_token, now)?;
        // A caller scoped to tenants exchanges only its tenants' tokens,
        // checked before anything of the token's state is read.
        let who = Acting {
            subject: &subject.sub,
            session_id: &subject.sid,
            ..Acting::new(Rpc::Exchange, caller, scope)
        };
        self.allow_tenant(&who, &subject.tid)?;
        let presented = Presented {
            token: &input.subject_token,
            fingerprint: &input.fingerprint,
            cert_thumbprint: input.cert_thumbprint.clone(),
            dpop_proof: &input.dpop_proof,
            http_method: &input.http_method,
            http_url: &input.http_url,
            replay_scope: EXCHANGE_REPLAY_SCOPE,
        };
        self.check_presented(&subject, "", presented, peer_thumbprint, now_ms)
            .await?;
        if self.is_revoked(&subject, true, now_ms).await? {
            return Err(Error::Token(TokenError::TokenRevoked));
        }
        let actor = if input.actor_token.is_empty() {
            caller.to_owned()
        } else {
            let actor = self
                .verifier
                .verify(keys.as_ref(), &input.actor_token, now)?;
            // The actor token is the caller's own bearer token: one bound
            // to a key or device would need a proof of its own.
            if actor.cnf.is_some() {
                return Err(Error::Token(TokenError::TokenBindingMismatch));
            }
            if self.is_revoked(&actor, true, now_ms).await? {
                return Err(Error::Token(TokenError::TokenRevoked));
            }
            if actor.tid != subject.tid {
                let e = Error::exchange(
                    ExchangeRefusal::ActorTenant,
                    "the actor token is of another tenant than the subject token",
                );
                audit_refusal(&subject, caller, &e);
                return Err(e);
            }
            actor.sub.clone()
        };
        let act = Actor {
            sub: actor,
            act: subject.act.clone().map(Box::new),
        };
        Ok(Parties { subject, act })
    }

    /// The claims of the derived token, if the request asks for nothing
    /// wider than the subject token gives and the caller may request.
    fn narrowed(
        &self,
        parties: &Parties,
        input: &ExchangeInput,
        audiences: &ExchangeAudiences,
        now_ms: i64,
    ) -> Result<AccessClaims, Error> {
        let subject = &parties.subject;
        let max = self.policy.max_exchange_depth;
        if parties.act.depth() > max {
            return Err(Error::exchange(
                ExchangeRefusal::Depth,
                format!(
                    "the act chain would hold {} actors; at most {max} (--max-exchange-depth)",
                    parties.act.depth()
                ),
            ));
        }
        if let Some(aud) = input.audience.iter().find(|a| !audiences.allows(a)) {
            return Err(Error::exchange(
                ExchangeRefusal::Audience,
                format!("audience {aud:?} is not in this caller's exchange_audiences"),
            ));
        }
        if let Some(scope) = input
            .scopes
            .iter()
            .find(|want| !subject.scopes().any(|have| have == want.as_str()))
        {
            return Err(Error::exchange(
                ExchangeRefusal::Scope,
                format!("scope {scope:?} is not among the subject token's"),
            ));
        }
        let scope = if input.scopes.is_empty() {
            subject.scope.clone()
        } else {
            input.scopes.join(" ")
        };
        let p = &self.policy;
        let iat = now_ms.div_euclid(1000);
        let ttl = self.derived_lifetime(subject.exp - iat, input.ttl_seconds)?;
        Ok(AccessClaims {
            iss: p.issuer.clone(),
            sub: subject.sub.clone(),
            aud: input.audience.clone(),
            exp: iat + ttl,
            nbf: iat,
            iat,
            jti: super::random_b64::<16>(),
            sid: subject.sid.clone(),
            tid: subject.tid.clone(),
            roles: subject.roles.clone(),
            scope,
            cnf: None,
            act: Some(parties.act.clone()),
            custom: subject.custom.clone(),
        })
    }

    /// The derived token's lifetime, seconds, given the subject token's
    /// `remaining` life: the requested `ttl_seconds` if it is within both
    /// `--max-access-ttl` and `remaining`, else refused; unrequested, the
    /// policy's access lifetime, cut to `remaining`. An expired subject
    /// token is `TOKEN_EXPIRED` first.
    fn derived_lifetime(&self, remaining: i64, ttl_seconds: Option<i64>) -> Result<i64, Error> {
        let p = &self.policy;
        // The subject token's own `exp` is within its session's absolute
        // lifetime, so the derived token outlives neither.
        if remaining < 1 {
            return Err(Error::Token(TokenError::TokenExpired));
        }
        let max_ttl = p.max_access_ttl.as_secs() as i64;
        match ttl_seconds {
            Some(ttl) if ttl > max_ttl => Err(Error::exchange(
                ExchangeRefusal::Lifetime,
                format!("ttl_seconds {ttl} is over --max-access-ttl ({max_ttl} s)"),
            )),
            Some(ttl) if ttl > remaining => Err(Error::exchange(
                ExchangeRefusal::Lifetime,
                format!("ttl_seconds {ttl} outlives the subject token ({remaining} s left)"),
            )),
            Some(ttl) => Ok(ttl),
            None => Ok(p
                .access_lifetime(p.access_ttl.as_secs() as i64)
                .min(remaining)),
        }
    }
}
