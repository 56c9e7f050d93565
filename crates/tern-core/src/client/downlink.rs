//! The downlink: entries from the reorder window to the application (each
//! once), what the server is told (ACK `cumulative`, PULL `after`), and
//! pulling the backlog page by page.

use crate::reliability::Arrival;
use crate::time::Time;
use crate::wire::{Ack, DeleteScope, Entry, Frame, PageEnd, Pull, SyncBody};

use super::{ClientConn, ClientEvent};

impl ClientConn {
    pub(super) fn on_entry(&mut self, now: Time, e: Entry) {
        let arrival = self.downlink.on_receive(e.seq, e);
        // At once on anything out of order, and on every arrival while a
        // gap is open: the server repairs from what the ACK shows. A copy
        // of what was received is answered at once only if no ACK is owed.
        let gap = self.downlink.buffered() > 0;
        if arrival == Arrival::Duplicate && !gap {
            self.acks.on_duplicate(now);
        } else {
            self.acks
                .on_ack_eliciting(now, arrival != Arrival::InOrder || gap);
        }
        while let Some((seq, e)) = self.downlink.poll_deliver() {
            // Below `handed`: handed before a re-login, not again.
            if self.delivery.hand(seq) {
                self.track_conversation(now, &e);
                self.events.push_back(ClientEvent::Entry(e));
            }
        }
        // The ACK is owed already; only note how far it now goes.
        self.acked = self.acked.max(self.ack_point());
    }

    /// Keeps the held ranges up to date with an entry handed up, and fills
    /// a short gap it reveals next to what the device held.
    fn track_conversation(&mut self, now: Time, e: &Entry) {
        match e.body {
            SyncBody::Message { .. } | SyncBody::Member(_) => {
                if let Some((low, high)) = self.convs.on_message(e.conv, e.conv_seq) {
                    let id = self.request_id();
                    if let Some(req) =
                        self.convs
                            .start_history(now, id, e.conv, high + 1, high - low + 1, true)
                    {
                        self.control.push_back(Frame::History(req));
                    }
                }
            }
            SyncBody::Deleted {
                scope: DeleteScope::Conversation,
            } => self.convs.on_floor(e.conv, e.conv_seq),
            _ => {}
        }
    }

    /// What the server may be told is processed: released, saved and
    /// received in this session.
    pub(super) fn ack_point(&self) -> u64 {
        self.delivery
            .ack_point(self.base, self.downlink.delivered())
    }

    /// After a release, a save or a timer: acknowledge what became
    /// acknowledgeable, and send a PULL that waited for it.
    pub(super) fn on_progress(&mut self, now: Time) {
        let point = self.ack_point();
        if point > self.acked {
            self.acked = point;
            self.acks
                .on_ack_eliciting(now, self.downlink.buffered() > 0);
        }
        if self.pull_held && point >= self.downlink.delivered() {
            self.pull_held = false;
            self.send_pull(now);
        }
    }

    pub(super) fn on_page_end(&mut self, now: Time, p: PageEnd) {
        let ours = self.pull.is_some_and(|(id, _, _)| id == p.request_id);
        self.events.push_back(ClientEvent::PageEnd(p.clone()));
        if !ours {
            return;
        }
        self.pull = None;
        let complete = self.downlink.delivered() >= p.last;
        if p.end && complete {
            self.pulling = false;
        } else if self.pulling {
            // Next page; it acknowledges this one, so it waits until the
            // application has released (and the driver saved) this one. A
            // hole (lost datagram) makes it start from the contiguous point
            // instead.
            self.pull_next(now);
        }
    }

    /// Pulls the next page, or holds the PULL while entries handed up are
    /// not released yet: its `after` acknowledges only released entries, and
    /// the server answers from there.
    pub(super) fn pull_next(&mut self, now: Time) {
        if self.ack_point() < self.downlink.delivered() {
            self.pull_held = true;
        } else {
            self.pull_held = false;
            self.send_pull(now);
        }
    }

    pub(super) fn send_pull(&mut self, now: Time) {
        let request_id = self.request_id();
        let after = self.ack_point();
        self.acked = self.acked.max(after);
        self.pull = Some((request_id, after, now));
        self.control.push_back(Frame::Pull(Pull {
            request_id,
            after,
            max_entries: self.cfg.page_entries,
        }));
    }

    pub(super) fn ack_frame(&self, now: Time) -> Frame {
        let cumulative = self.ack_point();
        let mut ranges = Vec::new();
        let delivered = self.downlink.delivered();
        if delivered > cumulative {
            ranges.push((cumulative + 1, delivered));
        }
        for r in self.downlink.buffered_ranges() {
            if ranges.len() == crate::wire::limits::MAX_ACK_RANGES {
                break;
            }
            ranges.push(r);
        }
        Frame::Ack(Ack {
            receiver_online: false,
            cumulative,
            delay_us: self.acks.delay(now).as_micros() as u64,
            ranges,
        })
    }
}
