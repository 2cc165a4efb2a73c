//! DPoP (RFC 9449) for the RPCs that take a proof (Verify, Refresh,
//! Exchange, the token endpoint): proof checks, the store-wide replay set
//! and the server's nonces.

use crate::error::{Error, TokenError};
use crate::store::Store;
use crate::tokens;

use super::{random_b64, Authority};

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
}
