//! Secrets and ids: random session ids and refresh secrets, the
//! deterministic `jti` of each generation, and the refresh token format with
//! the sealing of a successor for the grace window.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::tokens;

pub use crate::store::random_b64;

/// The `jti` of generation `generation` of a session (renewals add a salt).
/// Deterministic so that a grace-window retry re-mints the very same token.
pub(crate) fn derive_jti(sid: &str, generation: u64, salt: &str) -> String {
    let digest = Sha256::digest(format!("tessera-jti\0{sid}\0{generation}\0{salt}").as_bytes());
    B64.encode(&digest[..16])
}

/// A refresh token is `<session id>.<secret>`: the id finds the session in one
/// lookup, the secret (256 bits) proves possession and is stored only hashed.
pub(crate) struct RefreshToken {
    pub sid: String,
    pub secret: String,
}

impl RefreshToken {
    pub fn new(sid: &str) -> Self {
        RefreshToken {
            sid: sid.to_owned(),
            secret: random_b64::<32>(),
        }
    }

    pub fn parse(token: &str) -> Option<Self> {
        let (sid, secret) = token.split_once('.')?;
        let ok = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (ok(sid, 22) && ok(secret, 43)).then(|| RefreshToken {
            sid: sid.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn hash(&self) -> String {
        tokens::sha256_b64(self.secret.as_bytes())
    }

    pub fn encode(&self) -> String {
        format!("{}.{}", self.sid, self.secret)
    }

    fn seal_key(&self) -> Result<LessSafeKey, Error> {
        // A different derivation from the stored hash: the store alone cannot
        // open what it keeps for the grace window.
        let key = Sha256::digest(format!("tessera-grace-seal\0{}", self.secret).as_bytes());
        UnboundKey::new(&AES_256_GCM, &key)
            .map(LessSafeKey::new)
            .map_err(|_| Error::Internal("seal key".into()))
    }

    /// Seal the successor's secret under a key derived from this token.
    pub fn seal(&self, successor: &RefreshToken) -> Result<String, Error> {
        let key = self.seal_key()?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut buf = successor.secret.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.sid.as_bytes()),
            &mut buf,
        )
        .map_err(|_| Error::Internal("seal".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(B64.encode(out))
    }

    /// Open what [`seal`](Self::seal) produced; only the predecessor can.
    pub fn open(&self, sealed: &str) -> Option<RefreshToken> {
        let key = self.seal_key().ok()?;
        let mut raw = B64.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let mut body = raw.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&raw).ok()?;
        let plain = key
            .open_in_place(nonce, Aad::from(self.sid.as_bytes()), &mut body)
            .ok()?;
        let secret = String::from_utf8(plain.to_vec()).ok()?;
        Some(RefreshToken {
            sid: self.sid.clone(),
            secret,
        })
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
