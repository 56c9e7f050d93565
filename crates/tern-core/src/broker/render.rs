//! Sync-timeline entries as a session sees them: a DELIVER frame for a
//! version 1 session, an ENTRY frame for a version 2 one.

use bytes::Bytes;

use crate::store::StoredEntry;
use crate::wire::{encode_to_bytes, Deliver, EntryBody, Frame, ReceiptStatus, VERSION};

/// The encoded frame of `e` (in `owner`'s timeline) for a session speaking
/// protocol `version`.
pub(super) fn render(e: &StoredEntry, owner: u64, version: u8) -> Bytes {
    if version != VERSION {
        return encode_to_bytes(&Frame::Entry(e.entry.to_entry(e.seq, owner)));
    }
    let shared = e.entry.shared.then(|| e.entry.to_deliver(e.seq)).flatten();
    let deliver = shared.unwrap_or_else(|| {
        // Entries only version 2 knows are never appended while a version 1
        // device is registered, and a version 1 device never resumes below
        // the last of them (`lifecycle.rs`), so this is not reached. Should
        // it be, the sequence must still be filled: a DELIVERED receipt
        // about the user's own first message changes nothing for a client
        // (receipts only move forward).
        debug_assert!(false, "a version-2-only entry reached a version 1 session");
        Deliver {
            seq: e.seq,
            conv: e.entry.topic,
            from_user: e.entry.from_user,
            from_device: e.entry.from_device,
            from_seq: 0,
            time_ms: e.entry.time_ms,
            body: EntryBody::Receipt {
                status: ReceiptStatus::Delivered,
                target_device: e.entry.from_device,
                target_seq: 1,
            },
        }
    });
    encode_to_bytes(&Frame::Deliver(deliver))
}
