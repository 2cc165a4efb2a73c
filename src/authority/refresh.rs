//! `Refresh`: rotate a refresh token, with a grace window and reuse detection.

use tessera_core::wire::Rpc;
use tracing::instrument;

use super::validate::{Violations, MAX_FINGERPRINT_BYTES};
use super::{derive_jti, fingerprint_hash, token_pair, Authority, RefreshToken};
use crate::audit;
use crate::error::{Error, TokenError};
use crate::pb;
use crate::store::{ClientInfo, ProofUse, RotateOutcome, RotateRequest, Rotation, Store};
use crate::telemetry;
use crate::tokens::{AccessClaims, MAX_TOKEN_BYTES};

/// A rotation's answer, its outcome label for metrics, and the claims of
/// the new access token.
pub(crate) struct Refreshed {
    pub response: pb::RefreshResponse,
    pub outcome: &'static str,
    pub claims: AccessClaims,
}

impl<S: Store> Authority<S> {
    /// Refresh, counted in the refresh metrics by outcome (gRPC and the
    /// OAuth token endpoint both call this).
    /// `client_id`: the one a public client named on the token endpoint
    /// (a session issued to another client refuses it).
    pub(crate) async fn refresh_counted(
        &self,
        request: pb::RefreshRequest,
        caller: &str,
        scope: &crate::authority::scope::TenantScope,
        client_id: Option<&str>,
    ) -> Result<Refreshed, Error> {
        let result = self.refresh(request, caller, scope, client_id).await;
        let outcome = match &result {
            Ok(r) => r.outcome,
            Err(Error::RefreshTokenReused) => "reused",
            Err(Error::RefreshTokenInvalid) => "invalid",
            Err(Error::Token(TokenError::FingerprintMismatch)) => "fingerprint_mismatch",
            Err(Error::Token(TokenError::TokenBindingMismatch)) => "binding_mismatch",
            Err(Error::RateLimited { .. }) => "rate_limited",
            Err(Error::TenantNotAllowed) => "tenant_not_allowed",
            Err(_) => "error",
        };
        metrics::counter!(telemetry::REFRESHES, "outcome" => outcome).increment(1);
        metrics::counter!(telemetry::TOKEN_REFRESH).increment(1);
        result
    }

    #[instrument(level = "debug", skip_all, fields(session.id = tracing::field::Empty))]
    async fn refresh(
        &self,
        mut request: pb::RefreshRequest,
        caller: &str,
        scope: &crate::authority::scope::TenantScope,
        client_id: Option<&str>,
    ) -> Result<Refreshed, Error> {
        let (presented, client) = refresh_input(&mut request)?;
        tracing::Span::current().record("session.id", presented.sid.as_str());
        // A scoped caller's check comes before anything of the session can
        // change (rotation, reuse detection): a secret that is not the
        // session's answers as an unknown token does (`service::tenancy`).
        let who = super::tenancy::Acting::new(Rpc::Refresh, caller, scope);
        let owner = self
            .allow_session(&who, &presented.sid, Some(&presented.hash()))
            .await?;
        if owner == super::tenancy::Owner::Unknown {
            return Err(Error::RefreshTokenInvalid);
        }

        let now_ms = crate::clock::now_ms();
        let (dpop_jkt, dpop_replay) = self.refresh_proof(&request, now_ms).await?;
        self.charge_refresh_tenant(&presented.sid, now_ms, (caller, scope))
            .await?;
        let successor = RefreshToken::new(&presented.sid);
        let feed = self.policy.feed();
        let rotate = RotateRequest {
            sid: presented.sid.clone(),
            presented_hash: presented.hash(),
            new_hash: successor.hash(),
            sealed_successor: presented.seal(&successor)?,
            now_ms,
            grace_ms: self.policy.refresh_grace.as_millis() as i64,
            fingerprint_hash: fingerprint_hash(&request.device_fingerprint),
            rate_limit: self.policy.refresh_rate,
            feed,
            keep_until_ms: now_ms + feed.access_horizon_ms,
            client,
            dpop_jkt,
            // RFC 8705: a certificate-bound session rotates only for its
            // certificate, compared in the rotation itself (as the DPoP key).
            cert_thumbprint: (!request.cert_thumbprint.is_empty())
                .then(|| request.cert_thumbprint.clone()),
            client_id: client_id.filter(|c| !c.is_empty()).map(str::to_owned),
            dpop_replay,
        };
        let outcome = self.store.rotate(&rotate).await?;
        let caller_tenants = scope.label();
        let event = audit::Event {
            session_id: &presented.sid,
            caller,
            caller_tenants: &caller_tenants,
            client_ip: &rotate.client.ip_address,
            rpc: Rpc::Refresh.as_str(),
            ..Default::default()
        };
        let (rotation, refresh, outcome) =
            self.rotated(outcome, &presented, successor, &event).await?;
        self.audit_refreshed(outcome, &rotation, &event);
        let (tokens, claims) = self.successor_pair(&rotation, &refresh, now_ms)?;
        Ok(Refreshed {
            response: pb::RefreshResponse {
                tokens: Some(tokens),
            },
            outcome,
            claims,
        })
    }

    /// The DPoP key and replay-set entry of the request's proof, if any.
    /// A proof by the session's key (RFC 9449 §5): checked here, its key
    /// compared with the session's binding in the rotation itself, which
    /// also records the proof in the replay set (issue #32: recording it
    /// before the session was known let anyone grow the set).
    async fn refresh_proof(
        &self,
        request: &pb::RefreshRequest,
        now_ms: i64,
    ) -> Result<(Option<String>, Option<ProofUse>), Error> {
        if request.dpop_proof.is_empty() {
            return Ok((None, None));
        }
        let proof = self
            .verify_dpop(
                &request.dpop_proof,
                &request.http_method,
                &request.http_url,
                None,
                now_ms,
            )
            .await?;
        let entry = self.proof_use(&proof);
        Ok((Some(proof.jkt), Some(entry)))
    }

    /// Spend the tenant's own Refresh budget (`--tenants`), before the
    /// rotation spends the subject's: one read of the session's tenant,
    /// made only when some tenant has such a budget.
    async fn charge_refresh_tenant(
        &self,
        sid: &str,
        now_ms: i64,
        caller: (&str, &crate::authority::scope::TenantScope),
    ) -> Result<(), Error> {
        let tenants = self.tenants.current();
        if !tenants.any_refresh_rate() {
            return Ok(());
        }
        if let Some(tenant) = self.store.session_tenant(sid, None, now_ms).await? {
            let limit = tenants.limits(&tenant).refresh_rate;
            self.charge_tenant(&tenant, Rpc::Refresh, limit, caller)
                .await?;
        }
        Ok(())
    }

    /// What the store's answer to a rotation means: the rotation, the
    /// refresh token to hand out and the outcome label, or the refusal
    /// (audited, and for a reuse read back until the feed has the
    /// session's revocation).
    async fn rotated(
        &self,
        outcome: RotateOutcome,
        presented: &RefreshToken,
        successor: RefreshToken,
        event: &audit::Event<'_>,
    ) -> Result<(Rotation, RefreshToken, &'static str), Error> {
        match outcome {
            RotateOutcome::Rotated(rotation) => Ok((rotation, successor, "rotated")),
            RotateOutcome::Grace { rotation, sealed } => {
                // The same successor the winner got: opened with the presented
                // token, which is the only thing that can open it.
                let same = presented.open(&sealed).ok_or(Error::RefreshTokenInvalid)?;
                tracing::debug!(generation = rotation.generation, "grace-window retry");
                Ok((rotation, same, "grace_replay"))
            }
            RotateOutcome::Reused { cursor } => {
                tracing::warn!(session.id = %presented.sid, revocation.cursor = %cursor, "refresh token reused; session revoked");
                let event = audit::Event {
                    detail: "session revoked: its whole token family",
                    ..*event
                };
                audit::emit(audit::Kind::ReuseDetected, "refused", &event);
                self.read_own_write(&cursor).await;
                Err(Error::RefreshTokenReused)
            }
            RotateOutcome::FingerprintMismatch => {
                tracing::warn!(session.id = %presented.sid, "refresh with a different device fingerprint: possible token theft");
                metrics::counter!(telemetry::FINGERPRINT_MISMATCHES).increment(1);
                audit::emit(audit::Kind::BindingMismatch, "refused", event);
                Err(Error::Token(TokenError::FingerprintMismatch))
            }
            RotateOutcome::BindingMismatch => {
                audit::emit(audit::Kind::BindingMismatch, "refused", event);
                Err(Error::Token(TokenError::TokenBindingMismatch))
            }
            RotateOutcome::ProofReplayed => Err(Error::Token(TokenError::DpopProofReplayed)),
            RotateOutcome::Invalid => Err(Error::RefreshTokenInvalid),
            RotateOutcome::RateLimited { retry_after_ms } => {
                audit::emit(audit::Kind::RateLimited, "refused", event);
                Err(Error::RateLimited {
                    retry_after: std::time::Duration::from_millis(retry_after_ms.max(1) as u64),
                })
            }
        }
    }

    /// Audit and count a refresh that handed out tokens: a rotation, or a
    /// retry within the grace window (`grace_replay`).
    fn audit_refreshed(&self, outcome: &str, rotation: &Rotation, event: &audit::Event<'_>) {
        let kind = if outcome == "rotated" {
            audit::Kind::Refreshed
        } else {
            audit::Kind::GraceReplay
        };
        let event = audit::Event {
            tenant: &rotation.data.tenant,
            subject: &rotation.data.subject,
            ..*event
        };
        audit::emit(kind, "ok", &event);
        self.count_tenant(&rotation.data.tenant, "refreshed");
    }

    /// The access token of a rotation is a pure function of the rotation, so
    /// every caller that sees the same rotation gets the same token.
    fn successor_pair(
        &self,
        rotation: &Rotation,
        refresh: &RefreshToken,
        now_ms: i64,
    ) -> Result<(pb::TokenPair, AccessClaims), Error> {
        let jti = derive_jti(&rotation.data.sid, rotation.generation, "");
        let (access, claims) = self.mint_session(&rotation.data, jti, rotation.rotated_at_ms)?;
        let pair = token_pair(access, &claims, refresh, rotation.refresh_exp_ms, now_ms);
        Ok((pair, claims))
    }
}

/// The request's fields checked (one `invalid_argument` naming every
/// violation), then the presented refresh token parsed: a token of any
/// other shape is `REFRESH_TOKEN_INVALID`. Takes the client's address
/// and agent out of `request`.
fn refresh_input(request: &mut pb::RefreshRequest) -> Result<(RefreshToken, ClientInfo), Error> {
    let mut v = Violations::default();
    if request.refresh_token.is_empty() {
        v.add("refresh_token", "must not be empty");
    }
    v.max_len("refresh_token", &request.refresh_token, MAX_TOKEN_BYTES);
    v.max_len(
        "device_fingerprint",
        &request.device_fingerprint,
        MAX_FINGERPRINT_BYTES,
    );
    let client = v.client(
        std::mem::take(&mut request.ip_address),
        std::mem::take(&mut request.user_agent),
    );
    v.dpop(&request.dpop_proof, &request.http_method, &request.http_url);
    v.thumbprint("cert_thumbprint", &request.cert_thumbprint);
    v.finish()?;
    let presented =
        RefreshToken::parse(&request.refresh_token).ok_or(Error::RefreshTokenInvalid)?;
    Ok((presented, client))
}
