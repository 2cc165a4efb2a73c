//! `Verify`: signature, validity window, issuer, audience, device binding,
//! scopes and revocation.

use std::sync::Arc;

use tracing::instrument;

use super::validate::{Violations, MAX_FINGERPRINT_BYTES, MAX_NAME_BYTES};
use super::{timestamp_ms, timestamp_s, Authority};
use crate::error::{Error, TokenError};
use crate::feed::CacheAnswer;
use crate::pb;
use crate::store::Store;
use crate::tokens::{AccessClaims, Verified, MAX_TOKEN_BYTES};
use tessera_core::checks::{check_audience_and_binding, check_certificate_binding, check_scopes};

/// A validated Verify request.
pub(crate) struct VerifyInput {
    pub token: String,
    pub audience: String,
    pub fingerprint: String,
    pub renew: bool,
    pub required_scopes: Vec<String>,
    pub strong: bool,
    /// RFC 8705: the presenter's certificate thumbprint ("" = none shown).
    pub cert_thumbprint: String,
    /// RFC 9449: the proof and the request it was made for.
    pub dpop_proof: String,
    pub http_method: String,
    pub http_url: String,
}

impl TryFrom<pb::VerifyRequest> for VerifyInput {
    type Error = Error;
    fn try_from(r: pb::VerifyRequest) -> Result<Self, Error> {
        let mut v = Violations::default();
        if r.access_token.is_empty() {
            v.add("access_token", "must not be empty");
        }
        v.max_len("access_token", &r.access_token, MAX_TOKEN_BYTES);
        v.max_len("audience", &r.audience, MAX_NAME_BYTES);
        v.max_len(
            "device_fingerprint",
            &r.device_fingerprint,
            MAX_FINGERPRINT_BYTES,
        );
        v.list("required_scopes", &r.required_scopes, true);
        v.thumbprint("cert_thumbprint", &r.cert_thumbprint);
        v.dpop(&r.dpop_proof, &r.http_method, &r.http_url);
        let strong = match pb::Consistency::try_from(r.consistency) {
            Ok(pb::Consistency::Unspecified) => false,
            Ok(pb::Consistency::Strong) => true,
            Err(_) => {
                v.add("consistency", "unknown consistency level");
                false
            }
        };
        v.finish()?;
        Ok(VerifyInput {
            token: r.access_token,
            audience: r.audience,
            fingerprint: r.device_fingerprint,
            renew: r.renew,
            required_scopes: r.required_scopes,
            strong,
            cert_thumbprint: r.cert_thumbprint,
            dpop_proof: r.dpop_proof,
            http_method: r.http_method,
            http_url: r.http_url,
        })
    }
}

pub(crate) fn claims_to_proto(c: &AccessClaims) -> pb::Claims {
    pb::Claims {
        subject: c.sub.clone(),
        tenant: c.tid.clone(),
        session_id: c.sid.clone(),
        token_id: c.jti.clone(),
        audience: c.aud.clone(),
        roles: c.roles.clone(),
        scopes: c.scopes().map(str::to_owned).collect(),
        issued_at: Some(timestamp_s(c.iat)),
        expires_at: Some(timestamp_s(c.exp)),
        custom: Some(crate::authority::convert::json_to_struct(&c.custom)),
        issuer: c.iss.clone(),
        not_before: Some(timestamp_s(c.nbf)),
        actors: c.actors().into_iter().map(str::to_owned).collect(),
    }
}

/// How a token was presented: with what a bound token needs (a device
/// fingerprint, a certificate thumbprint, a DPoP proof for a request).
pub(crate) struct Presented<'a> {
    pub token: &'a str,
    pub fingerprint: &'a str,
    /// "" = none named: the presenter's (see `check_presented`).
    pub cert_thumbprint: String,
    pub dpop_proof: &'a str,
    pub http_method: &'a str,
    pub http_url: &'a str,
    /// The DPoP replay set a proof is recorded in: "" = Verify's; another
    /// name keeps its own, so the proof a resource server checked with
    /// Verify can also be shown once to Exchange.
    pub replay_scope: &'static str,
}

impl<S: Store> Authority<S> {
    /// Audience (when one is expected) and every binding of `claims`:
    /// device fingerprint, certificate (`peer_thumbprint` when the request
    /// names none; called only for a certificate-bound token, so other
    /// calls pay no hashing for it) and DPoP key (a bound token needs a
    /// proof by its key; an unbound one presented with a proof passes).
    pub(crate) async fn check_presented(
        &self,
        claims: &Verified,
        audience: &str,
        mut presented: Presented<'_>,
        peer_thumbprint: impl FnOnce() -> Option<String> + Send,
        now_ms: i64,
    ) -> Result<(), Error> {
        let cert_bound = claims
            .cnf
            .as_ref()
            .is_some_and(|c| c.cert_thumbprint_sha256.is_some());
        if cert_bound && presented.cert_thumbprint.is_empty() {
            presented.cert_thumbprint = peer_thumbprint().unwrap_or_default();
        }
        check_audience_and_binding(claims, audience, presented.fingerprint)
            .and_then(|()| check_certificate_binding(claims, &presented.cert_thumbprint))?;
        let Some(jkt) = claims.cnf.as_ref().and_then(|c| c.jkt.as_ref()) else {
            return Ok(());
        };
        if presented.dpop_proof.is_empty() {
            return Err(Error::Token(TokenError::TokenBindingMismatch));
        }
        let proof = if presented.replay_scope.is_empty() {
            self.check_dpop(
                presented.dpop_proof,
                presented.http_method,
                presented.http_url,
                Some(presented.token),
                now_ms,
            )
            .await?
        } else {
            let proof = self
                .verify_dpop(
                    presented.dpop_proof,
                    presented.http_method,
                    presented.http_url,
                    Some(presented.token),
                    now_ms,
                )
                .await?;
            let mut entry = self.proof_use(&proof);
            entry.key = crate::tokens::sha256_b64(
                format!("{}\0{}", presented.replay_scope, entry.key).as_bytes(),
            );
            if !self
                .store
                .first_use(&entry.key, entry.expires_at_ms, now_ms)
                .await?
            {
                return Err(Error::Token(TokenError::DpopProofReplayed));
            }
            proof
        };
        if tessera_core::checks::constant_time_eq(proof.jkt.as_bytes(), jkt.as_bytes()) {
            Ok(())
        } else {
            Err(Error::Token(TokenError::TokenBindingMismatch))
        }
    }

    /// Is this token revoked? From the cache when it is in sync and the
    /// caller did not ask for strong consistency; from the store otherwise.
    pub(crate) async fn is_revoked(
        &self,
        claims: &Verified,
        strong: bool,
        now_ms: i64,
    ) -> Result<bool, Error> {
        let skey = &claims.subject_key;
        if !strong {
            match self
                .feed
                .check(&claims.jti, &claims.sid, skey, claims.iat, now_ms)
            {
                CacheAnswer::Revoked => return Ok(true),
                CacheAnswer::NotRevoked => return Ok(false),
                CacheAnswer::Unknown => {}
            }
        }
        let state = self
            .store
            .revocation_state(&claims.jti, &claims.sid, skey, now_ms)
            .await?;
        Ok(state.revokes(claims.iat))
    }

    #[instrument(level = "debug", skip_all, fields(strong = tracing::field::Empty))]
    /// `peer_thumbprint`: the thumbprint of the presenter's client
    /// certificate (the mTLS call's own, or the one Envoy saw), used when
    /// the request names none; called only for a certificate-bound token,
    /// so other calls pay no hashing for it. `who.rpc` names the call in
    /// the audit trail (`Verify`, or `Check` for Envoy's); a token of a
    /// tenant outside `who.scope` is refused right after its signature and
    /// validity window, before revocation state or renewal is looked at.
    pub(crate) async fn verify(
        &self,
        request: pb::VerifyRequest,
        who: &super::tenancy::Acting<'_>,
        peer_thumbprint: impl FnOnce() -> Option<String> + Send,
    ) -> Result<(pb::VerifyResponse, Option<String>), Error> {
        let mut input = VerifyInput::try_from(request)?;
        tracing::Span::current().record("strong", input.strong);
        let now_ms = crate::clock::now_ms();
        let now = now_ms.div_euclid(1000);
        let claims = self
            .verifier
            .verify(self.keys.current().as_ref(), &input.token, now)?;
        let about = super::tenancy::Acting {
            subject: &claims.sub,
            session_id: &claims.sid,
            ..*who
        };
        self.allow_tenant(&about, &claims.tid)?;
        let caller_tenants = who.scope.label();
        let event = || crate::audit::Event {
            tenant: &claims.tid,
            subject: &claims.sub,
            session_id: &claims.sid,
            caller: who.caller,
            caller_tenants: &caller_tenants,
            rpc: who.rpc.as_str(),
            ..Default::default()
        };
        let presented = Presented {
            token: &input.token,
            fingerprint: &input.fingerprint,
            cert_thumbprint: std::mem::take(&mut input.cert_thumbprint),
            dpop_proof: &input.dpop_proof,
            http_method: &input.http_method,
            http_url: &input.http_url,
            replay_scope: "",
        };
        self.check_presented(&claims, &input.audience, presented, peer_thumbprint, now_ms)
            .await
            .inspect_err(|e| {
                if matches!(
                    e,
                    Error::Token(
                        TokenError::FingerprintMismatch | TokenError::TokenBindingMismatch
                    )
                ) {
                    crate::audit::emit(crate::audit::Kind::BindingMismatch, "refused", &event());
                }
            })?;
        if self.is_revoked(&claims, input.strong, now_ms).await? {
            return Err(Error::Token(TokenError::TokenRevoked));
        }
        check_scopes(&claims, &input.required_scopes)?;
        let renewed = if input.renew {
            self.renew(&claims, now_ms).await?
        } else {
            None
        };
        if renewed.is_some() {
            crate::audit::emit(crate::audit::Kind::Renewed, "ok", &event());
        }
        self.count_tenant(&claims.tid, "verified");
        let response = pb::VerifyResponse {
            claims: Some(claims_to_proto(&claims)),
            renewed_access_token: renewed
                .as_ref()
                .map(|r| r.token.clone())
                .unwrap_or_default(),
            renewed_expires_at: renewed.as_ref().map(|r| timestamp_s(r.expires_at)),
            server_time: Some(timestamp_ms(now_ms)),
            expires_in: (claims.exp - now).max(0),
        };
        Ok((response, renewed.map(|r| r.token)))
    }
}

impl<S: Store> Authority<S> {
    /// RFC 7662 introspection: the token's claims if it is active (signed
    /// by a key in force, within its validity window with the leeway, our
    /// issuer, not revoked by the replica's feed-fed cache), `None` for any
    /// token that is not, a refresh token included. Bindings are reported
    /// (`cnf`), not checked: the resource server holds the proof (RFC 9449
    /// §6.2, RFC 8705 §3.2). Only a store that cannot answer is an error.
    /// A token of a tenant outside `who.scope` is not active either (RFC
    /// 7662 §2.2: the protected resource "is not allowed to introspect this
    /// particular token"); the refusal is counted and audited as
    /// `TENANT_NOT_ALLOWED`, and its revocation state is never read.
    pub(crate) async fn introspect(
        &self,
        token: &str,
        who: &super::tenancy::Acting<'_>,
    ) -> Result<Option<Arc<Verified>>, Error> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Ok(None);
        }
        let now_ms = crate::clock::now_ms();
        let Ok(claims) =
            self.verifier
                .verify(self.keys.current().as_ref(), token, now_ms.div_euclid(1000))
        else {
            return Ok(None);
        };
        let about = super::tenancy::Acting {
            subject: &claims.sub,
            session_id: &claims.sid,
            ..*who
        };
        if self.allow_tenant(&about, &claims.tid).is_err() {
            return Ok(None);
        }
        if self.is_revoked(&claims, false, now_ms).await? {
            return Ok(None);
        }
        Ok(Some(claims))
    }
}

/// A token minted by sliding renewal.
pub(crate) struct Renewed {
    pub token: String,
    pub expires_at: i64,
}

impl<S: Store> Authority<S> {
    /// docs/design.md §5 sliding renewal, by remaining lifetime: above the warning
    /// threshold nothing; between the thresholds the session's idle expiry
    /// moves; below critical a successor token, the same on every replica.
    pub(crate) async fn renew(
        &self,
        claims: &AccessClaims,
        now_ms: i64,
    ) -> Result<Option<Renewed>, Error> {
        let p = &self.policy;
        if !p.renewal {
            return Ok(None);
        }
        let remaining = claims.exp - now_ms.div_euclid(1000);
        if remaining > p.renewal_warning.as_secs() as i64 {
            return Ok(None);
        }
        let mint = remaining <= p.renewal_critical.as_secs() as i64;
        let request = crate::store::RenewRequest {
            sid: claims.sid.clone(),
            jti: claims.jti.clone(),
            mint,
            now_ms,
            marker_ttl_ms: (remaining.max(0) + p.leeway.as_secs() as i64 + 1) * 1000,
            keep_until_ms: now_ms + p.feed().access_horizon_ms,
        };
        let outcome = self.store.renew(&request).await?;
        let band = match outcome {
            crate::store::RenewOutcome::Invalid => "refused",
            crate::store::RenewOutcome::Extended => "extend",
            crate::store::RenewOutcome::Renewed { .. } => "mint",
        };
        metrics::counter!(crate::telemetry::RENEWALS, "band" => band).increment(1);
        match outcome {
            crate::store::RenewOutcome::Invalid | crate::store::RenewOutcome::Extended => Ok(None),
            crate::store::RenewOutcome::Renewed {
                iat_ms,
                absolute_exp_ms,
            } => {
                let iat = iat_ms.div_euclid(1000);
                // The presented token's lifetime, capped by today's policy.
                let lifetime = p.access_lifetime(claims.exp - claims.iat);
                let mut next = claims.clone();
                next.jti = super::derive_jti(&claims.sid, 0, &format!("renew:{}", claims.jti));
                next.iat = iat;
                next.nbf = iat;
                next.exp = (iat + lifetime).min(absolute_exp_ms.div_euclid(1000));
                if next.exp <= claims.exp {
                    // The session ends no later than the presented token: nothing to gain.
                    return Ok(None);
                }
                let expires_at = next.exp;
                let token = self.mint_claims(&mut next)?;
                tracing::debug!(session.id = %claims.sid, "access token renewed");
                Ok(Some(Renewed { token, expires_at }))
            }
        }
    }
}
