//! Incoming entries between the client library and the app's streams.
//!
//! The sidecar runs the library with `manual_release`: an entry is released
//! to the server (and the durable checkpoint moves) only when the app
//! acknowledges it (`POST /v1/events/ack`). Until then it stays here, and
//! every stream that (re)connects without a later `Last-Event-ID` gets it
//! again. The buffer is bounded without dropping anything: the server
//! pushes no more than its window of unreleased entries (and pulls ask for
//! the next page only once the previous one is released), so an app that
//! never reads or never acknowledges stops the flow at the server, where
//! the rest waits durably.
//!
//! Positions are inbox sequences. If the inbox's sequences start again (the
//! server's store was reset: a new epoch), the buffer starts again too and
//! streams are sent a `reset` event.

use std::collections::VecDeque;
use std::sync::Mutex;

use tern_core::wire::{Entry, ReceiptStatus, SyncBody};
use tokio::sync::watch;

/// The unacknowledged entries and the stream positions.
pub struct EventBuffer {
    inner: Mutex<Inner>,
    /// Bumped on every change; streams wait on it.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    /// Everything up to here is acknowledged by the app.
    acked: u64,
    /// Highest position received.
    last: u64,
    /// Inbox head the server reported at the last login: positions up to
    /// here exist even if not received yet (after a sidecar restart, an
    /// app may acknowledge what it processed before, ahead of redelivery).
    head: u64,
    /// Inbox resets seen.
    resets: u64,
    /// Highest sequence of this device's own messages a receipt said was
    /// delivered (or read).
    delivered_up_to: u64,
    version: u64,
    /// Entries received since start.
    received: u64,
}

/// A snapshot for `GET /v1/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Positions {
    /// Acknowledged up to.
    pub acked: u64,
    /// Highest received.
    pub last: u64,
    /// Held, waiting for acknowledgement.
    pub buffered: usize,
    /// Inbox resets seen.
    pub resets: u64,
    /// Entries received since start.
    pub received: u64,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// Past the last event delivered.
    Beyond {
        /// The last position received.
        last: u64,
    },
}

impl Default for EventBuffer {
    fn default() -> Self {
        EventBuffer {
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(0).0,
        }
    }
}

impl EventBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, inner: &mut Inner) {
        inner.version += 1;
        self.changed.send_replace(inner.version);
    }

    /// A login said delivery resumes after `checkpoint`, the inbox head
    /// being `head`.
    pub fn start_at(&self, checkpoint: u64, head: u64) {
        let mut i = self.lock();
        i.head = i.head.max(head);
        if i.last == 0 && i.entries.is_empty() {
            i.acked = i.acked.max(checkpoint);
            i.last = i.last.max(checkpoint);
            self.bump(&mut i);
        }
    }

    /// An entry from the library, in order. `device` is this sidecar's.
    /// Returns true when the app has acknowledged it already (ahead of its
    /// redelivery): the caller releases it at once and no stream sees it.
    pub fn push(&self, d: Entry, device: u32) -> bool {
        let mut i = self.lock();
        if d.seq <= i.last {
            // The library never hands an entry twice within one inbox, so
            // sequences going back mean a new inbox (store reset).
            i.entries.clear();
            i.acked = d.seq - 1;
            i.head = 0;
            i.resets += 1;
        }
        if let SyncBody::Receipt {
            status: ReceiptStatus::Delivered | ReceiptStatus::Read,
            target_device,
            target_seq,
        } = &d.body
        {
            if *target_device == device {
                i.delivered_up_to = i.delivered_up_to.max(*target_seq);
            }
        }
        i.last = d.seq;
        i.head = i.head.max(d.seq);
        i.received += 1;
        let acked = d.seq <= i.acked;
        if !acked {
            i.entries.push_back(d);
        }
        self.bump(&mut i);
        acked
    }

    /// The app acknowledged everything up to `up_to`. Returns the new
    /// acknowledged position, or `None` if nothing moved.
    pub fn ack(&self, up_to: u64) -> Result<Option<u64>, AckError> {
        let mut i = self.lock();
        if up_to > i.last.max(i.head) {
            return Err(AckError::Beyond {
                last: i.last.max(i.head),
            });
        }
        if up_to <= i.acked {
            return Ok(None);
        }
        i.acked = up_to;
        while i.entries.front().is_some_and(|e| e.seq <= up_to) {
            i.entries.pop_front();
        }
        self.bump(&mut i);
        Ok(Some(up_to))
    }

    /// Up to `max` entries after `cursor` (or after the acknowledged
    /// position, whichever is later), and the reset count they belong to.
    pub fn after(&self, cursor: u64, max: usize) -> (Vec<Entry>, u64) {
        let i = self.lock();
        let from = cursor.max(i.acked);
        let out = i
            .entries
            .iter()
            .filter(|e| e.seq > from)
            .take(max)
            .cloned()
            .collect();
        (out, i.resets)
    }

    /// Where a stream starts: after `last_event_id` if given, never before
    /// the acknowledged position.
    pub fn start_cursor(&self, last_event_id: Option<u64>) -> (u64, u64) {
        let i = self.lock();
        (last_event_id.unwrap_or(0).max(i.acked), i.resets)
    }

    /// The acknowledged position.
    pub fn acked(&self) -> u64 {
        self.lock().acked
    }

    /// What a receipt said was delivered, for `GET /v1/messages/{id}`.
    pub fn delivered_up_to(&self) -> u64 {
        self.lock().delivered_up_to
    }

    /// Positions for status and metrics.
    pub fn positions(&self) -> Positions {
        let i = self.lock();
        Positions {
            acked: i.acked,
            last: i.last,
            buffered: i.entries.len(),
            resets: i.resets,
            received: i.received,
        }
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wakes every stream (shutdown).
    pub fn wake_all(&self) {
        let mut i = self.lock();
        self.bump(&mut i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            conv: tern_core::wire::ConvRef::direct(1),
            conv_seq: seq,
            topic: 1,
            from_user: 1,
            from_device: 1,
            from_seq: seq,
            time_ms: 0,
            body: SyncBody::Message {
                msg_type: 0,
                payload: bytes::Bytes::new(),
            },
        }
    }

    #[test]
    fn unacknowledged_entries_come_again_acknowledged_ones_never() {
        let b = EventBuffer::default();
        b.start_at(10, 15);
        for s in 11..=15 {
            b.push(entry(s), 1);
        }
        // A stream that read up to 13 and reconnects with Last-Event-ID.
        let (cursor, _) = b.start_cursor(Some(13));
        let seqs: Vec<u64> = b.after(cursor, 10).0.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![14, 15]);
        // An app that crashed (no Last-Event-ID) gets everything unacknowledged.
        assert_eq!(b.after(b.start_cursor(None).0, 10).0.len(), 5);
        assert_eq!(b.ack(12), Ok(Some(12)));
        assert_eq!(b.ack(12), Ok(None));
        assert_eq!(b.ack(16), Err(AckError::Beyond { last: 15 }));
        let seqs: Vec<u64> = b.after(0, 10).0.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![13, 14, 15]);
        assert_eq!(b.positions().buffered, 3);
    }

    #[test]
    fn an_acknowledgement_ahead_of_redelivery_releases_on_arrival() {
        let b = EventBuffer::default();
        // Restarted: the server says 5 entries exist, none received yet.
        b.start_at(2, 5);
        assert_eq!(b.ack(4), Ok(Some(4)));
        assert_eq!(b.ack(6), Err(AckError::Beyond { last: 5 }));
        assert!(b.push(entry(3), 1), "acknowledged before it came");
        assert!(b.push(entry(4), 1));
        assert!(!b.push(entry(5), 1));
        let seqs: Vec<u64> = b.after(0, 10).0.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![5]);
    }

    #[test]
    fn sequences_starting_again_are_a_reset() {
        let b = EventBuffer::default();
        b.push(entry(7), 1);
        b.push(entry(8), 1);
        b.push(entry(1), 1);
        let p = b.positions();
        assert_eq!((p.resets, p.acked, p.last, p.buffered), (1, 0, 1, 1));
    }

    #[test]
    fn receipts_for_this_device_move_delivered() {
        let b = EventBuffer::default();
        let mut r = entry(1);
        r.body = SyncBody::Receipt {
            status: ReceiptStatus::Delivered,
            target_device: 3,
            target_seq: 9,
        };
        b.push(r.clone(), 2);
        assert_eq!(b.delivered_up_to(), 0, "another device's receipt");
        r.seq = 2;
        b.push(r, 3);
        assert_eq!(b.delivered_up_to(), 9);
    }
}
