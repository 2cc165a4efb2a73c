//! Minting shared by the RPCs that hand out access tokens (Issue, Refresh,
//! Verify's renewal, Exchange): a session's claims, signing with the
//! tenant's key, the response pair, and the tenant's public keys.

use crate::error::{Error, TokenError};
use crate::pb;
use crate::store::{SessionData, Store};
use crate::tokens::{self, AccessClaims, Confirmation};

use super::convert::{timestamp_ms, timestamp_s};
use super::{Authority, Policy, RefreshToken};

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
