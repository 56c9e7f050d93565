//! What a simulated device's application knows of its user's
//! conversations (protocol version 2): every message it read from its sync
//! timeline, by conversation and `conv_seq`, and the user's read position
//! as this device saw it move (its own messages and marks, and the read
//! entries of the user's other devices). The application keeps it in its
//! state folder, as an app keeps its local history, so it survives a crash
//! of the process. At the end of a run the audit (`audit.rs`) compares it
//! with what the server answers every device.

use std::collections::BTreeMap;

use bytes::Bytes;
use tern_core::wire::{ConvRef, Entry, SyncBody};

/// One conversation as the device holds it.
#[derive(Debug, Default, Clone)]
pub struct ConvView {
    /// `conv_seq` → (sender, payload).
    pub msgs: BTreeMap<u64, (u64, Bytes)>,
    /// The user's read position.
    pub read: u64,
    /// Which of `msgs` are group membership events (held like records,
    /// never unread).
    pub events: std::collections::BTreeSet<u64>,
}

/// A read position to report (MARK_READ), with the READ receipt for the
/// newest message read from the other user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub conv: ConvRef,
    pub up_to: u64,
    pub receipt_device: u32,
    pub receipt_seq: u64,
}

/// Every conversation the device holds.
#[derive(Debug, Default, Clone)]
pub struct Views {
    pub convs: BTreeMap<ConvRef, ConvView>,
}

impl Views {
    /// The application read `e`. Returns a contradiction with what it held
    /// (one `conv_seq`, two messages), if any.
    pub fn apply(&mut self, user: u64, e: &Entry) -> Option<String> {
        if e.conv_seq == 0 {
            return None; // version 1: outside any storage timeline
        }
        match &e.body {
            SyncBody::Message { payload, .. } => {
                let v = self.convs.entry(e.conv).or_default();
                if e.from_user == user {
                    // Whoever writes has read what came before.
                    v.read = v.read.max(e.conv_seq);
                }
                let new = (e.from_user, payload.clone());
                match v.msgs.insert(e.conv_seq, new.clone()) {
                    Some(old) if old != new => Some(format!(
                        "{:?} conv_seq {} was {old:?}, now {new:?}",
                        e.conv, e.conv_seq
                    )),
                    _ => None,
                }
            }
            SyncBody::Read => {
                let v = self.convs.entry(e.conv).or_default();
                v.read = v.read.max(e.conv_seq);
                None
            }
            SyncBody::Member(_) => {
                let v = self.convs.entry(e.conv).or_default();
                v.events.insert(e.conv_seq);
                v.msgs.insert(e.conv_seq, (e.from_user, Bytes::new()));
                None
            }
            _ => None,
        }
    }

    /// The device marks `conv` read up to `up_to` itself.
    pub fn mark(&mut self, conv: ConvRef, up_to: u64) {
        let v = self.convs.entry(conv).or_default();
        v.read = v.read.max(up_to);
    }

    /// Messages from other users past the read position.
    pub fn unread(&self, user: u64, conv: &ConvRef) -> u64 {
        self.convs.get(conv).map_or(0, |v| {
            v.msgs
                .range(v.read + 1..)
                .filter(|(seq, (from, _))| *from != user && !v.events.contains(seq))
                .count() as u64
        })
    }

    /// A mark for everything read in `conv` from other users, if that moves
    /// the read position: the newest such message among `read`.
    pub fn mark_for(&self, user: u64, read: &[Entry], conv: ConvRef) -> Option<Mark> {
        let newest = read
            .iter()
            .filter(|e| e.conv == conv && e.from_user != user)
            .filter(|e| matches!(e.body, SyncBody::Message { .. }))
            .max_by_key(|e| e.conv_seq)?;
        let held = self.convs.get(&conv).map_or(0, |v| v.read);
        (newest.conv_seq > held).then_some(Mark {
            conv,
            up_to: newest.conv_seq,
            receipt_device: newest.from_device,
            receipt_seq: newest.from_seq,
        })
    }
}
