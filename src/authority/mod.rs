//! The authority layer: the `tessera.v1.TokenAuthority` service, generic
//! over the [`Store`]. Below the transport (which calls it), above the feed
//! and the store (which it calls).
//!
//! One file per RPC group; each turns its request into a domain value in one
//! validating function (proto types stay at the edge), then works on domain
//! types only.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::wire::Rpc;

use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::error::{Error, TokenError};
use crate::feed::Feed;
use crate::keys::KeyRing;
use crate::pb;
use crate::store::{FeedPolicy, SessionData, Store};
use crate::telemetry;
use crate::tokens::{self, AccessClaims, CacheBounds, Confirmation, TokenVerifier, VerifyPolicy};

pub mod caller;
pub mod convert;
mod exchange;
mod ext_authz;
mod issue;
mod refresh;
mod revoke;
pub mod scope;
mod secrets;
mod sessions;
mod tenancy;
pub mod tenants;
mod verify;

pub(crate) use crate::authority::convert::{timestamp_ms, timestamp_s};
pub(crate) use issue::Violations;
pub use issue::{is_hidden_char, MAX_NAME_BYTES};
pub use secrets::random_b64;
pub(crate) use secrets::{derive_jti, RefreshToken};
pub(crate) use tenancy::Acting;

mod watch_feed;

/// Settings the RPCs need, derived once from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub max_access_ttl: Duration,
    pub max_refresh_ttl: Duration,
    pub leeway: Duration,
    pub refresh_grace: Duration,
    pub renewal: bool,
    pub renewal_warning: Duration,
    pub renewal_critical: Duration,
    pub session_lifetime: Duration,
    /// Idle timeout; `None` = each session's own refresh TTL.
    pub session_idle: Option<Duration>,
    pub watch_send_timeout: Duration,
    pub issue_rate: Option<crate::store::RateLimit>,
    pub refresh_rate: Option<crate::store::RateLimit>,
    /// Per-caller limits by RPC name (`*` = any); Issue's is `caller_issue_rate`.
    pub caller_rates: Vec<(String, crate::store::RateLimit)>,
    /// Per-caller Issue budget, counted in the same atomic step as the
    /// session is written (`None` = off).
    pub caller_issue_rate: Option<crate::store::RateLimit>,
    /// Per-caller Exchange budget, counted by the handler (`None` = off).
    pub caller_exchange_rate: Option<crate::store::RateLimit>,
    /// `--max-exchange-depth`: the most actors of an `act` chain.
    pub max_exchange_depth: usize,
    /// Bounds of the verified-token cache (`--verify-cache-size`/`-bytes`).
    pub verify_cache: CacheBounds,
    /// `--max-sessions-per-subject` (`None` = no cap).
    pub session_cap: Option<crate::store::SessionCap>,
    /// `--dpop-window`: how far a proof's `iat` may be from now.
    pub dpop_window: Duration,
    /// `--dpop-nonce`: proofs must carry a server nonce.
    pub dpop_nonce: bool,
    /// `--ext-authz-header-prefix` and `--ext-authz-strip-authorization`.
    pub ext_authz_header_prefix: String,
    pub ext_authz_strip_authorization: bool,
    /// `--redis-partitions`: which partition a new session id names.
    pub partitions: std::sync::Arc<crate::store::partition::Partitions>,
    /// `--metrics-tenants`: the tenants counted by name (empty = no
    /// per-tenant series).
    pub metrics_tenants: Arc<std::collections::BTreeSet<String>>,
    /// `--watch-raw-subjects`: subject events carry the raw subject too.
    pub watch_raw_subjects: bool,
}

impl Policy {
    /// The `tenant` label of `tenant` in the per-tenant metrics: its name
    /// when `--metrics-tenants` lists it, `other` when it lists others,
    /// `None` (count nothing) without the flag.
    pub fn tenant_label(&self, tenant: &str) -> Option<String> {
        if self.metrics_tenants.is_empty() {
            return None;
        }
        Some(if self.metrics_tenants.contains(tenant) {
            tenant.to_owned()
        } else {
            telemetry::OTHER_TENANT.to_owned()
        })
    }

    pub fn verify_policy(&self) -> VerifyPolicy {
        VerifyPolicy {
            issuer: self.issuer.clone(),
            leeway: self.leeway.as_secs() as i64,
        }
    }

    /// Until when (Unix ms) a revocation of a token whose `exp` is `exp`
    /// must be remembered: past the last instant `Verify` still accepts the
    /// token ([`tokens::refused_from_ms`]), plus one more leeway for the skew
    /// between the clocks of the replica that revoked and the one that
    /// verifies (the skew the leeway exists to tolerate).
    pub fn token_horizon_ms(&self, exp: i64) -> i64 {
        let leeway = self.leeway.as_secs() as i64;
        tokens::refused_from_ms(exp, leeway).saturating_add(leeway * 1000)
    }

    /// The longest lifetime of a token minted now, seconds: a session keeps
    /// the `access_ttl` it was issued with, but a lowered `--max-access-ttl`
    /// caps every token minted afterwards (refresh and renewal included), so
    /// none outlives the revocation horizon of [`Policy::feed`].
    pub fn access_lifetime(&self, requested_s: i64) -> i64 {
        requested_s.min(self.max_access_ttl.as_secs() as i64).max(1)
    }

    /// Lifetimes of revocation state (the remaining life of what it kills),
    /// computed once here so that both stores only persist them.
    pub fn feed(&self) -> FeedPolicy {
        // A token minted at or before now (iat = now in whole seconds, at
        // most) is refused from `token_horizon_ms(iat + max_access_ttl)`;
        // relative to now that is at most `token_horizon_ms(max_access_ttl)`.
        let access_horizon_ms = self.token_horizon_ms(self.max_access_ttl.as_secs() as i64);
        let session_horizon_ms = self.session_lifetime.as_millis() as i64;
        FeedPolicy {
            // A minute of slack so a verifier that reconnects late still
            // finds every event whose token could be alive.
            retention_ms: access_horizon_ms + 60_000,
            access_horizon_ms,
            subject_horizon_ms: session_horizon_ms.max(access_horizon_ms),
        }
    }
}

/// The token authority: keys, store, feed and policy.
pub struct Authority<S: Store> {
    pub(crate) store: Arc<S>,
    pub(crate) keys: Arc<KeyRing>,
    /// The tenants' own budgets (`--tenants`).
    pub(crate) tenants: Arc<crate::authority::tenants::TenantRing>,
    pub(crate) feed: Arc<Feed>,
    pub(crate) policy: Policy,
    pub(crate) verifier: TokenVerifier,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The DPoP nonces of the current and previous windows, with the window.
    nonces: std::sync::Mutex<Option<(i64, String, String)>>,
}

impl<S: Store> Authority<S> {
    pub fn new(
        store: Arc<S>,
        keys: Arc<KeyRing>,
        tenants: Arc<crate::authority::tenants::TenantRing>,
        feed: Arc<Feed>,
        policy: Policy,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let verifier = TokenVerifier::with_cache(policy.verify_policy(), policy.verify_cache);
        Authority {
            store,
            keys,
            tenants,
            feed,
            policy,
            verifier,
            shutdown,
            nonces: std::sync::Mutex::new(None),
        }
    }
}

// === helpers shared by the RPCs ===

/// The claims of an access token of a session, minted at `iat_ms`, with
/// the issuer of its tenant (`issuer`: [`Keys::issuer_for`]).
pub(crate) fn session_claims(
    policy: &Policy,
    issuer: &str,
    data: &SessionData,
    jti: String,
    iat_ms: i64,
) -> AccessClaims {
    let iat = iat_ms.div_euclid(1000);
    // No token outlives its session's absolute lifetime.
    let exp =
        (iat + policy.access_lifetime(data.access_ttl)).min(data.absolute_exp_ms.div_euclid(1000));
    AccessClaims {
        iss: issuer.to_owned(),
        sub: data.subject.clone(),
        aud: data.audience.clone(),
        exp,
        nbf: iat,
        iat,
        jti,
        sid: data.sid.clone(),
        tid: data.tenant.clone(),
        roles: data.roles.clone(),
        scope: data.scopes.join(" "),
        cnf: (data.fingerprint_hash.is_some()
            || data.cert_thumbprint.is_some()
            || data.dpop_jkt.is_some())
        .then(|| Confirmation {
            device_fingerprint_sha256: data.fingerprint_hash.clone(),
            cert_thumbprint_sha256: data.cert_thumbprint.clone(),
            jkt: data.dpop_jkt.clone(),
        }),
        act: None,
        custom: data.custom.clone(),
    }
}

/// Sign `claims` with their tenant's current key (`--tenants`; else the
/// default key), in a span of its own.
fn sign(keys: &tessera_core::keys::Keys, claims: &AccessClaims) -> Result<String, TokenError> {
    let signer = keys.signer_for(&claims.tid);
    let _span = crate::trace::sign_span(crate::keys::alg_name(signer.signer.alg)).entered();
    tokens::mint(signer, claims)
}

impl<S: Store> Authority<S> {
    /// Mint the access token of a session at `iat_ms`: its tenant's issuer
    /// and key (`--tenants`), else the default ones, read from one key set
    /// so a reload in between cannot mix them.
    pub(crate) fn mint_session(
        &self,
        data: &SessionData,
        jti: String,
        iat_ms: i64,
    ) -> Result<(String, AccessClaims), Error> {
        let keys = self.keys.current();
        let issuer = keys.issuer_for(&data.tenant, &self.policy.issuer);
        let claims = session_claims(&self.policy, issuer, data, jti, iat_ms);
        let token = sign(&keys, &claims)?;
        Ok((token, claims))
    }

    /// Sign `claims` (a renewal, an exchange) with the current key of
    /// their tenant, after setting `iss` to that tenant's issuer.
    pub(crate) fn mint_claims(&self, claims: &mut AccessClaims) -> Result<String, Error> {
        let keys = self.keys.current();
        claims.iss = keys.issuer_for(&claims.tid, &self.policy.issuer).to_owned();
        Ok(sign(&keys, claims)?)
    }

    /// Spend one call of `tenant`'s own budget for `rpc` (`--tenants`),
    /// before anything else is counted or written, so a tenant over its
    /// budget spends nobody else's (a caller's, a subject's).
    pub(crate) async fn charge_tenant(
        &self,
        tenant: &str,
        rpc: Rpc,
        limit: Option<crate::store::RateLimit>,
        (caller, scope): (&str, &crate::authority::scope::TenantScope),
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

impl<S: Store> Authority<S> {
    /// Check a DPoP proof (RFC 9449) for the request `method url`, with
    /// `access_token` as its `ath` when there is one, and record its `jti`
    /// in the store-wide replay set (see [`Self::proof_use`]): a second
    /// use, on any replica, is `DPOP_PROOF_REPLAYED`.
    pub(crate) async fn check_dpop(
        &self,
        proof: &str,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        now_ms: i64,
    ) -> Result<tessera_core::dpop::Proof, Error> {
        let proof = self
            .verify_dpop(proof, method, url, access_token, now_ms)
            .await?;
        let entry = self.proof_use(&proof);
        let fresh = self
            .store
            .first_use(&entry.key, entry.expires_at_ms, now_ms)
            .await?;
        if !fresh {
            return Err(Error::Token(TokenError::DpopProofReplayed));
        }
        Ok(proof)
    }

    /// The replay-set entry of `proof`: one key per (key, jti), hashed (any
    /// bytes, no injection), kept until the proof stops being accepted
    /// anyway — its `iat` plus the window and the leeway, and a second for
    /// the clocks of replica and store (an entry that expired sooner let a
    /// proof dated ahead be used twice).
    pub(crate) fn proof_use(&self, proof: &tessera_core::dpop::Proof) -> crate::store::ProofUse {
        crate::store::ProofUse {
            key: tokens::sha256_b64(format!("{}\0{}", proof.jkt, proof.jti).as_bytes()),
            expires_at_ms: (proof.iat + self.dpop_max_age() + 1) * 1000,
        }
    }

    /// How far a proof's `iat` may be from now, seconds: the window plus
    /// the leeway.
    fn dpop_max_age(&self) -> i64 {
        (self.policy.dpop_window + self.policy.leeway).as_secs() as i64
    }

    /// Check a DPoP proof (signature, method, URL, `ath`, age, nonce)
    /// without recording it: the caller records it where it knows the proof
    /// is worth an entry (a refresh: in the rotation, once the session is
    /// known to be bound to the proof's key).
    pub(crate) async fn verify_dpop(
        &self,
        proof: &str,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        now_ms: i64,
    ) -> Result<tessera_core::dpop::Proof, Error> {
        let window = self.dpop_max_age();
        let proof = tessera_core::dpop::verify_proof(
            proof,
            &tessera_core::dpop::ProofRequest {
                method,
                url,
                access_token,
                now: now_ms.div_euclid(1000),
                max_age: window,
            },
        )?;
        if self.policy.dpop_nonce {
            let (current, previous) = self.dpop_nonces(now_ms).await?;
            if proof.nonce.as_deref() != Some(current.as_str())
                && proof.nonce.as_deref() != Some(previous.as_str())
            {
                return Err(Error::DpopNonce { nonce: current });
            }
        }
        Ok(proof)
    }
}

impl<S: Store> Authority<S> {
    /// The server's DPoP nonces (RFC 9449 §8): one per `--dpop-window`,
    /// random, the same on every replica (the first replica to need a
    /// window's nonce puts it in the store); the current window's and the
    /// previous one's are accepted.
    pub(crate) async fn dpop_nonces(&self, now_ms: i64) -> Result<(String, String), Error> {
        let window_ms = (self.policy.dpop_window.as_millis() as i64).max(1000);
        let w = now_ms.div_euclid(window_ms);
        if let Some((cached, current, previous)) = self
            .nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            if cached == w {
                return Ok((current, previous));
            }
        }
        let mut values = Vec::with_capacity(2);
        for window in [w, w - 1] {
            values.push(
                self.store
                    .shared_value(
                        &format!("dpop-nonce:{window}"),
                        &random_b64::<18>(),
                        (window + 3) * window_ms,
                        now_ms,
                    )
                    .await?,
            );
        }
        let previous = values.pop().unwrap_or_default();
        let current = values.pop().unwrap_or_default();
        *self.nonces.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((w, current.clone(), previous.clone()));
        Ok((current, previous))
    }

    /// Put the current DPoP nonce on an answer to a call that carried a
    /// proof (`--dpop-nonce`), for the client's next proof.
    pub(crate) async fn with_dpop_nonce<T>(
        &self,
        had_proof: bool,
        mut response: Response<T>,
    ) -> Response<T> {
        if self.policy.dpop_nonce && had_proof {
            if let Ok((current, _)) = self.dpop_nonces(crate::clock::now_ms()).await {
                if let Ok(value) = current.parse() {
                    response
                        .metadata_mut()
                        .insert(tessera_core::wire::DPOP_NONCE_HEADER, value);
                }
            }
        }
        response
    }
}

/// Whether `name` is a tenant name Issue accepts (the `/t/{tenant}/...`
/// paths answer 404 for any other).
pub(crate) fn tenant_name_ok(name: &str) -> bool {
    let mut v = Violations::default();
    v.name("tenant", name, true);
    v.finish().is_ok()
}

impl<S: Store> Authority<S> {
    /// The public keys of `tenant` (its own, else the default ones) as a
    /// JWK set, and the issuer of the tokens they sign.
    pub(crate) fn jwks_of(&self, tenant: &str) -> (String, String) {
        let keys = self.keys.current();
        (
            keys.signer_for(tenant).jwks_json().to_owned(),
            keys.issuer_for(tenant, &self.policy.issuer).to_owned(),
        )
    }
}

/// Build the response pair for an access token and a refresh token.
pub(crate) fn token_pair(
    access_token: String,
    claims: &AccessClaims,
    refresh: &RefreshToken,
    refresh_exp_ms: i64,
    now_ms: i64,
) -> pb::TokenPair {
    let now_s = now_ms.div_euclid(1000);
    pb::TokenPair {
        access_token,
        refresh_token: refresh.encode(),
        token_type: "Bearer".into(),
        access_expires_at: Some(timestamp_s(claims.exp)),
        refresh_expires_at: Some(timestamp_ms(refresh_exp_ms)),
        expires_in: (claims.exp - now_s).max(0),
        session_id: claims.sid.clone(),
        refresh_expires_in: ((refresh_exp_ms - now_ms) / 1000).max(0),
    }
}

pub(crate) use tessera_core::checks::fingerprint_hash;

/// Validate an `IssueRequest` as the server does (for fuzzing and clients).
pub fn check_issue_request(r: pb::IssueRequest) -> Result<(), Error> {
    issue::IssueInput::try_from(r).map(|_| ())
}

/// Validate a `VerifyRequest` as the server does (for fuzzing and clients).
pub fn check_verify_request(r: pb::VerifyRequest) -> Result<(), Error> {
    verify::VerifyInput::try_from(r).map(|_| ())
}

/// The RFC 8705 thumbprint of the client certificate of an mTLS call.
fn peer_cert_thumbprint(extensions: &http::Extensions) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    certs
        .first()
        .map(|leaf| tessera_core::checks::cert_thumbprint(leaf.as_ref()))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::RevocationEvent, Status>> + Send>>;

use crate::error::failed;

#[tonic::async_trait]
impl<S: Store> pb::token_authority_server::TokenAuthority for Authority<S> {
    async fn issue(
        &self,
        request: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::IssueResponse>, Status> {
        let caller = crate::authority::caller::caller_name(request.extensions()).to_owned();
        let scope = crate::authority::scope::of(request.extensions());
        let result = self.issue(request.into_inner(), &caller, &scope).await;
        let response = result.map_err(|e| failed(Rpc::Issue, e))?;
        metrics::counter!(telemetry::TOKENS_ISSUED).increment(1);
        Ok(Response::new(response))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let caller = crate::authority::caller::caller_name(request.extensions()).to_owned();
        let (_, extensions, mut request) = request.into_parts();
        let scope = crate::authority::scope::of(&extensions);
        // A certificate-bound session's refresh: the thumbprint the caller
        // names, else that of the mTLS call's own certificate (as Verify).
        if request.cert_thumbprint.is_empty() {
            request.cert_thumbprint = peer_cert_thumbprint(&extensions).unwrap_or_default();
        }
        let had_proof = !request.dpop_proof.is_empty();
        let result = self.refresh_counted(request, &caller, &scope, None).await;
        let refreshed = result.map_err(|e| failed(Rpc::Refresh, e))?;
        Ok(self
            .with_dpop_nonce(had_proof, Response::new(refreshed.response))
            .await)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let (_, extensions, request) = request.into_parts();
        let caller = crate::authority::caller::caller_name(&extensions);
        let scope = crate::authority::scope::of(&extensions);
        let who = tenancy::Acting::new(Rpc::Verify, caller, &scope);
        let had_proof = !request.dpop_proof.is_empty();
        let result = self
            .verify(request, &who, || peer_cert_thumbprint(&extensions))
            .await;
        match &result {
            Ok(_) => telemetry::verify_ok(),
            Err(e) => metrics::counter!(telemetry::VERIFICATIONS, "outcome" => "rejected", "reason" => e.reason()).increment(1),
        }
        let (response, new_token) = result.map_err(|e| failed(Rpc::Verify, e))?;
        let mut response = Response::new(response);
        if let Some(token) = new_token {
            // Sliding renewal: the renewed token also travels as `x-new-token`.
            if let Ok(value) = token.parse() {
                response
                    .metadata_mut()
                    .insert(tessera_core::wire::NEW_TOKEN_HEADER, value);
            }
        }
        Ok(self.with_dpop_nonce(had_proof, response).await)
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let caller = crate::authority::caller::caller_name(request.extensions()).to_owned();
        let scope = crate::authority::scope::of(request.extensions());
        let who = tenancy::Acting::new(Rpc::Revoke, &caller, &scope);
        let result = self.revoke(request.into_inner(), &who).await;
        Ok(Response::new(result.map_err(|e| failed(Rpc::Revoke, e))?))
    }

    type WatchRevocationsStream = WatchStream;

    async fn watch_revocations(
        &self,
        request: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let caller = crate::authority::caller::caller_name(request.extensions()).to_owned();
        let scope = crate::authority::scope::of(request.extensions());
        let who = tenancy::Acting::new(Rpc::WatchRevocations, &caller, &scope);
        let result = self.watch(request.into_inner(), &who).await;
        Ok(Response::new(
            result.map_err(|e| failed(Rpc::WatchRevocations, e))?,
        ))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = crate::authority::caller::caller_name(request.extensions()).to_owned();
        let scope = crate::authority::scope::of(request.extensions());
        let who = tenancy::Acting::new(Rpc::ListSessions, &caller, &scope);
        let result = self.list_sessions(request.into_inner(), &who).await;
        Ok(Response::new(
            result.map_err(|e| failed(Rpc::ListSessions, e))?,
        ))
    }

    async fn exchange(
        &self,
        request: Request<pb::ExchangeRequest>,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        let (_, extensions, request) = request.into_parts();
        let caller = crate::authority::caller::caller_name(&extensions);
        let scope = crate::authority::scope::of(&extensions);
        let audiences = extensions
            .get::<crate::authority::caller::ExchangeAudiences>()
            .cloned()
            // The auth layer names them for every Exchange; without it, none.
            .unwrap_or_else(|| {
                crate::authority::caller::ExchangeAudiences::Only(Vec::new().into())
            });
        let result = self
            .exchange(request, (caller, &scope), &audiences, || {
                peer_cert_thumbprint(&extensions)
            })
            .await;
        Ok(Response::new(
            result.map_err(|e| failed(Rpc::Exchange, e))?.response,
        ))
    }

    async fn get_jwks(
        &self,
        request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let tenant = request.into_inner().tenant;
        let mut v = Violations::default();
        v.name("tenant", &tenant, false);
        v.finish().map_err(|e| failed(Rpc::GetJwks, e))?;
        let (jwks_json, issuer) = self.jwks_of(&tenant);
        Ok(Response::new(pb::GetJwksResponse { jwks_json, issuer }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_parse_strictly() {
        let t = RefreshToken::new(&random_b64::<16>());
        let parsed = RefreshToken::parse(&t.encode()).unwrap();
        assert_eq!(parsed.hash(), t.hash());
        assert!(RefreshToken::parse("garbage").is_none());
        assert!(RefreshToken::parse(&format!("{}x", t.encode())).is_none());
        assert!(RefreshToken::parse(&t.encode().replace('.', "!")).is_none());
    }

    #[test]
    fn only_the_predecessor_opens_the_sealed_successor() {
        let sid = random_b64::<16>();
        let old = RefreshToken::new(&sid);
        let new = RefreshToken::new(&sid);
        let sealed = old.seal(&new).unwrap();
        assert_eq!(old.open(&sealed).unwrap().secret, new.secret);
        assert!(RefreshToken::new(&sid).open(&sealed).is_none());
        assert!(!sealed.contains(&new.secret));
    }

    #[test]
    fn jti_is_deterministic_per_generation() {
        assert_eq!(derive_jti("s", 1, ""), derive_jti("s", 1, ""));
        assert_ne!(derive_jti("s", 1, ""), derive_jti("s", 2, ""));
        assert_ne!(derive_jti("s", 1, ""), derive_jti("t", 1, ""));
    }
}
