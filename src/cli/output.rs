//! How `tern` prints what it gets: inbox entries (one line each, human or
//! JSON) and the conversation summary.

use std::io::Write;

use serde::Serialize;
use tern_core::wire::{
    DeleteScope, Entry, GroupEventKind, GroupRole, ReceiptStatus, Summary, SummaryEnd, SyncBody,
};

/// One sync-timeline entry as printed by `tern recv --json`.
#[derive(Debug, Serialize)]
pub struct EntryJson<'a> {
    /// Sync-timeline sequence.
    pub seq: u64,
    /// Conversation, as this user names it: `d:USER`, `g:GROUP`, `s:ID`.
    pub conv: String,
    /// The record in the conversation's history the entry is about (absent:
    /// none, e.g. from a version 1 server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conv_seq: Option<u64>,
    /// The application's tag (version 1's conversation number).
    pub topic: u64,
    /// User that caused the entry.
    pub from_user: u64,
    /// Their device.
    pub from_device: u32,
    /// Their uplink sequence (0 for receipts).
    pub from_seq: u64,
    /// Server time stored, ms since the Unix epoch.
    pub time_ms: u64,
    /// "message", "receipt", "recall", "read" (the read position from
    /// another device of this user) or "deleted".
    pub kind: &'static str,
    /// Application message type (messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_type: Option<u64>,
    /// Payload, when it is UTF-8 (messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// Payload in hex, when it is not UTF-8 (messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    /// "delivered" or "read" (receipts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// The inbox owner's device that sent the target message (receipts,
    /// recalls: the sender's device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_device: Option<u32>,
    /// That device's uplink sequence of the target message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
    /// "conversation" or "message" (deletions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// "created", "added", "removed", "left" or "role" (group membership
    /// events; `kind` is "member").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    /// The user the membership event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<u64>,
    /// "member", "admin" or "owner": that user's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

/// The name of a membership event.
pub fn event_name(kind: GroupEventKind) -> &'static str {
    match kind {
        GroupEventKind::Created => "created",
        GroupEventKind::Added => "added",
        GroupEventKind::Removed => "removed",
        GroupEventKind::Left => "left",
        GroupEventKind::RoleChanged => "role",
    }
}

/// The name of a group role.
pub fn role_name(role: GroupRole) -> &'static str {
    match role {
        GroupRole::Member => "member",
        GroupRole::Admin => "admin",
        GroupRole::Owner => "owner",
    }
}

fn status_name(status: &ReceiptStatus) -> &'static str {
    match status {
        ReceiptStatus::Delivered => "delivered",
        ReceiptStatus::Read => "read",
    }
}

fn scope_name(scope: DeleteScope) -> &'static str {
    match scope {
        DeleteScope::Conversation => "conversation",
        DeleteScope::Message => "message",
    }
}

/// A payload as text: quoted when it is UTF-8, else `0x` and hex.
fn quoted(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(t) => format!("{t:?}"),
        Err(_) => format!("0x{}", hex::encode(payload)),
    }
}

impl<'a> EntryJson<'a> {
    /// The JSON view of `d`.
    pub fn new(d: &'a Entry) -> Self {
        let mut j = EntryJson {
            seq: d.seq,
            conv: d.conv.to_string(),
            conv_seq: (d.conv_seq != 0).then_some(d.conv_seq),
            topic: d.topic,
            from_user: d.from_user,
            from_device: d.from_device,
            from_seq: d.from_seq,
            time_ms: d.time_ms,
            kind: "message",
            msg_type: None,
            text: None,
            payload_hex: None,
            status: None,
            target_device: None,
            target_seq: None,
            scope: None,
            event: None,
            user: None,
            role: None,
        };
        match &d.body {
            SyncBody::Message { msg_type, payload } => {
                j.msg_type = Some(*msg_type);
                match std::str::from_utf8(payload) {
                    Ok(t) => j.text = Some(t),
                    Err(_) => j.payload_hex = Some(hex::encode(payload)),
                }
            }
            SyncBody::Receipt {
                status,
                target_device,
                target_seq,
            } => {
                j.kind = "receipt";
                j.status = Some(status_name(status));
                j.target_device = Some(*target_device);
                j.target_seq = Some(*target_seq);
            }
            SyncBody::Recall {
                target_device,
                target_seq,
            } => {
                j.kind = "recall";
                j.target_device = Some(*target_device);
                j.target_seq = Some(*target_seq);
            }
            SyncBody::Read => j.kind = "read",
            SyncBody::Deleted { scope } => {
                j.kind = "deleted";
                j.scope = Some(scope_name(*scope));
            }
            SyncBody::Member(e) => {
                j.kind = "member";
                j.event = Some(event_name(e.kind));
                j.user = Some(e.user);
                j.role = Some(role_name(e.role));
            }
        }
        j
    }
}

/// One line for an entry: JSON, or a short human form.
pub fn entry_line(d: &Entry, json: bool) -> String {
    if json {
        return serde_json::to_string(&EntryJson::new(d)).expect("plain data serialises");
    }
    let from = format!("{}/{}", d.from_user, d.from_device);
    let at = match d.conv_seq {
        0 => d.conv.to_string(),
        n => format!("{}#{n}", d.conv),
    };
    match &d.body {
        SyncBody::Message { msg_type, payload } => format!(
            "#{} {at} from {from} (msg {}, type {msg_type}): {}",
            d.seq,
            d.from_seq,
            quoted(payload)
        ),
        SyncBody::Receipt {
            status,
            target_device,
            target_seq,
        } => format!(
            "#{} {at} receipt from {from}: {} up to your device {target_device} msg {target_seq}",
            d.seq,
            status_name(status)
        ),
        SyncBody::Recall {
            target_device,
            target_seq,
        } => format!(
            "#{} {at} recall from {from}: message {target_seq} of device {target_device}",
            d.seq
        ),
        SyncBody::Read => format!(
            "#{} {at} read up to here on device {}",
            d.seq, d.from_device
        ),
        SyncBody::Deleted { scope } => format!(
            "#{} {at} {} deleted on device {}",
            d.seq,
            scope_name(*scope),
            d.from_device
        ),
        SyncBody::Member(e) => format!(
            "#{} {at} member {}: user {} ({}), by {from}",
            d.seq,
            event_name(e.kind),
            e.user,
            role_name(e.role)
        ),
    }
}

#[derive(Serialize)]
struct PreviewJson<'a> {
    seq: u64,
    from_user: u64,
    time_ms: u64,
    msg_type: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_hex: Option<String>,
}

#[derive(Serialize)]
struct ConvJson<'a> {
    conv: u64,
    unread: u64,
    first_unread_seq: u64,
    first_unread_time_ms: u64,
    last_seq: u64,
    previews: Vec<PreviewJson<'a>>,
}

#[derive(Serialize)]
struct TotalJson {
    conversations: u64,
    total_unread: u64,
    head: u64,
}

/// The conversation summary: a total line, then one line per conversation
/// (JSON objects with `json`, else text with indented previews).
pub fn summary_lines(
    convs: &[Summary],
    end: &SummaryEnd,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if json {
        let total = TotalJson {
            conversations: end.conv_count,
            total_unread: end.total_unread,
            head: end.head,
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string(&total).expect("plain data")
        )?;
        for s in convs {
            let previews = s
                .previews
                .iter()
                .map(|p| {
                    let text = std::str::from_utf8(&p.head).ok();
                    PreviewJson {
                        seq: p.seq,
                        from_user: p.from_user,
                        time_ms: p.time_ms,
                        msg_type: p.msg_type,
                        text,
                        payload_hex: text.is_none().then(|| hex::encode(&p.head)),
                    }
                })
                .collect();
            let c = ConvJson {
                conv: s.conv,
                unread: s.unread,
                first_unread_seq: s.first_unread_seq,
                first_unread_time_ms: s.first_unread_time_ms,
                last_seq: s.last_seq,
                previews,
            };
            writeln!(out, "{}", serde_json::to_string(&c).expect("plain data"))?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{} conversations with unread messages, {} unread in all (inbox head {})",
        end.conv_count, end.total_unread, end.head
    )?;
    for s in convs {
        writeln!(
            out,
            "conv {}: {} unread, first #{}, last #{}",
            s.conv, s.unread, s.first_unread_seq, s.last_seq
        )?;
        for p in &s.previews {
            writeln!(
                out,
                "    #{} from {}: {}",
                p.seq,
                p.from_user,
                quoted(&p.head)
            )?;
        }
    }
    Ok(())
}
