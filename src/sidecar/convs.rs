//! Conversations over the local API (protocol version 2): the list with
//! unread counts and previews, history pages served from the sidecar's
//! local history, posting into a conversation and moving the read position
//! (both through the durable outbox, with idempotency keys, like
//! `POST /v1/messages`).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tern_core::wire::{ConvRef, ListItem, Record, RecordBody};

use super::api::{accepted, check_key, id_field, payload, MemberView, WaitQuery};
use super::records::Kind;
use super::routes::{client_error, operation};
use super::Shared;
use crate::client::{ClientError, Outgoing};
use crate::http::{ApiError, JsonBody, QueryArgs};

type St = State<Arc<Shared>>;

/// Longest preview asked of the server, in bytes.
const MAX_PREVIEW: u8 = 64;
/// Most records in one history page (the protocol's limit).
const MAX_PAGE: u64 = 64;

/// The `{conv}` of the path: `d:USER`, `g:ID`, `s:ID` or a bare user id.
pub struct ConvPath(pub ConvRef);

impl<S: Send + Sync> FromRequestParts<S> for ConvPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw): Path<String> = Path::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::field("conv", e.body_text()))?;
        raw.parse::<ConvRef>().map(ConvPath).map_err(|e| {
            ApiError::field(
                "conv",
                format!("{raw:?}: {e} (d:USER, g:ID, s:ID or a user id)"),
            )
        })
    }
}

fn conv_error(e: ClientError) -> ApiError {
    match e {
        ClientError::NotSupported => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "the server speaks only protocol version 1: no conversations or history",
        ),
        ClientError::Rejected(code) => ApiError::new(
            StatusCode::CONFLICT,
            format!("the server refused the request (error {code})"),
        ),
        other => client_error(other),
    }
}

/// `GET /v1/conversations`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Changes since this list version (0: the whole list). Absent: since
    /// the version this sidecar saved last.
    since: Option<u64>,
    /// Preview bytes of each newest message (default 32, at most 64).
    preview: Option<u8>,
    /// `true`: the list as stored by the last fetch, without asking the
    /// server (`since` is then ignored).
    #[serde(default)]
    local: bool,
}

fn item_view(i: &ListItem) -> Value {
    let last = i.preview.as_ref().map(|p| {
        json!({
            "from_user": p.from_user,
            "age_s": p.age_s,
            "type": p.msg_type,
            "recalled": p.recalled,
            "text": std::str::from_utf8(&p.head).ok(),
            "head_b64": base64::engine::general_purpose::STANDARD.encode(&p.head),
        })
    });
    json!({
        "conversation": i.conv.to_string(),
        "version": i.version,
        "hidden": i.hidden,
        "unread": i.unread,
        "last_seq": i.last_seq,
        "read_seq": i.read_seq,
        "first_unread": (i.unread > 0).then(|| i.read_seq.max(i.cleared_to) + 1),
        "cleared_to": i.cleared_to,
        "last": last,
    })
}

pub async fn list(
    State(s): St,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let preview = q.preview.unwrap_or(32);
    if preview > MAX_PREVIEW {
        return Err(ApiError::field("preview", "must be at most 64"));
    }
    if q.local {
        let l = s.handle.stored_conversations().await.map_err(conv_error)?;
        return Ok(Json(json!({
            "list_version": l.list_version,
            "conversations": l.items.iter().map(item_view).collect::<Vec<_>>(),
        })));
    }
    let fetched = match q.since {
        Some(v) => s.handle.conversations(id_field("since", v)?, preview),
        None => {
            return sync(&s, preview).await;
        }
    };
    let l = timed(fetched).await?;
    Ok(Json(json!({
        "list_version": l.list_version,
        "total_unread": l.total_unread,
        "pages": l.pages,
        "conversations": l.items.iter().map(item_view).collect::<Vec<_>>(),
    })))
}

async fn sync(s: &Shared, preview: u8) -> Result<Json<Value>, ApiError> {
    let l = timed(s.handle.sync_conversations(preview)).await?;
    Ok(Json(json!({
        "list_version": l.list_version,
        "total_unread": l.total_unread,
        "pages": l.pages,
        "conversations": l.items.iter().map(item_view).collect::<Vec<_>>(),
    })))
}

/// The server's answer within 10 s, or 504.
async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(std::time::Duration::from_secs(10), f)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "no answer from the server in time",
            )
        })?
        .map_err(conv_error)
}

/// `GET /v1/conversations/{conv}/history`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Records below this `conv_seq` (0 or absent: the newest).
    #[serde(default)]
    before: u64,
    /// At most this many (1 to 64, default 50).
    max: Option<u64>,
}

fn record_view(r: &Record) -> Value {
    let mut v = json!({
        "conv_seq": r.conv_seq,
        "topic": r.topic,
        "from_user": r.from_user,
        "from_device": r.from_device,
        "from_seq": r.from_seq,
        "time_ms": r.time_ms,
    });
    match &r.body {
        RecordBody::Message { msg_type, payload } => {
            v["kind"] = json!("message");
            v["type"] = json!(msg_type);
            v["text"] = json!(std::str::from_utf8(payload).ok());
            v["payload_b64"] = json!(base64::engine::general_purpose::STANDARD.encode(payload));
        }
        RecordBody::Recalled { msg_type } => {
            v["kind"] = json!("recalled");
            v["type"] = json!(msg_type);
        }
        RecordBody::Member(e) => {
            v["kind"] = json!("member");
            v["member"] = json!(MemberView::of(e));
        }
    }
    v
}

pub async fn history(
    State(s): St,
    ConvPath(conv): ConvPath,
    QueryArgs(q): QueryArgs<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let max = q.max.unwrap_or(50);
    if max == 0 || max > MAX_PAGE {
        return Err(ApiError::field("max", "must be 1 to 64"));
    }
    let page = timed(s.handle.history(conv, id_field("before", q.before)?, max)).await?;
    Ok(Json(json!({
        "conversation": conv.to_string(),
        "low": page.end.low,
        "high": page.end.high,
        "floor": page.end.floor,
        "records": page.records.iter().map(record_view).collect::<Vec<_>>(),
    })))
}

/// `POST /v1/conversations/{conv}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostReq {
    /// The application's tag (version 1's `conv`; 0 by default).
    #[serde(default)]
    topic: u64,
    /// Application message type (0: UTF-8 text by convention).
    #[serde(rename = "type", default)]
    msg_type: u64,
    /// The payload as text...
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    text: Option<String>,
    /// ...or as base64 bytes (exactly one of the two).
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    payload_b64: Option<String>,
    /// Posts at most once per key, across restarts.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    idempotency_key: Option<String>,
}

pub async fn post_message(
    State(s): St,
    ConvPath(conv): ConvPath,
    QueryArgs(q): QueryArgs<WaitQuery>,
    JsonBody(req): JsonBody<PostReq>,
) -> Result<Response, ApiError> {
    let payload = payload(
        req.text,
        req.payload_b64,
        req.msg_type,
        tern_core::wire::limits::MAX_PAYLOAD,
    )?;
    check_key(&req.idempotency_key)?;
    let op = Outgoing::Post {
        conv,
        topic: id_field("topic", req.topic)?,
        msg_type: id_field("type", req.msg_type)?,
        payload,
    };
    operation(s, accepted(op, Kind::Post, req.idempotency_key), q).await
}

/// `POST /v1/conversations/{conv}/read`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkReq {
    /// The newest `conv_seq` read.
    up_to: u64,
    /// With `receipt_seq`: the device and uplink sequence of the other
    /// user's newest message read, for a READ receipt to them.
    #[serde(default)]
    receipt_device: u32,
    /// See `receipt_device` (0: no receipt).
    #[serde(default)]
    receipt_seq: u64,
    /// As for messages.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    idempotency_key: Option<String>,
}

pub async fn mark_read(
    State(s): St,
    ConvPath(conv): ConvPath,
    QueryArgs(q): QueryArgs<WaitQuery>,
    JsonBody(req): JsonBody<MarkReq>,
) -> Result<Response, ApiError> {
    check_key(&req.idempotency_key)?;
    if req.up_to == 0 {
        return Err(ApiError::field("up_to", "must be positive"));
    }
    let op = Outgoing::MarkRead {
        conv,
        up_to: id_field("up_to", req.up_to)?,
        receipt_device: req.receipt_device,
        receipt_seq: id_field("receipt_seq", req.receipt_seq)?,
    };
    operation(s, accepted(op, Kind::Mark, req.idempotency_key), q).await
}
