//! Member pages, who read a record, and read counts of a group
//! (`proto-spec/groups.md`: MEMBERS, READ_COUNTS), asked of the server
//! through the client library one at a time per sidecar: the library keeps
//! one request of each kind under way, a new one replacing the last, so
//! concurrent HTTP calls would otherwise make each other ask again.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tern_core::wire::READ_COUNTS_MAX;

use super::api::{id_field, role_name};
use super::groups::GroupPath;
use super::routes::client_error;
use super::Shared;
use crate::client::{ClientError, MembersPage};
use crate::http::{ApiError, QueryArgs};

type St = State<Arc<Shared>>;

/// Most members (or readers) in one page (`MEMBERS_MAX`).
const MAX_PAGE: u64 = 64;

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
