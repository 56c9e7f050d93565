//! The endpoints of the server API (`openapi.json` describes each).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tern_core::broker::ServiceOutcome;

use super::outbox::{Post, Posted};
use super::{status, ApiState};
use crate::http::error::{no_route, wrong_method};
use crate::http::{auth, ApiError, JsonBody, MaybeJson, PathU64, QueryArgs};

type St = State<Arc<ApiState>>;

/// The OpenAPI document, kept in the repository next to this file.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Longest token validity `POST /v1/tokens` issues: one year.
const MAX_TTL: u64 = 365 * 24 * 3600;

/// Every route; the `/v1` operations need a key.
pub fn router(state: Arc<ApiState>) -> Router {
    let keyed = Router::new()
        .route("/v1/tokens", post(tokens))
        .route("/v1/messages", post(messages))
        .route("/v1/users/{id}/presence", get(presence))
        .route("/v1/users/{id}/kick", post(kick))
        .route("/v1/users/{id}/inbox", get(inbox))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_key,
        ));
    Router::new()
        .route("/", get(status::page))
        .route("/v1/stats", get(status::stats))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(status::metrics))
        .route("/v1/openapi.json", get(openapi))
        .merge(keyed)
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

async fn require_key(State(s): St, req: Request, next: Next) -> Response {
    match auth::check(req.headers(), &s.cfg.api.keys) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the store is open and the broker loop (which serves the UDP and
/// QUIC listeners) answers.
async fn ready(State(s): St) -> Response {
    let answers = tokio::time::timeout(Duration::from_secs(2), s.bridge.ping())
        .await
        .unwrap_or(false);
    if answers {
        Json(json!({"ready": true})).into_response()
    } else {
        ApiError::unavailable("the broker loop does not answer").into_response()
    }
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenReq {
    user: u64,
    #[serde(default = "one")]
    device: u32,
    #[serde(default = "day")]
    ttl_s: u64,
}

fn one() -> u32 {
    1
}

fn day() -> u64 {
    24 * 3600
}

async fn tokens(
    State(s): St,
    JsonBody(r): JsonBody<TokenReq>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if r.user > tern_core::wire::varint::MAX {
        return Err(ApiError::field(
            "user",
            "must fit the protocol's 62-bit ids",
        ));
    }
    if (r.user, r.device) == (s.cfg.api.service_user, s.cfg.api.service_device) {
        return Err(ApiError::field(
            "device",
            "this is the service device, reserved for the API",
        ));
    }
    if r.ttl_s == 0 || r.ttl_s > MAX_TTL {
        return Err(ApiError::field(
            "ttl_s",
            format!("must be between 1 and {MAX_TTL}"),
        ));
    }
    let token = crate::server::issue_token(&s.cfg, r.user, r.device, r.ttl_s)
        .map_err(|e| ApiError::internal(format!("token secret: {e}")))?;
    let expires_ms = super::status::now_ms() + r.ttl_s * 1000;
    Ok(Json(
        json!({"token": token, "user": r.user, "device": r.device, "expires_ms": expires_ms}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageReq {
    to: u64,
    conv: u64,
    #[serde(rename = "type", default)]
    msg_type: u64,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    payload_b64: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    idempotency_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MessageQuery {
    /// How long to wait for durability (default 10 s).
    timeout_ms: Option<u64>,
}

const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

fn check_message(r: MessageReq, max_payload: usize) -> Result<Post, ApiError> {
    let max = tern_core::wire::varint::MAX;
    for (name, v) in [("to", r.to), ("conv", r.conv), ("type", r.msg_type)] {
        if v > max {
            return Err(ApiError::field(name, format!("must be at most {max}")));
        }
    }
    let payload: bytes::Bytes = match (r.text, r.payload_b64) {
        (Some(t), None) => t.into_bytes().into(),
        (None, Some(b)) => LENIENT
            .decode(b.as_bytes())
            .map_err(|e| ApiError::field("payload_b64", format!("not base64: {e}")))?
            .into(),
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "text",
                "give text or payload_b64, not both",
            ))
        }
        (None, None) => return Err(ApiError::field("text", "give text or payload_b64")),
    };
    if payload.len() > max_payload {
        return Err(ApiError::field(
            "text",
            format!("payload of {} bytes is over {max_payload}", payload.len()),
        ));
    }
    if let Some(k) = &r.idempotency_key {
        if k.is_empty() || k.chars().count() > 200 {
            return Err(ApiError::field(
                "idempotency_key",
                "must be 1 to 200 characters",
            ));
        }
    }
    let mut h = Sha256::new();
    for v in [r.to, r.conv, r.msg_type] {
        h.update(v.to_be_bytes());
    }
    h.update(&payload);
    Ok(Post {
        to: r.to,
        conv: r.conv,
        msg_type: r.msg_type,
        payload,
        key: r.idempotency_key,
        digest: hex::encode(h.finalize()),
    })
}

/// `POST /v1/messages`: 200 once durable, 202 if durability takes longer
/// than the wait (the message is logged and will be stored), 409 if the
/// broker refused it.
async fn messages(
    State(s): St,
    QueryArgs(q): QueryArgs<MessageQuery>,
    JsonBody(r): JsonBody<MessageReq>,
) -> Result<Response, ApiError> {
    let wait = match q.timeout_ms {
        Some(ms) if ms > 120_000 => {
            return Err(ApiError::field("timeout_ms", "must be at most 120000"))
        }
        Some(ms) => Duration::from_millis(ms),
        None => Duration::from_secs(10),
    };
    let post = check_message(r, s.cfg.limits.max_payload)?;
    let key = post.key.clone();
    let (seq, duplicate, outcome) = match s.log.post(post).await.map_err(ApiError::unavailable)? {
        Posted::Conflict => {
            return Err(ApiError::field(
                "idempotency_key",
                "this key was used for a different request",
            )
            .with_status(StatusCode::CONFLICT))
        }
        Posted::Logged {
            seq,
            duplicate,
            outcome,
        } => (seq, duplicate, outcome),
    };
    let base = json!({
        "from_user": s.cfg.api.service_user,
        "from_device": s.cfg.api.service_device,
        "seq": seq,
        "duplicate": duplicate,
        "idempotency_key": key,
    });
    let with = |status: &str, extra: serde_json::Value| {
        let mut v = base.clone();
        v["status"] = json!(status);
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    };
    Ok(match tokio::time::timeout(wait, outcome.0).await {
        Ok(Ok(ServiceOutcome::Stored { receiver_online })) => {
            Json(with("stored", json!({"receiver_online": receiver_online}))).into_response()
        }
        Ok(Ok(ServiceOutcome::Rejected { code })) => (
            StatusCode::CONFLICT,
            Json(with(
                "rejected",
                json!({"code": code, "error": crate::cli::error_code_name(code)}),
            )),
        )
            .into_response(),
        // Logged durably: it will be stored even if this answer comes first.
        _ => (StatusCode::ACCEPTED, Json(with("accepted", json!({})))).into_response(),
    })
}

async fn view(s: &ApiState, user: u64) -> Result<tern_core::broker::UserView, ApiError> {
    if user > tern_core::wire::varint::MAX {
        return Err(ApiError::field("id", "must fit the protocol's 62-bit ids"));
    }
    s.bridge
        .inspect(user)
        .await
        .ok_or_else(|| ApiError::unavailable("the broker loop has stopped"))?
        .map_err(|e| ApiError::unavailable(format!("store read failed: {e}")))
}

async fn presence(
    State(s): St,
    PathU64(user): PathU64,
) -> Result<Json<serde_json::Value>, ApiError> {
    let v = view(&s, user).await?;
    let devices: Vec<_> = v
        .devices
        .iter()
        .map(|d| {
            json!({
                "device": d.device,
                "online": d.online,
                "last_seen_ms": d.last_heard_ms.unwrap_or(d.last_login_ms),
                "last_login_ms": d.last_login_ms,
            })
        })
        .collect();
    Ok(Json(json!({
        "user": user,
        "online": v.devices.iter().any(|d| d.online),
        "devices": devices,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KickReq {
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    device: Option<u32>,
    #[serde(default)]
    reconnect: bool,
}

async fn kick(
    State(s): St,
    PathU64(user): PathU64,
    MaybeJson(r): MaybeJson<KickReq>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if user > tern_core::wire::varint::MAX {
        return Err(ApiError::field("id", "must fit the protocol's 62-bit ids"));
    }
    let n = s
        .bridge
        .kick(user, r.device, r.reconnect)
        .await
        .ok_or_else(|| ApiError::unavailable("the broker loop has stopped"))?;
    Ok(Json(json!({"user": user, "kicked": n})))
}

async fn inbox(State(s): St, PathU64(user): PathU64) -> Result<Json<serde_json::Value>, ApiError> {
    let v = view(&s, user).await?;
    let devices: Vec<_> = v
        .devices
        .iter()
        .map(|d| {
            json!({
                "device": d.device,
                "checkpoint": d.checkpoint,
                "backlog": v.head.saturating_sub(d.checkpoint),
                "applied": d.applied,
                "online": d.online,
            })
        })
        .collect();
    Ok(Json(json!({
        "user": user,
        "exists": v.exists,
        "epoch": v.epoch,
        "head": v.head,
        "trimmed": v.trimmed,
        "devices": devices,
    })))
}
