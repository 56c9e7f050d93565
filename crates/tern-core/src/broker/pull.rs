//! Paged pulls (`PULL` → DELIVERs and PAGE_END): how a device with a large
//! backlog reads it, each pull acknowledging the previous page.

use super::session::{Downlink, Out};
use super::{Broker, BrokerEvent};
use crate::store::Store;
use crate::time::Time;
use crate::wire::{ErrorCode, ErrorFrame, Frame, PageEnd};

impl<S: Store> Broker<S> {
    pub(super) fn on_pull(&mut self, now: Time, sid: u64, request_id: u64, after: u64, max: u64) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let (user, device) = (s.user, s.device);
        let Some(u) = self.users.get(&user) else {
            return;
        };
        let head = u.committed_head;
        let mut floor = u.meta.trimmed;
        if s.version == crate::wire::VERSION {
            // Nothing only version 2 knows below it (see `lifecycle.rs`).
            floor = floor.max(u.meta.last_private);
        }
        let after = after.min(head).max(floor.min(head));
        // Pulling past a page acknowledges it.
        let page: Vec<_> = s
            .last_page
            .iter()
            .filter(|(q, _)| *q <= after)
            .copied()
            .collect();
        s.last_page.retain(|(q, _)| *q > after);
        self.issue_receipts(now, sid, &page);
        self.advance_checkpoint(now, user, device, after);
        let max = max.clamp(1, self.cfg.page_entries) as usize;
        let entries = match self.store.read_inbox(user, after, max) {
            Ok(e) => e,
            Err(e) => {
                self.events.push_back(BrokerEvent::StoreReadFailed {
                    error: e.to_string(),
                });
                self.queue_error(sid, ErrorCode::StorageFailure, crate::wire::ty::PULL);
                return;
            }
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let mut last = after;
        for e in entries.into_iter().take_while(|e| e.seq <= head) {
            last = e.seq;
            if let Some(o) = e.entry.origin() {
                s.last_page.push((e.seq, o));
            }
            s.out
                .push_back(Out::Raw(super::render::render(&e, s.user, s.version)));
            self.stats.pulled += 1;
        }
        let end = last >= head;
        s.out.push_back(Out::Frame(Frame::PageEnd(PageEnd {
            request_id,
            last,
            end,
            head,
        })));
        if end && matches!(s.down, Downlink::Pull) {
            let seed = rand::Rng::gen(&mut self.rng);
            s.down = Downlink::Push(super::lazy_sender::LazySender::new(last + 1, None, seed));
        }
        self.touch(sid);
    }

    pub(super) fn queue_error(&mut self, sid: u64, code: ErrorCode, frame_type: u8) {
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.out.push_back(Out::Frame(Frame::Error(ErrorFrame {
                code: code as u64,
                frame_type,
                seq: 0,
                reason: String::new(),
            })));
        }
    }
}
