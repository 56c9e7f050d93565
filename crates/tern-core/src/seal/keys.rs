//! Static X25519 key pairs and their text form.
//!
//! The server has one static key pair; clients pin its public key (like an
//! SSH host key). Its text form is `tern-x25519:` followed by 64 hex digits.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use thiserror::Error;

use super::KEY_LEN;

/// Text prefix of a public key.
const PREFIX: &str = "tern-x25519:";

/// A public key as clients pin it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

/// A static key pair (the server's identity).
#[derive(Clone)]
pub struct StaticKey {
    secret: [u8; KEY_LEN],
    public: PublicKey,
}

/// A key's text form could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a Tern X25519 key (want `{PREFIX}` and 64 hex digits): {0:?}")]
pub struct KeyParseError(pub String);

impl StaticKey {
    /// A key pair from its 32 secret bytes (clamping is done by X25519 itself).
    pub fn from_secret(secret: [u8; KEY_LEN]) -> StaticKey {
        let public = derive_public(&secret);
        StaticKey { secret, public }
    }

    /// A fresh key pair from `rng` (give it a CSPRNG).
    pub fn generate(rng: &mut impl RngCore) -> StaticKey {
        let mut secret = [0u8; KEY_LEN];
        rng.fill_bytes(&mut secret);
        StaticKey::from_secret(secret)
    }

    /// The secret bytes, to store.
    pub fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

fn derive_public(secret: &[u8; KEY_LEN]) -> PublicKey {
    // The default resolver always provides X25519 (feature `use-curve25519`).
    let mut dh = DefaultResolver
        .resolve_dh(&DHChoice::Curve25519)
        .expect("X25519 is compiled in");
    dh.set(secret);
    let mut public = [0u8; KEY_LEN];
    public.copy_from_slice(&dh.pubkey()[..KEY_LEN]);
    PublicKey(public)
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublicKey {
    type Err = KeyParseError;

    /// Reads `tern-x25519:<64 hex>`; the prefix may be left out.
    fn from_str(s: &str) -> Result<PublicKey, KeyParseError> {
        let err = || KeyParseError(s.chars().take(80).collect());
        let hex = s.trim().strip_prefix(PREFIX).unwrap_or(s.trim());
        if hex.len() != 2 * KEY_LEN || !hex.is_ascii() {
            return Err(err());
        }
        let mut out = [0u8; KEY_LEN];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| err())?;
        }
        Ok(PublicKey(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_rejects_junk() {
        let k = StaticKey::from_secret([7; 32]);
        let text = k.public().to_string();
        assert!(text.starts_with(PREFIX));
        assert_eq!(text.parse::<PublicKey>().unwrap(), k.public());
        assert_eq!(
            text[PREFIX.len()..].parse::<PublicKey>().unwrap(),
            k.public()
        );
        for bad in [
            "",
            "tern-x25519:",
            "tern-x25519:zz",
            &text[..text.len() - 1],
        ] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad:?}");
        }
        assert!(
            "tern-x25519:é0000000000000000000000000000000000000000000000000000000000000"
                .parse::<PublicKey>()
                .is_err()
        );
    }

    #[test]
    fn public_key_matches_rfc7748_vector() {
        // RFC 7748 section 6.1, Alice's key pair.
        let secret = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(StaticKey::from_secret(secret).public().0, public);
    }

    fn hex32(s: &str) -> [u8; 32] {
        s.parse::<PublicKey>().unwrap().0
    }
}
