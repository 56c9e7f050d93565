//! Request extractors that never answer in plain text and never read an
//! oversized body: JSON bodies and query strings decoded with the path of
//! the field at fault, and numeric path parameters.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Largest request body either API reads, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// For `#[serde(default, deserialize_with = "present")]` on an optional
/// field: absent is `None`, but an explicit `null` is refused like any
/// other wrong type (the documents say these fields are strings or
/// integers, never null).
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

/// A JSON request body of type `T`, or `T::default()` for an empty body.
pub struct MaybeJson<T>(pub T);

/// A query string of type `T` (absent means empty).
pub struct QueryArgs<T>(pub T);

/// The `{id}` path parameter as a positive integer.
pub struct PathU64(pub u64);

/// The field a serde error names: the path if it has one, else the name
/// in backticks of "missing field `x`" / "unknown field `x`".
fn field_of(path: &str, message: &str) -> Option<String> {
    if !path.is_empty() && path != "." {
        return Some(path.to_string());
    }
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

/// Decodes a JSON object, naming the field at fault. (Serde would also
/// take an array for a struct, by position; requests are objects only.)
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::field("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if !e.inner().is_data() {
            // Not JSON at all (syntax, truncated): no field is at fault.
            return ApiError::field("body", format!("not valid JSON: {message}"));
        }
        match field_of(&path, &message) {
            Some(f) => ApiError::field(f, message),
            None => ApiError::field(
                "body",
                format!("not valid JSON for this request: {message}"),
            ),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::field("body", format!("trailing data after the JSON value: {e}")))?;
    Ok(value)
}

/// Reads a body of at most `limit` bytes: a declared length over it is
/// refused before anything is read, an undeclared one as soon as it
/// passes the limit.
pub async fn read_body(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::field("body", format!("request body larger than {limit} bytes"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::field("content-length", "not a number"))?;
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let body: Body = req.into_body();
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` stops at the limit; anything else is a broken stream.
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::field("body", format!("could not read the body: {e}"))
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, MAX_BODY).await?;
        if bytes.is_empty() {
            return Err(ApiError::field("body", "a JSON object is required"));
        }
        decode_json(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, MAX_BODY).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(T::default()));
        }
        decode_json(&bytes).map(MaybeJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryArgs)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.inner().to_string();
                ApiError::field(
                    field_of(&path, &message).unwrap_or_else(|| "query".into()),
                    message,
                )
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathU64 {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw): axum::extract::Path<String> =
            axum::extract::Path::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::field("id", e.body_text()))?;
        raw.parse::<u64>()
            .ok()
            .filter(|v| *v > 0)
            .map(PathU64)
            .ok_or_else(|| ApiError::field("id", format!("{raw:?} is not a positive integer")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        to: u64,
        inner: Option<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let e = decode_json::<Req>(br#"{"to": "x"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("to"));
        let e = decode_json::<Req>(br#"{}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("to"));
        let e = decode_json::<Req>(br#"{"to": 1, "bogus": 2}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("bogus"));
        let e = decode_json::<Req>(br#"{"to": 1, "inner": {"n": -1}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.n"));
        let e = decode_json::<Req>(br#"[1,2"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body"));
        let e = decode_json::<Req>(br#"{"to": 1"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body"));
        let e = decode_json::<Req>(br#"{"to": 1} {"to": 2}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body"));
        assert_eq!(decode_json::<Req>(br#"{"to": 7}"#).unwrap().to, 7);
    }
}
