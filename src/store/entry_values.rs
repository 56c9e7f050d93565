//! The encoding of one sync-timeline entry. A row of the inbox column
//! family holds one entry, or a run of them (`run_rows.rs`).
//!
//! ```text
//! format 2: 0xE2 | flags u8 (bit 0: shared) | kind u8 | conv key (17)
//!                | conv_seq u64 | topic u64 | from_user u64 | from_device u32
//!                | from_seq u64 | time_ms u64 | body                       (64 + body)
//!   kind 0 message:  msg_type u64 (the record `conv`/`conv_seq` holds the rest)
//!   kind 5 message outside any timeline (`conv_seq` 0): msg_type u64
//!                    | payload_len u32 | payload
//!   kind 1 receipt:  status u8 | target_device u32 | target_seq u64
//!   kind 2 recall:   target_device u32 | target_seq u64
//!   kind 3 read:     (nothing)
//!   kind 4 deleted:  scope u8
//!   kind 6 group membership event (store format 3): event u8 | user u64
//!                    | role u8 (the record holds it too; kept here so
//!                    that an entry outliving its record still shows it)
//! ```
//!
//! A message entry names its record instead of copying it: the read path
//! attaches the record (`rocks_read.rs`). Format 1 values, written before
//! conversations, are the raw version 1 DELIVER frame (first byte `0x11`,
//! the frame type), read as entries of the direct conversation with their
//! sender.

use std::sync::Arc;

use bytes::Bytes;
use tern_core::conv::{ConvKey, CONV_KEY_LEN};
use tern_core::store::{ConvRecord, StoredEntry, SyncEntry, SyncItem};
use tern_core::wire::{ty, DeleteScope, GroupEvent, GroupEventKind, GroupRole, ReceiptStatus};

use super::value::{DecodeError, ValueReader};

/// First byte of a format 2 entry (no frame type has this value).
pub const ENTRY_FORMAT: u8 = 0xE2;
const SHARED: u8 = 0x01;

/// Encodes an entry (format 2).
pub fn encode_entry(e: &SyncEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(80);
    encode_entry_into(e, &mut v);
    v
}

/// Appends the encoding of `e` (format 2) to `v`.
pub fn encode_entry_into(e: &SyncEntry, v: &mut Vec<u8>) {
    v.push(ENTRY_FORMAT);
    v.push(if e.shared { SHARED } else { 0 });
    let kind = match &e.item {
        SyncItem::Message(_) if e.conv_seq == 0 => 5,
        SyncItem::Message(r) if r.event.is_some() => 6,
        SyncItem::Message(_) => 0,
        SyncItem::Receipt { .. } => 1,
        SyncItem::Recall { .. } => 2,
        SyncItem::Read => 3,
        SyncItem::Deleted(_) => 4,
    };
    v.push(kind);
    v.extend_from_slice(&e.conv.to_bytes());
    for x in [e.conv_seq, e.topic, e.from_user] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(&e.from_device.to_be_bytes());
    v.extend_from_slice(&e.from_seq.to_be_bytes());
    v.extend_from_slice(&e.time_ms.to_be_bytes());
    match &e.item {
        SyncItem::Message(r) if e.conv_seq != 0 && r.event.is_some() => {
            if let Some(ev) = r.event {
                v.push(ev.kind as u8);
                v.extend_from_slice(&ev.user.to_be_bytes());
                v.push(ev.role as u8);
            }
        }
        SyncItem::Message(r) => {
            v.extend_from_slice(&r.msg_type.to_be_bytes());
            if e.conv_seq == 0 {
                let n = u32::try_from(r.payload.len()).unwrap_or(u32::MAX);
                v.extend_from_slice(&n.to_be_bytes());
                v.extend_from_slice(&r.payload[..n as usize]);
            }
        }
        SyncItem::Receipt {
            status,
            target_device,
            target_seq,
        } => {
            v.push(*status as u8);
            v.extend_from_slice(&target_device.to_be_bytes());
            v.extend_from_slice(&target_seq.to_be_bytes());
        }
        SyncItem::Recall {
            target_device,
            target_seq,
        } => {
            v.extend_from_slice(&target_device.to_be_bytes());
            v.extend_from_slice(&target_seq.to_be_bytes());
        }
        SyncItem::Read => {}
        SyncItem::Deleted(scope) => v.push(*scope as u8),
    }
}

/// Decodes entry `seq` of `owner`'s timeline. A message entry of format 2
/// comes with a placeholder record (the recall marker of what it names);
/// the caller attaches the stored record over it.
pub fn decode_entry(owner: u64, seq: u64, bytes: &[u8]) -> Result<StoredEntry, DecodeError> {
    if bytes.first() == Some(&ty::DELIVER) {
        let entry = SyncEntry::from_legacy_frame(owner, &Bytes::copy_from_slice(bytes)).ok_or(
            DecodeError::UnknownKind {
                what: "version 1 frame",
                value: ty::DELIVER,
            },
        )?;
        return Ok(StoredEntry { seq, entry });
    }
    let mut r = ValueReader::versioned(bytes, ENTRY_FORMAT)?;
    let flags = r.u8()?;
    if flags & !SHARED != 0 {
        return Err(DecodeError::BadFlags(flags));
    }
    let kind = r.u8()?;
    let conv = ConvKey::from_bytes(r.bytes(CONV_KEY_LEN)?).ok_or(DecodeError::UnknownKind {
        what: "conversation key",
        value: bytes.get(3).copied().unwrap_or(0),
    })?;
    let (conv_seq, topic, from_user) = (r.u64()?, r.u64()?, r.u64()?);
    let from_device = r.u32()?;
    let (from_seq, time_ms) = (r.u64()?, r.u64()?);
    let item = match kind {
        0 => SyncItem::Message(Arc::new(ConvRecord {
            conv_seq,
            from_user,
            from_device,
            from_seq,
            time_ms,
            topic,
            msg_type: r.u64()?,
            payload: Bytes::new(),
            recalled: true,
            event: None,
        })),
        1 => SyncItem::Receipt {
            status: match r.u8()? {
                1 => ReceiptStatus::Delivered,
                2 => ReceiptStatus::Read,
                value => {
                    return Err(DecodeError::UnknownKind {
                        what: "receipt status",
                        value,
                    })
                }
            },
            target_device: r.u32()?,
            target_seq: r.u64()?,
        },
        2 => SyncItem::Recall {
            target_device: r.u32()?,
            target_seq: r.u64()?,
        },
        5 => {
            let msg_type = r.u64()?;
            let n = r.u32()? as usize;
            if n > tern_core::wire::limits::MAX_PAYLOAD {
                return Err(DecodeError::TooLong {
                    len: n as u64,
                    max: tern_core::wire::limits::MAX_PAYLOAD,
                });
            }
            SyncItem::Message(Arc::new(ConvRecord {
                conv_seq,
                from_user,
                from_device,
                from_seq,
                time_ms,
                topic,
                msg_type,
                payload: Bytes::copy_from_slice(r.bytes(n)?),
                recalled: false,
                event: None,
            }))
        }
        6 => {
            let kind = r.u8()?;
            let kind = GroupEventKind::from_u8(kind).ok_or(DecodeError::UnknownKind {
                what: "group event",
                value: kind,
            })?;
            let user = r.u64()?;
            let role = r.u8()?;
            let role = GroupRole::from_u8(role).ok_or(DecodeError::UnknownKind {
                what: "group role",
                value: role,
            })?;
            SyncItem::Message(Arc::new(ConvRecord {
                conv_seq,
                from_user,
                from_device,
                from_seq,
                time_ms,
                topic,
                msg_type: 0,
                payload: Bytes::new(),
                recalled: true,
                event: Some(GroupEvent { kind, user, role }),
            }))
        }
        3 => SyncItem::Read,
        4 => SyncItem::Deleted(match r.u8()? {
            1 => DeleteScope::Conversation,
            2 => DeleteScope::Message,
            value => {
                return Err(DecodeError::UnknownKind {
                    what: "delete scope",
                    value,
                })
            }
        }),
        value => {
            return Err(DecodeError::UnknownKind {
                what: "entry kind",
                value,
            })
        }
    };
    r.finish()?;
    Ok(StoredEntry {
        seq,
        entry: SyncEntry {
            conv,
            conv_seq,
            topic,
            from_user,
            from_device,
            from_seq,
            time_ms,
            shared: flags & SHARED != 0,
            item,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::wire::{encode_to_bytes, Deliver, EntryBody, Frame};

    fn entry(item: SyncItem) -> SyncEntry {
        SyncEntry {
            conv: ConvKey::Direct { lo: 3, hi: 9 },
            conv_seq: 12,
            topic: 7,
            from_user: 3,
            from_device: 2,
            from_seq: 40,
            time_ms: 1_700_000_000_000,
            shared: true,
            item,
        }
    }

    #[test]
    fn entries_round_trip_and_messages_name_their_record() {
        let record = Arc::new(ConvRecord {
            conv_seq: 12,
            from_user: 3,
            from_device: 2,
            from_seq: 40,
            time_ms: 1_700_000_000_000,
            topic: 7,
            msg_type: 5,
            payload: Bytes::from_static(b"not stored here"),
            recalled: false,
            event: None,
        });
        let items = [
            SyncItem::Receipt {
                status: ReceiptStatus::Read,
                target_device: 1,
                target_seq: 2,
            },
            SyncItem::Recall {
                target_device: 1,
                target_seq: 2,
            },
            SyncItem::Read,
            SyncItem::Deleted(DeleteScope::Message),
        ];
        for item in items {
            let e = entry(item);
            let back = decode_entry(9, 4, &encode_entry(&e)).expect("decodes");
            assert_eq!(back.entry, e);
        }
        let e = entry(SyncItem::Message(record.clone()));
        let back = decode_entry(9, 4, &encode_entry(&e)).expect("decodes");
        let SyncItem::Message(placeholder) = &back.entry.item else {
            panic!("a message");
        };
        assert!(
            placeholder.payload.is_empty(),
            "the payload is the record's"
        );
        assert_eq!(placeholder.msg_type, 5);
    }

    #[test]
    fn a_message_outside_any_timeline_keeps_its_payload_inline() {
        let e = StoredEntry::inline(4, 3, Bytes::from_static(b"tag"));
        let back = decode_entry(3, 4, &encode_entry(&e.entry)).expect("decodes");
        assert_eq!(back, e);
    }

    #[test]
    fn a_format_1_entry_is_its_deliver_frame() {
        let d = Deliver {
            seq: 4,
            conv: 7,
            from_user: 3,
            from_device: 2,
            from_seq: 40,
            time_ms: 1_700_000_000_000,
            body: EntryBody::Message {
                msg_type: 0,
                payload: Bytes::from_static(b"old"),
            },
        };
        let raw = encode_to_bytes(&Frame::Deliver(d.clone()));
        let back = decode_entry(9, 4, &raw).expect("format 1");
        assert_eq!(back.entry.to_deliver(4), Some(d));
    }

    #[test]
    fn corrupt_entries_are_typed_errors() {
        let good = encode_entry(&entry(SyncItem::Read));
        for cut in 0..good.len() {
            assert!(decode_entry(9, 1, &good[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = good.clone();
        bad[2] = 9;
        assert!(matches!(
            decode_entry(9, 1, &bad),
            Err(DecodeError::UnknownKind { .. })
        ));
        let mut bad = good;
        bad[1] = 0x80;
        assert_eq!(decode_entry(9, 1, &bad), Err(DecodeError::BadFlags(0x80)));
    }
}
