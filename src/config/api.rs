//! `[api]`: the server API on `ternd` (HTTP, off unless `listen` is set).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[api]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// TCP address of the HTTP server API, its status page and its
    /// `/metrics`; unset: off (the default). Port 0 picks one.
    pub listen: Option<SocketAddr>,
    /// API keys (at least 16 characters each); a request presents one as
    /// `Authorization: Bearer KEY` or `X-API-Key: KEY`. Required when
    /// `listen` is set. `TERN_API_KEYS` takes them comma-separated.
    pub keys: Vec<String>,
    /// The user that `POST /v1/messages` posts as.
    pub service_user: u64,
    /// ...and its device: reserved for the API (no token is issued for it,
    /// and a client logging in with it is logged out).
    pub service_device: u32,
    /// How long an idempotency key of `POST /v1/messages` is remembered.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: None,
            keys: Vec::new(),
            service_user: 1_000_000,
            service_device: 1,
            idempotency_window: Duration::from_secs(24 * 3600),
        }
    }
}

impl ApiSection {
    /// `TERN_API_LISTEN` (empty: off), `TERN_API_KEYS` (comma-separated),
    /// `TERN_API_SERVICE_USER`, `TERN_API_SERVICE_DEVICE`.
    pub fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let env = |var: &str, value: &str, reason: String| ConfigError::Env {
            var: var.into(),
            value: value.into(),
            reason,
        };
        if let Some(v) = get("TERN_API_LISTEN") {
            self.listen = if v.is_empty() {
                None
            } else {
                Some(v.parse().map_err(|e: std::net::AddrParseError| {
                    env("TERN_API_LISTEN", &v, e.to_string())
                })?)
            };
        }
        if let Some(v) = get("TERN_API_KEYS") {
            self.keys = v
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(v) = get("TERN_API_SERVICE_USER") {
            self.service_user = v.parse().map_err(|e: std::num::ParseIntError| {
                env("TERN_API_SERVICE_USER", &v, e.to_string())
            })?;
        }
        if let Some(v) = get("TERN_API_SERVICE_DEVICE") {
            self.service_device = v.parse().map_err(|e: std::num::ParseIntError| {
                env("TERN_API_SERVICE_DEVICE", &v, e.to_string())
            })?;
        }
        Ok(())
    }

    /// Keys are required with a listener, and long enough.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| {
            Err(ConfigError::Invalid {
                section: "api",
                key,
                reason: reason.into(),
            })
        };
        if self.listen.is_some() && self.keys.is_empty() {
            return bad(
                "keys",
                "at least one API key is required when listen is set",
            );
        }
        if self.keys.iter().any(|k| k.len() < 16) {
            return bad("keys", "each key must be at least 16 characters");
        }
        if self.service_user > tern_core::wire::varint::MAX {
            return bad("service_user", "must fit the protocol's 62-bit ids");
        }
        if self.idempotency_window < Duration::from_secs(60) {
            return bad("idempotency_window", "must be at least 1 minute");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_keys_required_and_from_env() {
        let mut a = ApiSection::default();
        assert_eq!(a.listen, None);
        a.validate().unwrap();
        a.apply_env(&|k| match k {
            "TERN_API_LISTEN" => Some("127.0.0.1:0".into()),
            _ => None,
        })
        .unwrap();
        assert!(a.validate().unwrap_err().to_string().contains("keys"));
        a.apply_env(&|k| (k == "TERN_API_KEYS").then(|| "0123456789abcdef, short".into()))
            .unwrap();
        assert_eq!(a.keys.len(), 2);
        assert!(a.validate().is_err(), "a short key is refused");
        a.keys.pop();
        a.validate().unwrap();
    }
}
