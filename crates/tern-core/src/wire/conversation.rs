//! The frames of protocol version 2 (`proto-spec/conversations.md`):
//! conversation-addressed uplink operations, the sync-timeline ENTRY, the
//! conversation list and history pages, as plain values. Their codec is
//! `conversation_codec.rs`.

use bytes::Bytes;

use super::frame::ReceiptStatus;
#[cfg(feature = "arbitrary")]
use super::{arb, limits::*};

/// What kind of conversation a [`ConvRef`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum ConvKind {
    /// Two users; the id is the other user.
    Direct = 1,
    /// A group; the id is server-assigned.
    Group = 2,
    /// A system channel; the id is server-assigned.
    System = 3,
}

impl ConvKind {
    /// The kind with wire value `v`.
    pub fn from_u8(v: u8) -> Option<ConvKind> {
        match v {
            1 => Some(ConvKind::Direct),
            2 => Some(ConvKind::Group),
            3 => Some(ConvKind::System),
            _ => None,
        }
    }
}

/// A conversation as one user names it: a direct conversation by the other
/// user's id, a group or system conversation by its server-assigned id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ConvRef {
    /// Direct, group or system.
    pub kind: ConvKind,
    /// The other user (direct) or the conversation's id.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub id: u64,
}

impl ConvRef {
    /// The direct conversation with `peer`.
    pub fn direct(peer: u64) -> ConvRef {
        ConvRef {
            kind: ConvKind::Direct,
            id: peer,
        }
    }

    /// The group `id`.
    pub fn group(id: u64) -> ConvRef {
        ConvRef {
            kind: ConvKind::Group,
            id,
        }
    }
}

impl std::fmt::Display for ConvRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = match self.kind {
            ConvKind::Direct => "d",
            ConvKind::Group => "g",
            ConvKind::System => "s",
        };
        write!(f, "{k}:{}", self.id)
    }
}

/// Why a conversation reference did not parse from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conversation {0:?}: expected d:USER, g:GROUP or s:ID")]
pub struct ConvParseError(pub String);

impl std::str::FromStr for ConvRef {
    type Err = ConvParseError;

    /// `d:42` (direct with user 42), `g:7`, `s:1`; a bare number is direct.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConvParseError(s.to_string());
        let (kind, id) = match s.split_once(':') {
            Some(("d", id)) => (ConvKind::Direct, id),
            Some(("g", id)) => (ConvKind::Group, id),
            Some(("s", id)) => (ConvKind::System, id),
            Some(_) => return Err(bad()),
            None => (ConvKind::Direct, s),
        };
        let id: u64 = id.parse().map_err(|_| bad())?;
        if id > super::varint::MAX {
            return Err(bad());
        }
        Ok(ConvRef { kind, id })
    }
}

/// Client → server, uplink: a message into a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Post {
    /// Uplink sequence.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// Where the message goes.
    pub conv: ConvRef,
    /// Application tag carried with the message (version 1's `conv`).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub topic: u64,
    /// Application message type.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub msg_type: u64,
    /// Application payload, at most `MAX_PAYLOAD` bytes.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_PAYLOAD>))]
    pub payload: Bytes,
}

/// Client → server, uplink: move this user's read position.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MarkRead {
    /// Uplink sequence.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// The conversation.
    pub conv: ConvRef,
    /// New read position (`conv_seq`).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub up_to: u64,
    /// With `receipt_seq`: the newest message read from the other user.
    pub receipt_device: u32,
    /// Its uplink sequence; 0 sends no READ receipt.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub receipt_seq: u64,
}

/// Client → server, uplink: recall a message for everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Retract {
    /// Uplink sequence.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// The conversation.
    pub conv: ConvRef,
    /// `conv_seq` of the message.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub target: u64,
}

/// What a DELETE removes, for the deleting user only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum DeleteScope {
    /// The conversation up to `target` (0: up to its last record).
    Conversation = 1,
    /// The one record `target`.
    Message = 2,
}

/// Client → server, uplink: delete for this user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Delete {
    /// Uplink sequence.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// The conversation.
    pub conv: ConvRef,
    /// Conversation or message.
    pub scope: DeleteScope,
    /// `conv_seq`.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub target: u64,
}

/// What a sync-timeline entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum SyncBody {
    /// A message (from another user, or the user's own copy).
    Message {
        /// Application message type.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
        msg_type: u64,
        /// Application payload.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_PAYLOAD>))]
        payload: Bytes,
    },
    /// A DELIVERED or READ receipt about messages the user sent.
    Receipt {
        /// DELIVERED or READ.
        status: ReceiptStatus,
        /// The user's device that sent them.
        target_device: u32,
        /// Its uplink sequence: the receipt covers every message up to it.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
        target_seq: u64,
    },
    /// A message was recalled; its record is the entry's `conv_seq`.
    Recall {
        /// Device that sent the recalled message.
        target_device: u32,
        /// Its uplink sequence.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
        target_seq: u64,
    },
    /// The user's read position in the conversation is now `conv_seq`.
    Read,
    /// The user deleted, for itself, up to or exactly `conv_seq`.
    Deleted {
        /// Conversation or message.
        scope: DeleteScope,
    },
    /// A membership event of a group, record `conv_seq` (`groups.md`).
    Member(super::GroupEvent),
}

/// Server → client, downlink: one sync-timeline entry (version 2 DELIVER).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Entry {
    /// Sync-timeline sequence.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// The conversation, as the receiving user names it.
    pub conv: ConvRef,
    /// The record the entry is about (0: none).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub conv_seq: u64,
    /// Application tag of the message it is about (version 1's `conv`).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub topic: u64,
    /// User whose action created the entry.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub from_user: u64,
    /// That user's device.
    pub from_device: u32,
    /// That device's uplink sequence (0 for server-made entries).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub from_seq: u64,
    /// Server wall clock when stored, ms since the Unix epoch.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub time_ms: u64,
    /// What it is.
    pub body: SyncBody,
}

impl Entry {
    /// A version 1 DELIVER as the version 2 entry it is: in the direct
    /// conversation with its sender, outside any storage timeline.
    pub fn from_v1(d: super::Deliver) -> Entry {
        use super::EntryBody;
        let body = match d.body {
            EntryBody::Message { msg_type, payload } => SyncBody::Message { msg_type, payload },
            EntryBody::Receipt {
                status,
                target_device,
                target_seq,
            } => SyncBody::Receipt {
                status,
                target_device,
                target_seq,
            },
            EntryBody::Recall {
                target_device,
                target_seq,
            } => SyncBody::Recall {
                target_device,
                target_seq,
            },
        };
        Entry {
            seq: d.seq,
            conv: ConvRef::direct(d.from_user),
            conv_seq: 0,
            topic: d.conv,
            from_user: d.from_user,
            from_device: d.from_device,
            from_seq: d.from_seq,
            time_ms: d.time_ms,
            body,
        }
    }
}

/// Client → server: the conversations changed since a list version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ListRequest {
    /// Echoed in LIST_END.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// List version the device last completed (0: everything).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub since: u64,
    /// Most items wanted.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub max_items: u64,
    /// Preview bytes wanted per item (at most `MAX_PREVIEW`).
    pub preview_len: u8,
}

/// The newest record of a conversation, in a list item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ListPreview {
    /// Its sender.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub from_user: u64,
    /// Seconds between its time and LIST_END's `server_time_ms`.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub age_s: u64,
    /// Its message type.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub msg_type: u64,
    /// It is a recall marker.
    pub recalled: bool,
    /// First bytes of its payload (at most `MAX_PREVIEW`).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_PREVIEW>))]
    pub head: Bytes,
}

/// Server → client: one conversation of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ListItem {
    /// The LIST answered (an item from an earlier answer, duplicated or
    /// late on the network, is told apart).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The conversation.
    pub conv: ConvRef,
    /// List version of its last change.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub version: u64,
    /// Deleted for the user, nothing newer since.
    pub hidden: bool,
    /// Newest record the user can see.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub last_seq: u64,
    /// The user's read position.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub read_seq: u64,
    /// Unread messages.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub unread: u64,
    /// History at or below this is deleted for the user.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub cleared_to: u64,
    /// The newest record, if asked for and there is one.
    pub preview: Option<ListPreview>,
}

/// Server → client: closes a list answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ListEnd {
    /// The LIST answered.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// LIST_ITEM frames in this answer.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub items: u64,
    /// Version of the last item sent (`since` for the next LIST).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub next_since: u64,
    /// The user's current list version.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub list_version: u64,
    /// Every change up to `list_version` was sent.
    pub complete: bool,
    /// Unread messages over all the user's conversations.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub total_unread: u64,
    /// The server's clock, ms since the Unix epoch.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub server_time_ms: u64,
}

/// Client → server: a page of a conversation's storage timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct HistoryRequest {
    /// Echoed in HISTORY_END.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The conversation.
    pub conv: ConvRef,
    /// Records with `conv_seq < before`; 0: from the newest.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub before: u64,
    /// Most records wanted.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub max: u64,
}

/// What a storage-timeline record is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum RecordBody {
    /// A message.
    Message {
        /// Application message type.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
        msg_type: u64,
        /// Application payload.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_PAYLOAD>))]
        payload: Bytes,
    },
    /// A recalled message: its place and type remain, its content is gone.
    Recalled {
        /// The message type it had.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
        msg_type: u64,
    },
    /// A membership event of a group (`groups.md`).
    Member(super::GroupEvent),
}

/// Server → client: one record of a history page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Record {
    /// The HISTORY answered (a record from an earlier answer is told apart).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The conversation.
    pub conv: ConvRef,
    /// The record's number.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub conv_seq: u64,
    /// Application tag of the message.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub topic: u64,
    /// Sender.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub from_user: u64,
    /// Sender's device.
    pub from_device: u32,
    /// Sender device's uplink sequence (the message id).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub from_seq: u64,
    /// When it was stored, ms since the Unix epoch.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub time_ms: u64,
    /// Message or recall marker.
    pub body: RecordBody,
}

/// Server → client: closes a history page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct HistoryEnd {
    /// The HISTORY answered.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// The conversation.
    pub conv: ConvRef,
    /// Lowest `conv_seq` the page covers.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub low: u64,
    /// Highest `conv_seq` the page covers (`low > high`: empty).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub high: u64,
    /// Nothing at or below it can be returned (trimmed or cleared).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub floor: u64,
    /// RECORD frames in this page (to tell a lost datagram from records
    /// the user deleted).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub count: u64,
    /// Newest record the user can see.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub last_seq: u64,
}
