//! Login tokens: `(user, device, expiry)` signed with HMAC-SHA256.
//!
//! Layout (53 bytes): version `1` (u8), user (u64 BE), device (u32 BE), expiry
//! in Unix seconds (u64 BE), then the 32-byte MAC over those 21 bytes. Several
//! secrets may be accepted at once, so that a secret can be rotated without
//! logging everyone out.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

const TOKEN_VERSION: u8 = 1;
const BODY_LEN: usize = 21;
/// Length of an encoded token.
pub const TOKEN_LEN: usize = BODY_LEN + 32;

/// The identity a valid token proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// User id.
    pub user: u64,
    /// Device id.
    pub device: u32,
    /// Expiry, Unix seconds.
    pub expires: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Wrong length or version.
    #[error("token is malformed")]
    Malformed,
    /// No accepted secret produced this MAC.
    #[error("token signature is invalid")]
    BadSignature,
    /// The expiry has passed.
    #[error("token expired at {expired_at} (now {now})")]
    Expired {
        /// Token expiry.
        expired_at: u64,
        /// Current time.
        now: u64,
    },
}

/// Signs and checks tokens.
#[derive(Clone)]
pub struct TokenKeys {
    /// Secrets accepted; the first one signs.
    secrets: Vec<Vec<u8>>,
}

impl TokenKeys {
    /// Keys from the signing secret followed by older secrets still accepted.
    pub fn new(signing: Vec<u8>, also_accepted: Vec<Vec<u8>>) -> Self {
        let mut secrets = vec![signing];
        secrets.extend(also_accepted);
        TokenKeys { secrets }
    }

    fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
        m.update(body);
        m
    }

    /// Issues a token.
    pub fn sign(&self, claims: Claims) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOKEN_LEN);
        out.push(TOKEN_VERSION);
        out.extend_from_slice(&claims.user.to_be_bytes());
        out.extend_from_slice(&claims.device.to_be_bytes());
        out.extend_from_slice(&claims.expires.to_be_bytes());
        let tag = Self::mac(&self.secrets[0], &out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        out
    }

    /// Checks a token at wall-clock `now_secs`.
    pub fn verify(&self, token: &[u8], now_secs: u64) -> Result<Claims, TokenError> {
        if token.len() != TOKEN_LEN || token[0] != TOKEN_VERSION {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = token.split_at(BODY_LEN);
        if !self
            .secrets
            .iter()
            .any(|s| Self::mac(s, body).verify_slice(tag).is_ok())
        {
            return Err(TokenError::BadSignature);
        }
        let be64 = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        let claims = Claims {
            user: be64(&body[1..9]),
            device: u32::from_be_bytes(body[9..13].try_into().unwrap_or([0; 4])),
            expires: be64(&body[13..21]),
        };
        if claims.expires <= now_secs {
            return Err(TokenError::Expired {
                expired_at: claims.expires,
                now: now_secs,
            });
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            user: 42,
            device: 7,
            expires: 1000,
        }
    }

    #[test]
    fn signed_token_verifies() {
        let k = TokenKeys::new(b"secret".to_vec(), vec![]);
        let t = k.sign(claims());
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(k.verify(&t, 999), Ok(claims()));
    }

    #[test]
    fn expired_forged_and_malformed_are_refused() {
        let k = TokenKeys::new(b"secret".to_vec(), vec![]);
        let mut t = k.sign(claims());
        assert!(matches!(
            k.verify(&t, 1000),
            Err(TokenError::Expired { .. })
        ));
        t[3] ^= 1; // change the user id
        assert_eq!(k.verify(&t, 1), Err(TokenError::BadSignature));
        assert_eq!(k.verify(&t[..10], 1), Err(TokenError::Malformed));
    }

    #[test]
    fn rotation_accepts_old_and_new() {
        let old = TokenKeys::new(b"old".to_vec(), vec![]);
        let rotated = TokenKeys::new(b"new".to_vec(), vec![b"old".to_vec()]);
        assert!(rotated.verify(&old.sign(claims()), 1).is_ok());
        assert!(rotated.verify(&rotated.sign(claims()), 1).is_ok());
        assert!(old.verify(&rotated.sign(claims()), 1).is_err());
    }
}
