//! The endpoints of the local API (`openapi.json` describes each).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use super::api::{Accepted, AckReq, OpView, ReadReq, RecallReq, SendReq, Wait, WaitQuery};
use super::events::AckError;
use super::records::{Kind, Known, Record, Tag};
use super::{convs, group_pages, groups, metrics, stream, Shared};
use crate::client::{ClientError, KeyedState, Settled};
use crate::http::error::{no_route, wrong_method};
use crate::http::{ApiError, JsonBody, PathU64, QueryArgs};

type St = State<Arc<Shared>>;

/// The OpenAPI document, kept in the repository next to this file.
pub const OPENAPI: &str = include_str!("openapi.json");

const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const MAX_WAIT: Duration = Duration::from_secs(120);

/// Every route; anything else is a JSON 404 or 405.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics::render))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/status", get(status))
        .route("/v1/messages", post(send))
        .route("/v1/messages/{id}", get(message))
        .route("/v1/read", post(read))
        .route("/v1/recall", post(recall))
        .route("/v1/events", get(stream::sse))
        .route("/v1/events/ws", get(stream::websocket))
        .route("/v1/events/ack", post(ack))
        .route("/v1/summary", get(summary))
        .route("/v1/pull", post(pull))
        .route("/v1/conversations", get(convs::list))
        .route("/v1/conversations/{conv}/history", get(convs::history))
        .route(
            "/v1/conversations/{conv}/messages",
            post(convs::post_message),
        )
        .route("/v1/conversations/{conv}/read", post(convs::mark_read))
        .route("/v1/groups", post(groups::create))
        .route(
            "/v1/groups/{group}/members",
            post(groups::add).get(group_pages::members),
        )
        .route("/v1/groups/{group}/members/{user}", delete(groups::remove))
        .route("/v1/groups/{group}/leave", post(groups::leave))
        .route("/v1/groups/{group}/roles", post(groups::set_role))
        .route("/v1/groups/{group}/readers", get(group_pages::readers))
        .route(
            "/v1/groups/{group}/read-counts",
            get(group_pages::read_counts),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(shared)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn status(State(s): St) -> Json<serde_json::Value> {
    let link = s.link().clone();
    let p = s.events.positions();
    let outbox = s.records().pending();
    let (user, device) = match s.identity() {
        Some((u, d)) => (json!(u), json!(d)),
        None => (serde_json::Value::Null, serde_json::Value::Null),
    };
    Json(json!({
        "user": user,
        "device": device,
        "server": s.server,
        "connected": link.connected,
        "logins": link.logins,
        "last_error": link.last_error,
        "outbox_depth": outbox,
        "events": {
            "acked": p.acked,
            "last": p.last,
            "buffered": p.buffered,
            "resets": p.resets,
        },
    }))
}

pub(super) fn client_error(e: ClientError) -> ApiError {
    match e {
        ClientError::QueueFull => ApiError::unavailable(
            "the outbox is full (4096 operations waiting for the server); retry with the same idempotency key",
        ),
        ClientError::Stopped | ClientError::Closed(_) => {
            ApiError::unavailable("the client has stopped (session closed by the server)")
        }
        other => ApiError::internal(format!("outbox: {other}")),
    }
}

/// Puts a checked operation in the durable outbox, or finds the earlier
/// one with the same idempotency key. Returns its record and whether it is
/// a repeat.
pub(super) async fn accept(s: &Shared, a: Accepted) -> Result<(Record, bool), ApiError> {
    let _gate = match &a.key {
        Some(_) => Some(s.keyed_gate.lock().await),
        None => None,
    };
    if let Some(k) = &a.key {
        match s.records().lookup(k, &a.digest) {
            Known::New => {}
            Known::Same(r) => {
                s.counters.duplicate();
                return Ok((r, true));
            }
            Known::Conflict => {
                return Err(ApiError::field(
                    "idempotency_key",
                    "this key was used for a different request",
                )
                .with_status(StatusCode::CONFLICT))
            }
        }
    }
    let tag = Tag {
        key: a.key,
        digest: a.digest,
        accepted_ms: metrics::now_ms(),
        kind: a.kind,
    };
    let id = s
        .handle
        .submit_keyed(a.op, tag.encode())
        .await
        .map_err(|e| {
            s.note_error(&e);
            client_error(e)
        })?;
    let rec = Record {
        id,
        tag,
        state: KeyedState::Pending { seq: 0 },
    };
    s.records().insert(rec.clone());
    s.counters.accepted();
    let rec = s.records().get(id).cloned().unwrap_or(rec);
    Ok((rec, false))
}

/// 202 (what was asked for is "in the outbox", or a wait ran out; the body
/// says where it stands, possibly further), or 409 if the server refused it.
fn answer(s: &Shared, r: &Record, duplicate: bool) -> Response {
    let view = OpView::of(r, s.events.delivered_up_to(), duplicate);
    let code = match view.status {
        "rejected" => StatusCode::CONFLICT,
        _ => StatusCode::ACCEPTED,
    };
    (code, Json(view)).into_response()
}

/// `timeout_ms` checked: at most 120 s, 10 s when absent.
pub(super) fn wait_limit(timeout_ms: Option<u64>) -> Result<Duration, ApiError> {
    match timeout_ms {
        Some(ms) if ms > MAX_WAIT.as_millis() as u64 => {
            Err(ApiError::field("timeout_ms", "must be at most 120000"))
        }
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Ok(DEFAULT_WAIT),
    }
}

/// Accepts, then waits as asked (never failing a request whose operation
/// is durably queued: a wait that runs out answers 202 with the state).
pub(super) async fn operation(
    s: Arc<Shared>,
    a: Accepted,
    q: WaitQuery,
) -> Result<Response, ApiError> {
    let limit = wait_limit(q.timeout_ms)?;
    let (rec, dup) = accept(&s, a).await?;
    if q.wait == Wait::Queued {
        return Ok(answer(&s, &rec, dup));
    }
    let deadline = tokio::time::Instant::now() + limit;
    let settled = s.records().wait(rec.id);
    let current = |s: &Shared| s.records().get(rec.id).cloned().unwrap_or(rec.clone());
    let Ok(Ok(outcome)) = tokio::time::timeout_at(deadline, settled).await else {
        return Ok(answer(&s, &current(&s), dup));
    };
    let mut delivered = s.events.delivered_up_to();
    if let (Wait::Delivered, Settled::Stored { seq, .. }) = (q.wait, outcome) {
        let waited = tokio::time::timeout_at(deadline, s.handle.wait_delivered(seq)).await;
        if matches!(waited, Ok(Ok(()))) && rec.tag.kind == Kind::Message {
            // The receipt may not have reached the event buffer yet.
            delivered = delivered.max(seq);
        }
    }
    let view = OpView::of(&current(&s), delivered, dup);
    let code = if view.status == "rejected" {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok((code, Json(view)).into_response())
}

async fn send(
    State(s): St,
    QueryArgs(q): QueryArgs<WaitQuery>,
    JsonBody(req): JsonBody<SendReq>,
) -> Result<Response, ApiError> {
    let a = req.check(tern_core::wire::limits::MAX_PAYLOAD)?;
    operation(s, a, q).await
}

async fn read(
    State(s): St,
    QueryArgs(q): QueryArgs<WaitQuery>,
    JsonBody(req): JsonBody<ReadReq>,
) -> Result<Response, ApiError> {
    operation(s, req.check()?, q).await
}

async fn recall(
    State(s): St,
    QueryArgs(q): QueryArgs<WaitQuery>,
    JsonBody(req): JsonBody<RecallReq>,
) -> Result<Response, ApiError> {
    operation(s, req.check()?, q).await
}

async fn message(State(s): St, PathU64(id): PathU64) -> Result<Response, ApiError> {
    if id > super::api::MAX_ID {
        return Err(ApiError::field("id", "beyond the protocol's 62-bit ids"));
    }
    let rec = s.records().get(id).cloned();
    match rec {
        Some(r) => Ok(answer_get(&s, &r)),
        None => Err(ApiError::not_found(format!(
            "no operation {id} (never accepted, or forgotten after the keeping window)"
        ))),
    }
}

/// `GET` always answers 200: the state is in the body.
fn answer_get(s: &Shared, r: &Record) -> Response {
    Json(OpView::of(r, s.events.delivered_up_to(), false)).into_response()
}

async fn ack(State(s): St, JsonBody(req): JsonBody<AckReq>) -> Result<Response, ApiError> {
    if req.up_to > super::api::MAX_ID {
        return Err(ApiError::field(
            "up_to",
            "beyond the protocol's 62-bit positions",
        ));
    }
    ack_up_to(&s, req.up_to).await?;
    Ok(Json(json!({"acked": s.events.acked()})).into_response())
}

/// Releases everything up to `up_to` to the server (shared with the
/// WebSocket's `{"ack": N}`).
pub(super) async fn ack_up_to(s: &Shared, up_to: u64) -> Result<(), ApiError> {
    match s.events.ack(up_to) {
        Ok(Some(n)) => {
            s.counters.acked(n);
            // Answered once the checkpoint is durable: a sidecar killed
            // after this answer does not deliver these events again. (An
            // acknowledgement ahead of redelivery after a restart is made
            // durable when the entries arrive; it is not waited for long.)
            let durable = s.handle.release_durable(n);
            match tokio::time::timeout(Duration::from_secs(2), durable).await {
                Ok(r) => r.map_err(client_error),
                Err(_) => Ok(()),
            }
        }
        Ok(None) => Ok(()),
        Err(AckError::Beyond { last }) => Err(ApiError::field(
            "up_to",
            format!("beyond the last event delivered ({last})"),
        )
        .with_status(StatusCode::CONFLICT)),
    }
}

async fn summary(State(s): St) -> Result<Json<serde_json::Value>, ApiError> {
    let (convs, end) = tokio::time::timeout(DEFAULT_WAIT, s.handle.summary())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "no summary from the server in time",
            )
        })?
        .map_err(client_error)?;
    let convs: Vec<_> = convs
        .iter()
        .map(|c| {
            json!({
                "conv": c.conv,
                "unread": c.unread,
                "first_unread_seq": c.first_unread_seq,
                "first_unread_time_ms": c.first_unread_time_ms,
                "last_seq": c.last_seq,
            })
        })
        .collect();
    Ok(Json(json!({
        "conversations": convs,
        "conv_count": end.conv_count,
        "unread": end.total_unread,
        "head": end.head,
    })))
}

async fn pull(State(s): St) -> Result<Response, ApiError> {
    s.handle.pull().await.map_err(client_error)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"pulling": true}))).into_response())
}
