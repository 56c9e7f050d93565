//! Groups over the local API (`proto-spec/groups.md`), as `tern group`
//! does them, through the client library:
//! - create, add, remove and leave are keyed operations of the durable
//!   outbox like `POST /v1/messages` (idempotency keys, `?wait=`); the
//!   server applies each exactly once, in uplink order, and refuses one
//!   for good with a protocol code (409, `status: rejected`);
//! - creating also waits for the group's id, which the creating device
//!   learns from its own "created" entry;
//! - member pages, who read a record and read counts are asked of the
//!   server (one at a time: the library keeps one of each under way).
//!
//! Posting into a group is `POST /v1/conversations/g:ID/messages`
//! (`convs.rs`); its history and its place in the list are those of any
//! conversation.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tern_core::wire::{GroupAction, GROUP_OP_MAX_USERS, READ_COUNTS_MAX};

use super::api::{accepted, check_key, id_field, role_name, OpView, Wait, WaitQuery, MAX_ID};
use super::records::Kind;
use super::routes::{accept, client_error, operation, wait_limit};
use super::Shared;
use crate::client::{ClientError, KeyedState, MembersPage, Outgoing, Settled};
use crate::http::{ApiError, JsonBody, MaybeJson, QueryArgs};

type St = State<Arc<Shared>>;

/// Most members (or readers) in one page (`MEMBERS_MAX`).
const MAX_PAGE: u64 = 64;

/// A positive id of a path parameter, at most [`MAX_ID`]; a group may be
/// written `g:ID`, as `GET /v1/conversations` names it.
fn path_id(name: &str, raw: &str) -> Result<u64, ApiError> {
    let digits = match name {
        "group" => raw.strip_prefix("g:").unwrap_or(raw),
        _ => raw,
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|v| (1..=MAX_ID).contains(v))
        .ok_or_else(|| {
            ApiError::field(
                name,
                format!("{raw:?} is not an id from 1 to {MAX_ID} (a group may be written g:ID)"),
            )
        })
}

/// The `{group}` (and `{user}`, where the path has one) of the path.
pub struct GroupPath {
    group: u64,
    user: Option<u64>,
}

impl<S: Send + Sync> FromRequestParts<S> for GroupPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params): Path<Vec<(String, String)>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::field("group", e.body_text()))?;
        let mut group = None;
        let mut user = None;
        for (name, raw) in &params {
            match name.as_str() {
                "group" => group = Some(path_id("group", raw)?),
                "user" => user = Some(path_id("user", raw)?),
                _ => {}
            }
        }
        let group = group.ok_or_else(|| ApiError::field("group", "missing"))?;
        Ok(GroupPath { group, user })
    }
}

/// The users of an operation: ids from 1, at most 32, at least `min`.
fn users(field: &str, users: &[u64], min: usize) -> Result<Vec<u64>, ApiError> {
    if users.len() < min || users.len() > GROUP_OP_MAX_USERS {
        return Err(ApiError::field(
            field,
            format!("give {min} to {GROUP_OP_MAX_USERS} user ids"),
        ));
    }
    for (i, &u) in users.iter().enumerate() {
        if u == 0 {
            return Err(ApiError::field(format!("{field}[{i}]"), "must be positive"));
        }
        id_field(&format!("{field}[{i}]"), u)?;
    }
    Ok(users.to_vec())
}

/// Group operations get no delivery receipts: `wait=delivered` is refused.
fn group_wait(q: &WaitQuery) -> Result<(), ApiError> {
    if q.wait == Wait::Delivered {
        return Err(ApiError::field(
            "wait",
            "group operations have no delivery receipts: queued or stored",
        ));
    }
    Ok(())
}

/// A refused member page or read count: 404 for a group this user is not
/// a member of (or that does not exist; the server does not say which).
fn query_error(group: u64, e: ClientError) -> ApiError {
    match e {
        ClientError::Rejected(16) => {
            ApiError::not_found(format!("no group {group} with this user as a member"))
                .with_code(16)
        }
        ClientError::Rejected(code) => ApiError::new(
            StatusCode::CONFLICT,
            format!("the server refused the request (error {code})"),
        )
        .with_code(code),
        ClientError::NotSupported => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "the server speaks only protocol version 1: no groups",
        ),
        ClientError::NoAnswer(what) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no answer from the server in time ({what})"),
        ),
        other => client_error(other),
    }
}

/// `POST /v1/groups`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateReq {
    /// First members besides this user (at most 32).
    #[serde(default)]
    members: Vec<u64>,
    /// Creates at most once per key, across restarts.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    idempotency_key: Option<String>,
}

/// The query of `POST /v1/groups`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    /// How long to wait for the group's id (default 10 s, at most 120 s).
    timeout_ms: Option<u64>,
}

/// The answer of `POST /v1/groups`: the operation, and the group once
/// known.
#[derive(Debug, Serialize)]
struct Created {
    #[serde(flatten)]
    op: OpView,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation: Option<String>,
}

pub async fn create(
    State(s): St,
    QueryArgs(q): QueryArgs<CreateQuery>,
    MaybeJson(req): MaybeJson<CreateReq>,
) -> Result<Response, ApiError> {
    let limit = wait_limit(q.timeout_ms)?;
    check_key(&req.idempotency_key)?;
    let op = Outgoing::Group {
        group: 0,
        action: GroupAction::Create,
        users: users("members", &req.members, 0)?,
    };
    let (rec, dup) = accept(&s, accepted(op, Kind::Group, req.idempotency_key)).await?;
    let deadline = tokio::time::Instant::now() + limit;
    let settled = s.records().wait(rec.id);
    let _ = tokio::time::timeout_at(deadline, settled).await;
    let rec = s.records().get(rec.id).cloned().unwrap_or(rec);
    let group = match rec.state {
        KeyedState::Settled(Settled::Stored { seq, .. }) => {
            match tokio::time::timeout_at(deadline, s.handle.group_created(seq)).await {
                Ok(Ok(g)) => Some(g),
                Ok(Err(e)) => return Err(client_error(e)),
                Err(_) => None,
            }
        }
        _ => None,
    };
    let op = OpView::of(&rec, 0, dup);
    let status = match (op.status, group) {
        ("rejected", _) => StatusCode::CONFLICT,
        (_, Some(_)) => StatusCode::CREATED,
        (_, None) => StatusCode::ACCEPTED,
    };
    let body = Created {
        op,
        group,
        conversation: group.map(|g| format!("g:{g}")),
    };
    Ok((status, Json(body)).into_response())
}

/// `POST /v1/groups/{group}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddReq {
    /// Users to add (1 to 32).
    users: Vec<u64>,
    /// Add them as admins (the owner only).
    #[serde(default)]
    admin: bool,
    /// As for messages.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    idempotency_key: Option<String>,
}

pub async fn add(
    State(s): St,
    path: GroupPath,
    QueryArgs(q): QueryArgs<WaitQuery>,
    JsonBody(req): JsonBody<AddReq>,
) -> Result<Response, ApiError> {
    group_wait(&q)?;
    check_key(&req.idempotency_key)?;
    let op = Outgoing::Group {
        group: path.group,
        action: GroupAction::Add { admin: req.admin },
        users: users("users", &req.users, 1)?,
    };
    operation(s, accepted(op, Kind::Group, req.idempotency_key), q).await
}

/// The query of `DELETE /v1/groups/{group}/members/{user}` (no body).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    #[serde(default)]
    wait: Wait,
    timeout_ms: Option<u64>,
    idempotency_key: Option<String>,
}

pub async fn remove(
    State(s): St,
    path: GroupPath,
    QueryArgs(q): QueryArgs<RemoveQuery>,
) -> Result<Response, ApiError> {
    let wait = WaitQuery {
        wait: q.wait,
        timeout_ms: q.timeout_ms,
    };
    group_wait(&wait)?;
    check_key(&q.idempotency_key)?;
    let user = path
        .user
        .ok_or_else(|| ApiError::field("user", "missing"))?;
    let op = Outgoing::Group {
        group: path.group,
        action: GroupAction::Remove,
        users: vec![user],
    };
    operation(s, accepted(op, Kind::Group, q.idempotency_key), wait).await
}

/// `POST /v1/groups/{group}/leave` (the body is optional).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LeaveReq {
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    idempotency_key: Option<String>,
}

pub async fn leave(
    State(s): St,
    path: GroupPath,
    QueryArgs(q): QueryArgs<WaitQuery>,
    MaybeJson(req): MaybeJson<LeaveReq>,
) -> Result<Response, ApiError> {
    group_wait(&q)?;
    check_key(&req.idempotency_key)?;
    let op = Outgoing::Group {
        group: path.group,
        action: GroupAction::Leave,
        users: Vec::new(),
    };
    operation(s, accepted(op, Kind::Group, req.idempotency_key), q).await
}

/// `GET /v1/groups/{group}/members` and `.../readers`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Members with a user id above this (0 or absent: from the first).
    #[serde(default)]
    after: u64,
    /// At most this many (1 to 64, default 64).
    limit: Option<u64>,
    /// Readers only: the record (`conv_seq`).
    conv_seq: Option<u64>,
}

fn page_view(group: u64, p: &MembersPage) -> Value {
    let members: Vec<Value> = p
        .members
        .iter()
        .map(|m| json!({"user": m.user, "role": role_name(m.role), "since": m.since}))
        .collect();
    json!({
        "group": group,
        "conversation": format!("g:{group}"),
        "members": members,
        "next_after": p.end.next_after,
        "complete": p.end.complete,
        "member_count": p.end.members,
        "last_seq": p.end.last_seq,
    })
}

fn page_args(q: &PageQuery) -> Result<(u64, u64), ApiError> {
    let limit = q.limit.unwrap_or(MAX_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::field("limit", "must be 1 to 64"));
    }
    Ok((id_field("after", q.after)?, limit))
}

pub async fn members(
    State(s): St,
    path: GroupPath,
    QueryArgs(q): QueryArgs<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.conv_seq.is_some() {
        return Err(ApiError::field("conv_seq", "only for .../readers"));
    }
    let (after, limit) = page_args(&q)?;
    let _one = s.group_query_gate.lock().await;
    let page = s
        .handle
        .members(path.group, after, limit)
        .await
        .map_err(|e| query_error(path.group, e))?;
    Ok(Json(page_view(path.group, &page)))
}

pub async fn readers(
    State(s): St,
    path: GroupPath,
    QueryArgs(q): QueryArgs<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (after, limit) = page_args(&q)?;
    let conv_seq = match q.conv_seq {
        Some(c) if c > 0 => id_field("conv_seq", c)?,
        _ => {
            return Err(ApiError::field(
                "conv_seq",
                "a positive conv_seq is required",
            ))
        }
    };
    let _one = s.group_query_gate.lock().await;
    let page = s
        .handle
        .readers(path.group, conv_seq, after, limit)
        .await
        .map_err(|e| query_error(path.group, e))?;
    let mut v = page_view(path.group, &page);
    v["conv_seq"] = json!(conv_seq);
    Ok(Json(v))
}

/// `GET /v1/groups/{group}/read-counts`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CountsQuery {
    /// The first record (`conv_seq`, from 1).
    low: u64,
    /// Records from `low` (1 to 64, default 1).
    count: Option<u64>,
}

pub async fn read_counts(
    State(s): St,
    path: GroupPath,
    QueryArgs(q): QueryArgs<CountsQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.low == 0 {
        return Err(ApiError::field("low", "must be positive"));
    }
    let low = id_field("low", q.low)?;
    let count = q.count.unwrap_or(1);
    if count == 0 || count > READ_COUNTS_MAX as u64 {
        return Err(ApiError::field("count", "must be 1 to 64"));
    }
    let _one = s.group_query_gate.lock().await;
    let c = s
        .handle
        .read_counts(path.group, low, count as u8)
        .await
        .map_err(|e| query_error(path.group, e))?;
    // Everyone but the author could have read a record.
    let of = c.members.saturating_sub(1);
    let counts: Vec<Value> = c
        .read_by
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"conv_seq": c.low + i as u64, "read_by": n, "of": of}))
        .collect();
    Ok(Json(json!({
        "group": path.group,
        "conversation": format!("g:{}", path.group),
        "members": c.members,
        "counts": counts,
    })))
}
