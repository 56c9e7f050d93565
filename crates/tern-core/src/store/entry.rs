//! One entry of a user's sync timeline (the inbox), as the broker and the
//! store hold it, and how it is shown to a session of either protocol
//! version.
//!
//! A message entry does not carry the message: it names the record in the
//! conversation's storage timeline (`conv`, `conv_seq`), and the store's read
//! path attaches that record. So a message is stored once however many
//! timelines list it, and a recall reaches every copy at once. Entries
//! written before version 2 (a raw DELIVER frame) are read as entries of the
//! direct conversation with their sender, with `conv_seq` 0 and the message
//! inline.

use std::sync::Arc;

use bytes::Bytes;

use super::conv::ConvRecord;
use crate::conv::ConvKey;
use crate::wire::{
    ConvRef, DeleteScope, Deliver, Entry, EntryBody, Frame, Reader, ReceiptStatus, SyncBody,
};

/// One stored sync-timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its sequence in the user's sync timeline.
    pub seq: u64,
    /// What it is.
    pub entry: SyncEntry,
}

/// The content of a sync-timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEntry {
    /// The conversation it belongs to.
    pub conv: ConvKey,
    /// The record it is about (0: none, or an entry from before version 2).
    pub conv_seq: u64,
    /// Version 1's `conv` of the message (the application's tag).
    pub topic: u64,
    /// User whose action created it.
    pub from_user: u64,
    /// That user's device.
    pub from_device: u32,
    /// That device's uplink sequence (0 for server-made entries).
    pub from_seq: u64,
    /// Server wall clock when stored, ms since the Unix epoch.
    pub time_ms: u64,
    /// Version 1 devices see it (a message, receipt or recall addressed to
    /// the user by someone); otherwise only version 2 devices do (own
    /// copies, read positions, deletions).
    pub shared: bool,
    /// What kind of entry, with its fields.
    pub item: SyncItem,
}

/// The kinds of sync-timeline entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncItem {
    /// A message; the store attaches its record when reading (a recalled
    /// one has no payload).
    Message(Arc<ConvRecord>),
    /// A DELIVERED or READ receipt about messages the user sent.
    Receipt {
        /// DELIVERED or READ.
        status: ReceiptStatus,
        /// The user's device that sent them.
        target_device: u32,
        /// Its uplink sequence: every message up to it.
        target_seq: u64,
    },
    /// A message was recalled; its record is `conv_seq`.
    Recall {
        /// The recalled message's device.
        target_device: u32,
        /// Its uplink sequence.
        target_seq: u64,
    },
    /// The user's read position in `conv` is now `conv_seq`.
    Read,
    /// The user deleted, for itself, up to or exactly `conv_seq`.
    Deleted(DeleteScope),
}

/// The id of a delivered message, for DELIVERED receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Version 1 conversation tag of the message.
    pub topic: u64,
    /// Its conversation.
    pub conv: ConvKey,
    /// Its record (0 for messages from before version 2).
    pub conv_seq: u64,
    /// Sending user.
    pub from_user: u64,
    /// Sending device.
    pub from_device: u32,
    /// The sending device's uplink sequence of the message.
    pub from_seq: u64,
}

impl StoredEntry {
    /// Entry `seq`: a message from `from_user` carrying `payload` inline,
    /// outside any storage timeline (`conv_seq` 0), like the entries stored
    /// before conversations. For tools and tests that need distinct
    /// entries.
    pub fn inline(seq: u64, from_user: u64, payload: Bytes) -> StoredEntry {
        let conv = ConvKey::Direct {
            lo: from_user,
            hi: from_user,
        };
        StoredEntry {
            seq,
            entry: SyncEntry {
                conv,
                conv_seq: 0,
                topic: 0,
                from_user,
                from_device: 1,
                from_seq: seq,
                time_ms: 0,
                shared: true,
                item: SyncItem::Message(Arc::new(ConvRecord {
                    conv_seq: 0,
                    from_user,
                    from_device: 1,
                    from_seq: seq,
                    time_ms: 0,
                    topic: 0,
                    msg_type: 0,
                    payload,
                    recalled: false,
                    event: None,
                })),
            },
        }
    }
}

impl SyncEntry {
    /// The message id, when this entry is a message.
    pub fn origin(&self) -> Option<Origin> {
        matches!(self.item, SyncItem::Message(_)).then_some(Origin {
            topic: self.topic,
            conv: self.conv,
            conv_seq: self.conv_seq,
            from_user: self.from_user,
            from_device: self.from_device,
            from_seq: self.from_seq,
        })
    }

    /// A version 1 DELIVER frame of it as entry `seq`, or `None` for the
    /// kinds version 1 does not have.
    pub fn to_deliver(&self, seq: u64) -> Option<Deliver> {
        let body = match &self.item {
            SyncItem::Message(r) if r.event.is_some() => return None,
            SyncItem::Message(r) => EntryBody::Message {
                msg_type: r.msg_type,
                payload: r.payload.clone(),
            },
            SyncItem::Receipt {
                status,
                target_device,
                target_seq,
            } => EntryBody::Receipt {
                status: *status,
                target_device: *target_device,
                target_seq: *target_seq,
            },
            SyncItem::Recall {
                target_device,
                target_seq,
            } => EntryBody::Recall {
                target_device: *target_device,
                target_seq: *target_seq,
            },
            SyncItem::Read | SyncItem::Deleted(_) => return None,
        };
        Some(Deliver {
            seq,
            conv: self.topic,
            from_user: self.from_user,
            from_device: self.from_device,
            from_seq: self.from_seq,
            time_ms: self.time_ms,
            body,
        })
    }

    /// A version 2 ENTRY frame of it as entry `seq` of `owner`'s timeline.
    pub fn to_entry(&self, seq: u64, owner: u64) -> Entry {
        let body = match &self.item {
            SyncItem::Message(r) => match r.event {
                Some(e) => SyncBody::Member(e),
                None => SyncBody::Message {
                    msg_type: r.msg_type,
                    payload: r.payload.clone(),
                },
            },
            SyncItem::Receipt {
                status,
                target_device,
                target_seq,
            } => SyncBody::Receipt {
                status: *status,
                target_device: *target_device,
                target_seq: *target_seq,
            },
            SyncItem::Recall {
                target_device,
                target_seq,
            } => SyncBody::Recall {
                target_device: *target_device,
                target_seq: *target_seq,
            },
            SyncItem::Read => SyncBody::Read,
            SyncItem::Deleted(scope) => SyncBody::Deleted { scope: *scope },
        };
        Entry {
            seq,
            conv: self.conv.view(owner),
            conv_seq: self.conv_seq,
            topic: self.topic,
            from_user: self.from_user,
            from_device: self.from_device,
            from_seq: self.from_seq,
            time_ms: self.time_ms,
            body,
        }
    }

    /// Reads an entry stored before version 2 (a raw DELIVER frame) in
    /// `owner`'s timeline: it belongs to the direct conversation with its
    /// sender and carries its message inline. `None` if it is not one.
    pub fn from_legacy_frame(owner: u64, frame: &Bytes) -> Option<SyncEntry> {
        let Ok(Frame::Deliver(d)) = Frame::decode(&mut Reader::new(frame.clone())) else {
            return None;
        };
        let item = match d.body {
            EntryBody::Message { msg_type, payload } => SyncItem::Message(Arc::new(ConvRecord {
                conv_seq: 0,
                from_user: d.from_user,
                from_device: d.from_device,
                from_seq: d.from_seq,
                time_ms: d.time_ms,
                topic: d.conv,
                msg_type,
                payload,
                recalled: false,
                event: None,
            })),
            EntryBody::Receipt {
                status,
                target_device,
                target_seq,
            } => SyncItem::Receipt {
                status,
                target_device,
                target_seq,
            },
            EntryBody::Recall {
                target_device,
                target_seq,
            } => SyncItem::Recall {
                target_device,
                target_seq,
            },
        };
        Some(SyncEntry {
            conv: ConvKey::of(owner, ConvRef::direct(d.from_user)),
            conv_seq: 0,
            topic: d.conv,
            from_user: d.from_user,
            from_device: d.from_device,
            from_seq: d.from_seq,
            time_ms: d.time_ms,
            shared: true,
            item,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_to_bytes, ConvKind};

    fn record() -> Arc<ConvRecord> {
        Arc::new(ConvRecord {
            conv_seq: 4,
            from_user: 1,
            from_device: 2,
            from_seq: 7,
            time_ms: 1_700_000_000_123,
            topic: 9,
            msg_type: 1,
            payload: Bytes::from_static(b"hi"),
            recalled: false,
            event: None,
        })
    }

    fn entry(item: SyncItem, shared: bool) -> SyncEntry {
        SyncEntry {
            conv: ConvKey::Direct { lo: 1, hi: 5 },
            conv_seq: 4,
            topic: 9,
            from_user: 1,
            from_device: 2,
            from_seq: 7,
            time_ms: 1_700_000_000_123,
            shared,
            item,
        }
    }

    #[test]
    fn each_user_sees_the_conversation_by_the_other_user() {
        let e = entry(SyncItem::Message(record()), true);
        assert_eq!(e.to_entry(3, 5).conv, ConvRef::direct(1));
        assert_eq!(e.to_entry(3, 1).conv, ConvRef::direct(5));
        assert_eq!(e.to_entry(3, 5).conv.kind, ConvKind::Direct);
        let d = e.to_deliver(3).expect("a message is version 1");
        assert_eq!((d.seq, d.conv, d.from_seq), (3, 9, 7));
        assert!(entry(SyncItem::Read, false).to_deliver(3).is_none());
        assert!(entry(SyncItem::Deleted(DeleteScope::Message), false)
            .to_deliver(3)
            .is_none());
    }

    #[test]
    fn a_legacy_frame_reads_as_a_direct_conversation_entry() {
        let d = Deliver {
            seq: 3,
            conv: 9,
            from_user: 1,
            from_device: 2,
            from_seq: 7,
            time_ms: 1_700_000_000_123,
            body: EntryBody::Message {
                msg_type: 1,
                payload: Bytes::from_static(b"hi"),
            },
        };
        let frame = encode_to_bytes(&Frame::Deliver(d.clone()));
        let e = SyncEntry::from_legacy_frame(5, &frame).expect("a DELIVER");
        assert_eq!(e.to_deliver(3), Some(d), "version 1 sees it unchanged");
        assert_eq!(e.conv, ConvKey::Direct { lo: 1, hi: 5 });
        assert_eq!(e.origin().map(|o| o.from_seq), Some(7));
        assert!(SyncEntry::from_legacy_frame(5, &Bytes::from_static(b"junk")).is_none());
    }
}
