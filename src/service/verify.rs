//! `Verify`: signature, validity window, issuer, audience, device binding,
//! scopes and revocation.

use std::sync::Arc;

use tracing::instrument;

use super::issue::{Violations, MAX_FINGERPRINT_BYTES, MAX_NAME_BYTES};
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
        custom: Some(crate::convert::json_to_struct(&c.custom)),
        issuer: c.iss.clone(),
        not_before: Some(timestamp_s(c.nbf)),
    }
}

impl<S: Store> Authority<S> {
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
    /// so other calls pay no hashing for it. `rpc` names the call in the
    /// audit trail (`Verify`, or `Check` for Envoy's).
    pub(crate) async fn verify(
        &self,
        request: pb::VerifyRequest,
        caller: &str,
        rpc: &'static str,
        peer_thumbprint: impl FnOnce() -> Option<String> + Send,
    ) -> Result<(pb::VerifyResponse, Option<String>), Error> {
        let mut input = VerifyInput::try_from(request)?;
        tracing::Span::current().record("strong", input.strong);
        let now_ms = crate::clock::now_ms();
        let now = now_ms.div_euclid(1000);
        let claims = self
            .verifier
            .verify(self.keys.current().as_ref(), &input.token, now)?;
        let event = || crate::audit::Event {
            tenant: &claims.tid,
            subject: &claims.sub,
            session_id: &claims.sid,
            caller,
            rpc,
            ..Default::default()
        };
        let cert_bound = claims
            .cnf
            .as_ref()
            .is_some_and(|c| c.cert_thumbprint_sha256.is_some());
        if cert_bound && input.cert_thumbprint.is_empty() {
            input.cert_thumbprint = peer_thumbprint().unwrap_or_default();
        }
        let bound = check_audience_and_binding(&claims, &input.audience, &input.fingerprint)
            .and_then(|()| check_certificate_binding(&claims, &input.cert_thumbprint));
        if let Err(e) = bound {
            if matches!(
                e,
                TokenError::FingerprintMismatch | TokenError::TokenBindingMismatch
            ) {
                crate::audit::emit(crate::audit::Kind::BindingMismatch, "refused", &event());
            }
            return Err(e.into());
        }
        // DPoP (RFC 9449): a bound token needs a proof by its key; an
        // unbound token presented with a proof verifies as usual.
        if let Some(jkt) = claims.cnf.as_ref().and_then(|c| c.jkt.as_ref()) {
            let proven = if input.dpop_proof.is_empty() {
                Err(Error::Token(TokenError::TokenBindingMismatch))
            } else {
                self.check_dpop(
                    &input.dpop_proof,
                    &input.http_method,
                    &input.http_url,
                    Some(&input.token),
                    now_ms,
                )
                .await
                .and_then(|proof| {
                    if tessera_core::checks::constant_time_eq(proof.jkt.as_bytes(), jkt.as_bytes())
                    {
                        Ok(())
                    } else {
                        Err(Error::Token(TokenError::TokenBindingMismatch))
                    }
                })
            };
            if let Err(e) = proven {
                if matches!(e, Error::Token(TokenError::TokenBindingMismatch)) {
                    crate::audit::emit(crate::audit::Kind::BindingMismatch, "refused", &event());
                }
                return Err(e);
            }
        }
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
    pub(crate) async fn introspect(&self, token: &str) -> Result<Option<Arc<Verified>>, Error> {
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
                let token = self.sign(&next)?;
                tracing::debug!(session.id = %claims.sid, "access token renewed");
                Ok(Some(Renewed {
                    token,
                    expires_at: next.exp,
                }))
            }
        }
    }
}
