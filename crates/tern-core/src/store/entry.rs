//! One inbox entry as stored, and what the broker needs to know about it
//! without decoding its frame again.

use bytes::Bytes;

use crate::wire::{Deliver, EntryBody, Frame, Reader};

/// One stored inbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its sequence in the inbox.
    pub seq: u64,
    /// The encoded DELIVER frame (type byte included), ready to send. This
    /// is all that is written to disk.
    pub frame: Bytes,
    /// Fields of `frame` the broker acts on, decoded once: at append time
    /// for new entries, by the store's read path for stored ones.
    pub meta: EntryMeta,
}

impl StoredEntry {
    /// An entry read back from storage: its [`EntryMeta`] is decoded from
    /// `frame`, once, here.
    pub fn new(seq: u64, frame: Bytes) -> StoredEntry {
        let meta = EntryMeta::of_frame(&frame);
        StoredEntry { seq, frame, meta }
    }
}

/// What the broker needs from a stored entry's DELIVER frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// The message id, for DELIVERED receipts; `None` when the entry is not
    /// a message (a receipt, a recall).
    pub origin: Option<Origin>,
    /// When the entry was stored (server wall clock, ms since the Unix
    /// epoch), for the retention sweep.
    pub time_ms: u64,
}

impl EntryMeta {
    /// For a frame that is not a DELIVER (the broker never stores one): no
    /// receipts, and a time no retention cutoff passes, so the retention
    /// sweep stops there.
    pub const UNDECODABLE: EntryMeta = EntryMeta {
        origin: None,
        time_ms: u64::MAX,
    };

    /// The meta of a DELIVER the broker is about to encode.
    pub fn of_deliver(d: &Deliver) -> EntryMeta {
        let origin = matches!(d.body, EntryBody::Message { .. }).then_some(Origin {
            conv: d.conv,
            from_user: d.from_user,
            from_device: d.from_device,
            from_seq: d.from_seq,
        });
        EntryMeta {
            origin,
            time_ms: d.time_ms,
        }
    }

    /// Decodes an encoded DELIVER frame; [`EntryMeta::UNDECODABLE`] if it
    /// is not one.
    pub fn of_frame(frame: &Bytes) -> EntryMeta {
        match Frame::decode(&mut Reader::new(frame.clone())) {
            Ok(Frame::Deliver(d)) => EntryMeta::of_deliver(&d),
            _ => EntryMeta::UNDECODABLE,
        }
    }
}

/// The id of a delivered message (with its conversation), for receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Conversation.
    pub conv: u64,
    /// Sending user.
    pub from_user: u64,
    /// Sending device.
    pub from_device: u32,
    /// The sending device's uplink sequence of the message.
    pub from_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_to_bytes, ReceiptStatus};

    fn deliver(body: EntryBody) -> Deliver {
        Deliver {
            seq: 3,
            conv: 9,
            from_user: 1,
            from_device: 2,
            from_seq: 7,
            time_ms: 1_700_000_000_123,
            body,
        }
    }

    #[test]
    fn decoding_the_frame_gives_what_the_append_recorded() {
        let bodies = [
            EntryBody::Message {
                msg_type: 1,
                payload: Bytes::from_static(b"hi"),
            },
            EntryBody::Receipt {
                status: ReceiptStatus::Delivered,
                target_device: 2,
                target_seq: 5,
            },
            EntryBody::Recall {
                target_device: 2,
                target_seq: 5,
            },
        ];
        for body in bodies {
            let d = deliver(body);
            let frame = encode_to_bytes(&Frame::Deliver(d.clone()));
            assert_eq!(EntryMeta::of_frame(&frame), EntryMeta::of_deliver(&d));
            assert_eq!(StoredEntry::new(3, frame).meta, EntryMeta::of_deliver(&d));
        }
        let message = EntryMeta::of_deliver(&deliver(EntryBody::Message {
            msg_type: 1,
            payload: Bytes::new(),
        }));
        assert_eq!(
            message.origin,
            Some(Origin {
                conv: 9,
                from_user: 1,
                from_device: 2,
                from_seq: 7
            })
        );
        assert_eq!(message.time_ms, 1_700_000_000_123);
    }

    #[test]
    fn a_frame_that_is_no_deliver_has_no_origin_and_never_expires() {
        for junk in [&b""[..], b"frame 5", &[0xff; 40]] {
            let meta = EntryMeta::of_frame(&Bytes::copy_from_slice(junk));
            assert_eq!(meta, EntryMeta::UNDECODABLE);
        }
    }
}
