//! The downlink (server → client): committed entries pushed through the
//! retransmission queue and refilled from the store, the device's ACKs,
//! and the DELIVERED receipts they release.

use super::session::{DownItem, Downlink};
use super::{Broker, BrokerEvent};
use crate::reliability::SenderEvent;
use crate::store::{Origin, Store, StoredEntry, SyncEntry, SyncItem};
use crate::time::Time;
use crate::wire::{Ack, ReceiptStatus};

/// Most entries a login reads to issue the receipts its device's ACKs
/// would have (`Broker::receipts_on_login`).
const LOGIN_RECEIPT_SCAN: u64 = 1024;

impl<S: Store> Broker<S> {
    /// A committed entry for a session's user: push it if the session pushes.
    pub(super) fn offer_entry(&mut self, now: Time, sid: u64, entry: &StoredEntry) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let cfg = &self.cfg.downlink;
        match &mut s.down {
            Downlink::Push(sender) => {
                if sender.next_seq() == entry.seq && !sender.is_full() {
                    let item = DownItem {
                        frame: super::render::render(entry, s.user, s.version),
                        origin: entry.entry.origin(),
                    };
                    let _ = sender.push(cfg, now, item);
                }
            }
            Downlink::Pull => s.notify = Some(entry.seq),
        }
        self.touch(sid);
    }

    /// Tops a pushing session's queue up from the store.
    pub(super) fn refill(&mut self, now: Time, sid: u64) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let Downlink::Push(sender) = &s.down else {
            return;
        };
        let Some(u) = self.users.get(&s.user) else {
            return;
        };
        let head = u.committed_head;
        let next = sender.next_seq();
        if next > head || sender.is_full() || sender.is_failed() {
            return;
        }
        let room = (self.cfg.downlink.capacity - sender.len()).min(self.cfg.page_entries as usize);
        let user = s.user;
        let entries = match self.store.read_inbox(user, next - 1, room) {
            Ok(e) => e,
            Err(e) => {
                self.events.push_back(BrokerEvent::StoreReadFailed {
                    error: e.to_string(),
                });
                return;
            }
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let (owner, version) = (s.user, s.version);
        let cfg = &self.cfg.downlink;
        let Downlink::Push(sender) = &mut s.down else {
            return;
        };
        for e in entries {
            if e.seq != sender.next_seq() || e.seq > head {
                break;
            }
            let item = DownItem {
                frame: super::render::render(&e, owner, version),
                origin: e.entry.origin(),
            };
            if sender.push(cfg, now, item).is_err() {
                break;
            }
        }
        self.touch(sid);
    }

    pub(super) fn drain_downlink_events(&mut self, now: Time, sid: u64) {
        let mut released = Vec::new();
        let mut failed = false;
        {
            let Some(s) = self.sessions.get_mut(&sid) else {
                return;
            };
            let Downlink::Push(sender) = &mut s.down else {
                return;
            };
            while let Some(ev) = sender.poll_event() {
                match ev {
                    SenderEvent::Acked { seq, item } => {
                        if let Some(o) = item.origin {
                            released.push((seq, o));
                        }
                    }
                    SenderEvent::Failed { .. } => failed = true,
                }
            }
            if failed && !s.unreachable {
                s.unreachable = true;
            } else {
                failed = false;
            }
        }
        if failed {
            self.stats.unreachable += 1;
            if let Some(s) = self.sessions.get(&sid) {
                self.events.push_back(BrokerEvent::Unreachable {
                    user: s.user,
                    device: s.device,
                });
            }
        }
        if !released.is_empty() {
            self.issue_receipts(now, sid, &released);
            self.refill(now, sid);
        }
    }

    pub(super) fn on_downlink_ack(&mut self, now: Time, sid: u64, ack: Ack) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let (user, device) = (s.user, s.device);
        let head = self.users.get(&user).map_or(0, |u| u.committed_head);
        let cumulative = ack.cumulative.min(head);
        if let Downlink::Push(sender) = &mut s.down {
            let delay = std::time::Duration::from_micros(ack.delay_us);
            sender.handle_ack(now, cumulative, &ack.ranges, delay);
        }
        // Pulled entries acknowledged by ACK rather than by a next PULL: the
        // last page of a backlog, after which the session pushes.
        let page: Vec<_> = s
            .last_page
            .iter()
            .filter(|(q, _)| *q <= cumulative)
            .copied()
            .collect();
        s.last_page.retain(|(q, _)| *q > cumulative);
        self.issue_receipts(now, sid, &page);
        self.advance_checkpoint(now, user, device, cumulative);
        self.drain_downlink_events(now, sid);
        self.touch(sid);
    }

    /// A logging-in device holds entries `after < seq <= up_to` the server
    /// never heard it acknowledge: their receipts are issued now, as an ACK
    /// would have (at most [`LOGIN_RECEIPT_SCAN`] entries are read: more
    /// than a push window or a page, which is all a device can hold
    /// unacknowledged).
    pub(super) fn receipts_on_login(&mut self, now: Time, sid: u64, after: u64, up_to: u64) {
        let Some(user) = self.sessions.get(&sid).map(|s| s.user) else {
            return;
        };
        let after = after.max(up_to.saturating_sub(LOGIN_RECEIPT_SCAN));
        let max = (up_to - after) as usize;
        let entries = match self.store.read_inbox(user, after, max) {
            Ok(e) => e,
            Err(e) => {
                self.events.push_back(BrokerEvent::StoreReadFailed {
                    error: e.to_string(),
                });
                return;
            }
        };
        let acked: Vec<(u64, Origin)> = entries
            .iter()
            .take_while(|e| e.seq <= up_to)
            .filter_map(|e| e.entry.origin().map(|o| (e.seq, o)))
            .collect();
        self.issue_receipts(now, sid, &acked);
    }

    /// DELIVERED receipts for messages a device has acknowledged: one
    /// "up to" receipt per sending device, never repeated across devices.
    pub(super) fn issue_receipts(&mut self, now: Time, sid: u64, released: &[(u64, Origin)]) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (user, device) = (s.user, s.device);
        let mut best: Vec<Origin> = Vec::new();
        for (_, o) in released {
            // Group messages get no DELIVERED receipts: one per member
            // would cost the sender O(members) entries per message.
            if o.from_user == user || matches!(o.conv, crate::conv::ConvKey::Group(_)) {
                continue;
            }
            match best
                .iter_mut()
                .find(|b| b.from_user == o.from_user && b.from_device == o.from_device)
            {
                Some(b) if b.from_seq < o.from_seq => *b = *o,
                Some(_) => {}
                None => best.push(*o),
            }
        }
        for o in best {
            let Some(u) = self.users.get_mut(&user) else {
                return;
            };
            let done = u
                .receipted
                .get_or_insert_with(Default::default)
                .entry((o.from_user, o.from_device))
                .or_insert(0);
            if *done >= o.from_seq {
                continue;
            }
            *done = o.from_seq;
            let entry = SyncEntry {
                conv: o.conv,
                conv_seq: o.conv_seq,
                topic: o.topic,
                from_user: user,
                from_device: device,
                from_seq: 0,
                time_ms: self.wall_ms(now),
                shared: true,
                item: SyncItem::Receipt {
                    status: ReceiptStatus::Delivered,
                    target_device: o.from_device,
                    target_seq: o.from_seq,
                },
            };
            // Nothing waits for it to be durable but the sender's tick.
            self.stage_deferred(now, self.cfg.receipt_delay, |b| {
                b.append(now, o.from_user, entry);
            });
        }
    }
}
