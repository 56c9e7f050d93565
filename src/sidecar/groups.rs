//! Groups over the local API (`proto-spec/groups.md`), as `tern group`
//! does them, through the client library:
//! - create, add, remove, leave and role changes are keyed operations of
//!   the durable outbox like `POST /v1/messages` (idempotency keys,
//!   `?wait=`); the server applies each exactly once, in uplink order, and
//!   refuses one for good with a protocol code (409, `status: rejected`);
//! - creating also waits for the group's id, which the creating device
//!   learns from its own "created" entry;
//! - member pages, who read a record and read counts are asked of the
//!   server (`group_pages.rs`).
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
use tern_core::wire::{GroupAction, GROUP_OP_MAX_USERS};

use super::api::{accepted, check_key, id_field, OpView, Wait, WaitQuery, MAX_ID};
use super::records::Kind;
use super::routes::{accept, client_error, operation, wait_limit};
use super::Shared;
use crate::client::{KeyedState, Outgoing, Settled};
use crate::http::{ApiError, JsonBody, MaybeJson, QueryArgs};

type St = State<Arc<Shared>>;

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
    pub(super) group: u64,
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

/// `POST /v1/groups/{group}/roles`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleReq {
    /// Members whose role changes (1 to 32).
    users: Vec<u64>,
    /// Their new role.
    role: NewRole,
    /// As for messages.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    idempotency_key: Option<String>,
}

/// A role the owner can give (there is one owner, for good).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum NewRole {
    Admin,
    Member,
}

pub async fn set_role(
    State(s): St,
    path: GroupPath,
    QueryArgs(q): QueryArgs<WaitQuery>,
    JsonBody(req): JsonBody<RoleReq>,
) -> Result<Response, ApiError> {
    group_wait(&q)?;
    check_key(&req.idempotency_key)?;
    let op = Outgoing::Group {
        group: path.group,
        action: GroupAction::SetRole {
            admin: matches!(req.role, NewRole::Admin),
        },
        users: users("users", &req.users, 1)?,
    };
    operation(s, accepted(op, Kind::Group, req.idempotency_key), q).await
}
