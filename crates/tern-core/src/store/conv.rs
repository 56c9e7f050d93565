//! What the store keeps for conversations (`proto-spec/conversations.md`):
//! each conversation's storage timeline (records numbered by `conv_seq`) and
//! its metadata, and each user's state in each conversation, indexed by the
//! user's list version.

use bytes::Bytes;

use crate::conv::{ConvKey, ConvState};
use crate::wire::GroupEvent;

/// Metadata of one conversation's storage timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConvMeta {
    /// Highest `conv_seq` stored (0: empty).
    pub head: u64,
    /// Every record `≤ trimmed` was deleted by retention.
    pub trimmed: u64,
}

/// One record of a storage timeline: a message, or what remains of it once
/// recalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvRecord {
    /// Its number in the conversation.
    pub conv_seq: u64,
    /// Sender.
    pub from_user: u64,
    /// Sender's device.
    pub from_device: u32,
    /// Sender device's uplink sequence (the message id).
    pub from_seq: u64,
    /// Server wall clock when stored, ms since the Unix epoch.
    pub time_ms: u64,
    /// Application tag (version 1's `conv`).
    pub topic: u64,
    /// Application message type.
    pub msg_type: u64,
    /// Application payload; empty once recalled.
    pub payload: Bytes,
    /// Recalled: a marker whose content is gone for good.
    pub recalled: bool,
    /// A group membership event rather than a message (then `msg_type` is
    /// 0 and `payload` empty).
    pub event: Option<GroupEvent>,
}

impl ConvRecord {
    /// The same record as a recall marker.
    pub fn recalled(&self) -> ConvRecord {
        ConvRecord {
            payload: Bytes::new(),
            recalled: true,
            ..self.clone()
        }
    }
}

/// One user's state in one conversation, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserConv {
    /// The conversation.
    pub key: ConvKey,
    /// The user's state in it.
    pub state: ConvState,
}
