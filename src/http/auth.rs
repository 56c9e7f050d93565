//! Bearer tokens and API keys, compared in constant time.

use axum::http::{HeaderMap, StatusCode};

use super::ApiError;

/// Equal without an early exit on the first differing byte (the length is
/// not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credential a request carries: `Authorization: Bearer X` or, for
/// the server API's Centrifugo-style clients, `X-API-Key: X`.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Accepts the request if it presents one of `keys`.
pub fn check(headers: &HeaderMap, keys: &[String]) -> Result<(), ApiError> {
    let Some(given) = presented(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing credentials: send Authorization: Bearer <key>",
        )
        .with_field("authorization"));
    };
    if keys
        .iter()
        .any(|k| constant_time_eq(k.as_bytes(), given.as_bytes()))
    {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "unknown key").with_field("authorization"))
    }
}

impl ApiError {
    /// Names the field (here: a header).
    pub fn with_field(mut self, field: &str) -> ApiError {
        self.field = Some(field.to_string());
        self
    }
}
