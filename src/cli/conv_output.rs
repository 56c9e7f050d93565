//! How `tern convs` and `tern history` print conversation list items and
//! history records: one line each, human or JSON.

use serde::Serialize;
use tern_core::wire::{ListItem, Record, RecordBody};

/// A payload as text: quoted when it is UTF-8, else `0x` and hex.
fn quoted(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(t) => format!("{t:?}"),
        Err(_) => format!("0x{}", hex::encode(payload)),
    }
}

/// `(text, payload_hex)`: one of them, as the payload is UTF-8 or not.
fn text_or_hex(payload: &[u8]) -> (Option<&str>, Option<String>) {
    match std::str::from_utf8(payload) {
        Ok(t) => (Some(t), None),
        Err(_) => (None, Some(hex::encode(payload))),
    }
}

/// The newest record of a conversation, in `tern convs --json`.
#[derive(Debug, Serialize)]
pub struct PreviewJson<'a> {
    /// Its sender.
    pub from_user: u64,
    /// Seconds old when the list was fetched.
    pub age_s: u64,
    /// Its message type.
    pub msg_type: u64,
    /// It was recalled (no text then).
    pub recalled: bool,
    /// The first bytes of its payload, when UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// The first bytes of its payload in hex, when not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
}

/// One conversation as printed by `tern convs --json`.
#[derive(Debug, Serialize)]
pub struct ListItemJson<'a> {
    /// `d:USER`, `g:ID` or `s:ID`.
    pub conv: String,
    /// List version of its last change.
    pub version: u64,
    /// Unread messages.
    pub unread: u64,
    /// The oldest unread record (`read_seq + 1`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_unread: Option<u64>,
    /// Newest record this user can see.
    pub last_seq: u64,
    /// This user's read position.
    pub read_seq: u64,
    /// History at or below it is deleted for this user.
    pub cleared_to: u64,
    /// Deleted for this user, nothing newer since.
    pub hidden: bool,
    /// The newest record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<PreviewJson<'a>>,
}

impl<'a> ListItemJson<'a> {
    /// The JSON view of `i`.
    pub fn new(i: &'a ListItem) -> Self {
        ListItemJson {
            conv: i.conv.to_string(),
            version: i.version,
            unread: i.unread,
            first_unread: (i.unread > 0).then_some(i.read_seq + 1),
            last_seq: i.last_seq,
            read_seq: i.read_seq,
            cleared_to: i.cleared_to,
            hidden: i.hidden,
            last: i.preview.as_ref().map(|p| {
                let (text, payload_hex) = text_or_hex(&p.head);
                PreviewJson {
                    from_user: p.from_user,
                    age_s: p.age_s,
                    msg_type: p.msg_type,
                    recalled: p.recalled,
                    text: text.filter(|_| !p.recalled),
                    payload_hex: payload_hex.filter(|_| !p.recalled),
                }
            }),
        }
    }
}

/// One line for a list item: JSON, or
/// `d:2  3 unread (from #118)  last #120  read #117  2: "see you"`.
pub fn list_item_line(i: &ListItem, json: bool) -> String {
    if json {
        return serde_json::to_string(&ListItemJson::new(i)).expect("plain data serialises");
    }
    let mut s = format!("{:<8} {} unread", i.conv.to_string(), i.unread);
    if i.unread > 0 {
        s += &format!(" (from #{})", i.read_seq + 1);
    }
    s += &format!("  last #{}  read #{}", i.last_seq, i.read_seq);
    if i.hidden {
        s += "  hidden";
    }
    if i.cleared_to > 0 {
        s += &format!("  cleared to #{}", i.cleared_to);
    }
    if let Some(p) = &i.preview {
        let what = if p.recalled {
            "(recalled)".to_string()
        } else {
            quoted(&p.head)
        };
        s += &format!("  {} ({}s ago): {what}", p.from_user, p.age_s);
    }
    s
}

/// One record as printed by `tern history --json`.
#[derive(Debug, Serialize)]
pub struct RecordJson<'a> {
    /// `d:USER`, `g:ID` or `s:ID`.
    pub conv: String,
    /// Its place in the conversation.
    pub conv_seq: u64,
    /// The application's tag.
    pub topic: u64,
    /// Sender.
    pub from_user: u64,
    /// Sender's device.
    pub from_device: u32,
    /// Sender device's uplink sequence (the message id).
    pub from_seq: u64,
    /// Server time stored, ms since the Unix epoch.
    pub time_ms: u64,
    /// "message", "recalled" (a recall marker: no content) or "member" (a
    /// group membership event).
    pub kind: &'static str,
    /// Application message type.
    pub msg_type: u64,
    /// Payload, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// Payload in hex, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    /// Membership events ("member" records): "created", "added",
    /// "removed", "left" or "role".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    /// The user the event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<u64>,
    /// Its role: "member", "admin" or "owner".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

impl<'a> RecordJson<'a> {
    /// The JSON view of `r`.
    pub fn new(r: &'a Record) -> Self {
        let (kind, msg_type, (text, payload_hex)) = match &r.body {
            RecordBody::Message { msg_type, payload } => {
                ("message", *msg_type, text_or_hex(payload))
            }
            RecordBody::Recalled { msg_type } => ("recalled", *msg_type, (None, None)),
            RecordBody::Member(_) => ("member", 0, (None, None)),
        };
        let event = match &r.body {
            RecordBody::Member(e) => Some(e),
            _ => None,
        };
        RecordJson {
            conv: r.conv.to_string(),
            conv_seq: r.conv_seq,
            topic: r.topic,
            from_user: r.from_user,
            from_device: r.from_device,
            from_seq: r.from_seq,
            time_ms: r.time_ms,
            kind,
            msg_type,
            text,
            payload_hex,
            event: event.map(|e| super::output::event_name(e.kind)),
            user: event.map(|e| e.user),
            role: event.map(|e| super::output::role_name(e.role)),
        }
    }
}

/// One line for a record: JSON, or `#57 from 2/1 (msg 14, type 0): "hi"`.
pub fn record_line(r: &Record, json: bool) -> String {
    if json {
        return serde_json::to_string(&RecordJson::new(r)).expect("plain data serialises");
    }
    let head = format!("#{} from {}/{}", r.conv_seq, r.from_user, r.from_device);
    match &r.body {
        RecordBody::Message { msg_type, payload } => format!(
            "{head} (msg {}, type {msg_type}): {}",
            r.from_seq,
            quoted(payload)
        ),
        RecordBody::Recalled { msg_type } => {
            format!("{head} (msg {}, type {msg_type}): recalled", r.from_seq)
        }
        RecordBody::Member(e) => format!(
            "{head}: member {}: user {} ({})",
            super::output::event_name(e.kind),
            e.user,
            super::output::role_name(e.role)
        ),
    }
}

/// Ranges as `#1-#40, #45` (`none` when empty).
pub fn ranges_text(ranges: &[(u64, u64)]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| match a == b {
            true => format!("#{a}"),
            false => format!("#{a}-#{b}"),
        })
        .collect();
    parts.join(", ")
}
