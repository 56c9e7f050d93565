//! The JSON shapes of the local API: what the app sends (checked field by
//! field into a protocol operation) and what it gets back.

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tern_core::wire::{
    encode_to_bytes, DeleteScope, Entry, GroupEvent, GroupEventKind, GroupRole, ReceiptStatus,
    SyncBody,
};

use super::records::{Kind, Record};
use crate::client::{KeyedState, Outgoing, Settled};
use crate::http::ApiError;

/// Standard base64 with padding; the unused low bits of the last
/// character are not checked (any encoder's output decodes).
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Longest idempotency key, in characters.
pub const MAX_KEY: usize = 200;

/// Largest id the protocol carries (62-bit varints).
pub const MAX_ID: u64 = tern_core::wire::varint::MAX;

/// `POST /v1/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendReq {
    /// Receiving user.
    pub to: u64,
    /// Conversation.
    pub conv: u64,
    /// Application message type (0: UTF-8 text by convention).
    #[serde(rename = "type", default)]
    pub msg_type: u64,
    /// The payload as text...
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    pub text: Option<String>,
    /// ...or as base64 bytes (exactly one of the two).
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    pub payload_b64: Option<String>,
    /// Sends at most once per key, across restarts.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/read`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadReq {
    /// Conversation.
    pub conv: u64,
    /// The user whose messages were read.
    pub peer: u64,
    /// Their device that sent the last message read.
    pub target_device: u32,
    /// That device's sequence of the last message read.
    pub target_seq: u64,
    /// As for messages.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/recall`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallReq {
    /// The message's receiver.
    pub to: u64,
    /// Its conversation.
    pub conv: u64,
    /// Its sequence (`seq` of `GET /v1/messages/{id}`).
    pub target_seq: u64,
    /// As for messages.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/events/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckReq {
    /// Every event up to this id is processed.
    pub up_to: u64,
}

/// `?wait=` of the operation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Answer once in the durable outbox (202).
    #[default]
    Queued,
    /// Answer once the server stored it durably.
    Stored,
    /// Answer once a receiver device acknowledged it (messages).
    Delivered,
}

/// The query of the operation endpoints.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// What to wait for.
    #[serde(default)]
    pub wait: Wait,
    /// How long, at most (default 10 s, at most 120 s).
    pub timeout_ms: Option<u64>,
}

pub(super) fn id_field(name: &str, v: u64) -> Result<u64, ApiError> {
    if v > MAX_ID {
        return Err(ApiError::field(name, format!("must be at most {MAX_ID}")));
    }
    Ok(v)
}

pub(super) fn check_key(k: &Option<String>) -> Result<(), ApiError> {
    if let Some(k) = k {
        if k.is_empty() || k.chars().count() > MAX_KEY {
            return Err(ApiError::field(
                "idempotency_key",
                format!("must be 1 to {MAX_KEY} bytes"),
            ));
        }
    }
    Ok(())
}

/// An operation checked and ready for the outbox.
pub struct Accepted {
    /// The protocol operation.
    pub op: Outgoing,
    /// Its kind.
    pub kind: Kind,
    /// Idempotency key.
    pub key: Option<String>,
    /// SHA-256 (hex) of the operation.
    pub digest: String,
}

pub(super) fn accepted(op: Outgoing, kind: Kind, key: Option<String>) -> Accepted {
    let digest = hex::encode(Sha256::digest(encode_to_bytes(&op.frame(1))));
    Accepted {
        op,
        kind,
        key,
        digest,
    }
}

/// The payload of a message request: `text`, or `payload_b64` decoded;
/// exactly one, at most `max_payload` bytes.
pub(super) fn payload(
    text: Option<String>,
    payload_b64: Option<String>,
    msg_type: u64,
    max_payload: usize,
) -> Result<Bytes, ApiError> {
    let payload: Bytes = match (text, payload_b64) {
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
        let f = if msg_type == 0 { "text" } else { "payload_b64" };
        return Err(ApiError::field(
            f,
            format!("payload of {} bytes is over {max_payload}", payload.len()),
        ));
    }
    Ok(payload)
}

impl SendReq {
    /// Checks every field; `max_payload` is the protocol's limit.
    pub fn check(self, max_payload: usize) -> Result<Accepted, ApiError> {
        let payload = payload(self.text, self.payload_b64, self.msg_type, max_payload)?;
        check_key(&self.idempotency_key)?;
        let op = Outgoing::Send {
            to: id_field("to", self.to)?,
            conv: id_field("conv", self.conv)?,
            msg_type: id_field("type", self.msg_type)?,
            payload,
        };
        Ok(accepted(op, Kind::Message, self.idempotency_key))
    }
}

impl ReadReq {
    /// Checks every field.
    pub fn check(self) -> Result<Accepted, ApiError> {
        check_key(&self.idempotency_key)?;
        let op = Outgoing::Read {
            conv: id_field("conv", self.conv)?,
            peer: id_field("peer", self.peer)?,
            target_device: self.target_device,
            target_seq: id_field("target_seq", self.target_seq)?,
        };
        Ok(accepted(op, Kind::Read, self.idempotency_key))
    }
}

impl RecallReq {
    /// Checks every field.
    pub fn check(self) -> Result<Accepted, ApiError> {
        check_key(&self.idempotency_key)?;
        if self.target_seq == 0 {
            return Err(ApiError::field("target_seq", "must be positive"));
        }
        let op = Outgoing::Recall {
            to: id_field("to", self.to)?,
            conv: id_field("conv", self.conv)?,
            target_seq: id_field("target_seq", self.target_seq)?,
        };
        Ok(accepted(op, Kind::Recall, self.idempotency_key))
    }
}

/// An operation as the API shows it.
#[derive(Debug, Serialize)]
pub struct OpView {
    /// Its id in this sidecar.
    pub id: u64,
    /// `message`, `read`, `recall`, `post`, `mark` or `group`.
    pub kind: Kind,
    /// `queued`, `stored`, `delivered` or `rejected`.
    pub status: &'static str,
    /// Its uplink sequence once known: with user and device, its global id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The protocol error code, when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u64>,
    /// A receiver device was online when it was stored (known only in the
    /// run that stored it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver_online: Option<bool>,
    /// The idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// This answer repeats an earlier request with the same key.
    pub duplicate: bool,
    /// Unix ms when accepted.
    pub accepted_ms: u64,
}

impl OpView {
    /// The view of `r`; `delivered_up_to` from receipts seen.
    pub fn of(r: &Record, delivered_up_to: u64, duplicate: bool) -> OpView {
        let (status, seq, code, online) = match r.state {
            KeyedState::Pending { seq } => ("queued", (seq > 0).then_some(seq), None, None),
            KeyedState::Settled(Settled::Stored {
                seq,
                receiver_online,
            }) => {
                let delivered = r.tag.kind == Kind::Message && seq <= delivered_up_to;
                let s = if delivered { "delivered" } else { "stored" };
                (s, Some(seq), None, Some(receiver_online))
            }
            KeyedState::Settled(Settled::Rejected { seq, code }) => {
                ("rejected", (seq > 0).then_some(seq), Some(code), None)
            }
        };
        OpView {
            id: r.id,
            kind: r.tag.kind,
            status,
            seq,
            code,
            receiver_online: online,
            idempotency_key: r.tag.key.clone(),
            duplicate,
            accepted_ms: r.tag.accepted_ms,
        }
    }
}

/// One event of `GET /v1/events`: a sync-timeline entry at its position.
#[derive(Debug, Serialize)]
pub struct EventView {
    /// Position: acknowledge up to here with `POST /v1/events/ack`.
    pub id: u64,
    /// `message`, `receipt`, `recall`, `read` (this user's read position
    /// moved, on any of its devices) or `deleted` (this user deleted, for
    /// itself).
    pub kind: &'static str,
    /// The application's conversation tag (`conv` of `POST /v1/messages`).
    pub conv: u64,
    /// The conversation as the receiving user names it: `d:USER` (direct),
    /// `g:ID` (group) or `s:ID` (system).
    pub conversation: String,
    /// The record in the conversation's history the entry is about (0:
    /// none, e.g. from a version 1 sender).
    pub conv_seq: u64,
    /// Who caused it.
    pub from_user: u64,
    /// Their device.
    pub from_device: u32,
    /// Their sequence of it.
    pub from_seq: u64,
    /// Server time stored, Unix ms.
    pub time_ms: u64,
    /// Messages: the application type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub msg_type: Option<u64>,
    /// Messages: the payload when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Messages: the payload in base64 (always).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_b64: Option<String>,
    /// Receipts: `delivered` or `read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Receipts and recalls: the target message's device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_device: Option<u32>,
    /// Receipts and recalls: its sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
    /// Deletions: `conversation` (up to `conv_seq`) or `message` (that one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// Group membership changes (kind `member`): what happened, to whom,
    /// and their role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberView>,
}

/// A group membership change, as events and history records show it.
#[derive(Debug, Serialize)]
pub struct MemberView {
    /// `created`, `added`, `removed`, `left` or `role_changed`.
    pub event: &'static str,
    /// The member it is about.
    pub user: u64,
    /// `owner`, `admin` or `member` (after the change; the role they had
    /// when removed or leaving).
    pub role: &'static str,
}

/// `owner`, `admin` or `member`.
pub fn role_name(r: GroupRole) -> &'static str {
    match r {
        GroupRole::Owner => "owner",
        GroupRole::Admin => "admin",
        GroupRole::Member => "member",
    }
}

impl MemberView {
    /// The view of `e`.
    pub fn of(e: &GroupEvent) -> MemberView {
        MemberView {
            event: match e.kind {
                GroupEventKind::Created => "created",
                GroupEventKind::Added => "added",
                GroupEventKind::Removed => "removed",
                GroupEventKind::Left => "left",
                GroupEventKind::RoleChanged => "role_changed",
            },
            user: e.user,
            role: role_name(e.role),
        }
    }
}

impl EventView {
    /// The view of an inbox entry.
    pub fn of(d: &Entry) -> EventView {
        let mut v = EventView {
            id: d.seq,
            kind: "message",
            conv: d.topic,
            conversation: d.conv.to_string(),
            conv_seq: d.conv_seq,
            from_user: d.from_user,
            from_device: d.from_device,
            from_seq: d.from_seq,
            time_ms: d.time_ms,
            msg_type: None,
            text: None,
            payload_b64: None,
            status: None,
            target_device: None,
            target_seq: None,
            scope: None,
            member: None,
        };
        match &d.body {
            SyncBody::Message { msg_type, payload } => {
                v.msg_type = Some(*msg_type);
                v.text = std::str::from_utf8(payload).ok().map(str::to_string);
                v.payload_b64 = Some(base64::engine::general_purpose::STANDARD.encode(payload));
            }
            SyncBody::Receipt {
                status,
                target_device,
                target_seq,
            } => {
                v.kind = "receipt";
                v.status = Some(match status {
                    ReceiptStatus::Delivered => "delivered",
                    ReceiptStatus::Read => "read",
                });
                v.target_device = Some(*target_device);
                v.target_seq = Some(*target_seq);
            }
            SyncBody::Recall {
                target_device,
                target_seq,
            } => {
                v.kind = "recall";
                v.target_device = Some(*target_device);
                v.target_seq = Some(*target_seq);
            }
            SyncBody::Read => v.kind = "read",
            SyncBody::Member(e) => {
                v.kind = "member";
                v.member = Some(MemberView::of(e));
            }
            SyncBody::Deleted { scope } => {
                v.kind = "deleted";
                v.scope = Some(match scope {
                    DeleteScope::Conversation => "conversation",
                    DeleteScope::Message => "message",
                });
            }
        }
        v
    }
}
