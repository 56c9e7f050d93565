//! What a device journals of its conversations (protocol version 2): its
//! conversation list and the history of each conversation, paged the way an
//! app pages it (newest first, scrolling up with `before`).
//!
//! Two occasions write them to the device's receive journal:
//!
//! - **roam**: a brand-new device of an existing user, joining late in the
//!   run, fetches the list and pages every conversation's whole history
//!   (history roaming), while traffic and faults go on;
//! - **final**: after the heal phase, with the daemon healthy and every
//!   device online, each device (the late one too) fetches the list and
//!   pages every history. Settling may take rounds (`round`); the checker
//!   judges the last complete round of each device.

use serde::{Deserialize, Serialize};
use tern::client::{ListItem, Record, RecordBody};

/// One conversation of a device's list, as the library stored it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListRec {
    /// The conversation as the user names it (`d:PEER`).
    pub conv: String,
    /// Newest record the user can see.
    pub last_seq: u64,
    /// The user's read position.
    pub read_seq: u64,
    /// Unread messages.
    pub unread: u64,
    /// Deleted for the user (the run deletes nothing).
    pub hidden: bool,
}

impl ListRec {
    /// From the library's list item.
    pub fn of(item: &ListItem) -> ListRec {
        ListRec {
            conv: item.conv.to_string(),
            last_seq: item.last_seq,
            read_seq: item.read_seq,
            unread: item.unread,
            hidden: item.hidden,
        }
    }
}

/// One record of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistRec {
    /// Its number in the conversation.
    pub conv_seq: u64,
    /// Application tag (the run's conversation id).
    pub topic: u64,
    /// Sender.
    pub from_user: u64,
    /// Sender's device.
    pub from_device: u32,
    /// Sender device's uplink sequence.
    pub from_seq: u64,
    /// Payload (lossy UTF-8); `None` for a recall marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// A recall marker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// A group membership event (not a message: never unread).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub member: bool,
}

impl HistRec {
    /// From the library's record.
    pub fn of(r: &Record) -> HistRec {
        let (payload, recalled, member) = match &r.body {
            RecordBody::Message { payload, .. } => (
                Some(String::from_utf8_lossy(payload).into_owned()),
                false,
                false,
            ),
            RecordBody::Recalled { .. } => (None, true, false),
            RecordBody::Member(e) => (Some(format!("member {e:?}")), false, true),
        };
        HistRec {
            conv_seq: r.conv_seq,
            topic: r.topic,
            from_user: r.from_user,
            from_device: r.from_device,
            from_seq: r.from_seq,
            payload,
            recalled,
            member,
        }
    }
}

/// Why a view was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewWhat {
    /// A late, brand-new device paging everything while the run goes on.
    Roam,
    /// After healing: what every device must agree on.
    Final,
}

/// A device's list (a `list` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListView {
    /// Microseconds since the run started.
    pub t_us: u64,
    /// Roam or final.
    pub what: ViewWhat,
    /// Settling round (final views; 0 for roam).
    pub round: u32,
    /// Every conversation of the stored list, as the library keeps it.
    pub items: Vec<ListRec>,
    /// The list version it is complete up to.
    pub list_version: u64,
}

/// A conversation's whole history as a device paged it (a `history` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryView {
    /// Microseconds since the run started.
    pub t_us: u64,
    /// Roam or final.
    pub what: ViewWhat,
    /// Settling round (final views; 0 for roam).
    pub round: u32,
    /// The conversation (`d:PEER`).
    pub conv: String,
    /// Records, ascending by `conv_seq`.
    pub records: Vec<HistRec>,
    /// History pages it took.
    pub pages: u32,
    /// The floor the last page reported (nothing at or below it exists).
    pub floor: u64,
}

/// A round of final views is complete (a `view_end` line): the list and
/// every history of it were journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewEnd {
    /// Microseconds since the run started.
    pub t_us: u64,
    /// Roam or final.
    pub what: ViewWhat,
    /// Settling round.
    pub round: u32,
    /// Conversations paged.
    pub convs: u32,
    /// `None`: complete; otherwise why the view stopped short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
