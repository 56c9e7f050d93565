//! The token signing secret: kept in a file in the data folder, created with
//! 32 random bytes on first start, readable only by its owner.

use std::io::Write;
use std::path::{Path, PathBuf};

use tern_core::auth::{Claims, TokenKeys};
use tern_core::seal::StaticKey;
use thiserror::Error;

use crate::config::Config;

/// Why the secret could not be loaded or created.
#[derive(Debug, Error)]
pub enum SecretError {
    /// Reading or writing the file failed.
    #[error("token secret {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not hold a hex secret of the right size (at least 16
    /// bytes for the token secret, exactly 32 for the seal key).
    #[error("secret file {path} is not hex of the right length (token secret: at least 16 bytes, seal key: 32)")]
    Invalid {
        /// The file.
        path: PathBuf,
    },
}

fn read_secret(path: &Path) -> Result<Option<Vec<u8>>, SecretError> {
    match std::fs::read_to_string(path) {
        Ok(text) => match hex::decode(text.trim()) {
            Ok(b) if b.len() >= 16 => Ok(Some(b)),
            _ => Err(SecretError::Invalid { path: path.into() }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn create_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    let io = |source| SecretError::Io {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let secret: [u8; 32] = rand::random();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(hex::encode(secret).as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(secret.to_vec())
}

/// The server's static seal key: the key file (created with 32 random bytes
/// if missing), or `None` when the seal policy is `off`.
pub fn load_seal_key(cfg: &Config) -> Result<Option<StaticKey>, SecretError> {
    if cfg.seal.policy == crate::config::SealPolicyName::Off {
        return Ok(None);
    }
    let path = cfg.seal_key_path();
    let secret = match read_secret(&path)? {
        Some(s) => s,
        None => create_secret(&path)?,
    };
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| SecretError::Invalid { path: path.clone() })?;
    Ok(Some(StaticKey::from_secret(secret)))
}

/// The key of address tokens (`proto-spec/address-tokens.md`), derived
/// from the token secret file (created if missing): the same on every
/// start, so a token handed out before a restart still spares its client a
/// RETRY after it, and a new secret retires every token.
pub fn load_address_token_key(cfg: &Config) -> Result<[u8; 32], SecretError> {
    use hmac::{Hmac, Mac};
    let path = cfg.secret_path();
    let secret = match read_secret(&path)? {
        Some(s) => s,
        None => create_secret(&path)?,
    };
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret).expect("any key length");
    m.update(b"tern address token key v1");
    Ok(m.finalize().into_bytes().into())
}

/// The keys in effect: the secret file (created if missing) plus the
/// previous secrets from the config.
pub fn load_keys(cfg: &Config) -> Result<TokenKeys, SecretError> {
    let path = cfg.secret_path();
    let secret = match read_secret(&path)? {
        Some(s) => s,
        None => create_secret(&path)?,
    };
    let previous = cfg
        .auth
        .previous_secrets
        .iter()
        .filter_map(|s| hex::decode(s).ok())
        .collect();
    Ok(TokenKeys::new(secret, previous))
}

/// Issues a hex token for `user`/`device`, valid for `ttl` seconds.
pub fn issue_token(
    cfg: &Config,
    user: u64,
    device: u32,
    ttl_secs: u64,
) -> Result<String, SecretError> {
    let keys = load_keys(cfg)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(hex::encode(keys.sign(Claims {
        user,
        device,
        expires: now.saturating_add(ttl_secs),
    })))
}
