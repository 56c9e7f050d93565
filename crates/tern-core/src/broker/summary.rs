//! Counters first (seeds 001 and 004): per-conversation unread counts, the
//! oldest unread message and the newest previews, computed from the entries
//! past the device's checkpoint. Content is pulled on demand.

use std::collections::{BTreeMap, VecDeque};

use super::session::Out;
use super::{Broker, BrokerEvent};
use crate::store::{Store, SyncItem};
use crate::wire::limits::MAX_PREVIEW;
use crate::wire::{ErrorCode, Frame, Preview, Summary, SummaryEnd, SummaryRequest};

#[derive(Default)]
struct Acc {
    unread: u64,
    first_seq: u64,
    first_time: u64,
    last_seq: u64,
    previews: VecDeque<Preview>,
}

impl<S: Store> Broker<S> {
    pub(super) fn on_summary_request(&mut self, sid: u64, req: SummaryRequest) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (user, device) = (s.user, s.device);
        let Some(u) = self.users.get(&user) else {
            return;
        };
        let head = u.committed_head;
        let from = u.devices.get(&device).map_or(0, |d| d.staged.checkpoint);
        let keep = self
            .cfg
            .summary_previews
            .min(crate::wire::limits::MAX_PREVIEWS);
        let mut convs: BTreeMap<u64, Acc> = BTreeMap::new();
        let mut after = from;
        let mut scanned = 0usize;
        while after < head && scanned < self.cfg.summary_scan_limit {
            let entries = match self.store.read_inbox(user, after, 1024) {
                Ok(e) => e,
                Err(e) => {
                    self.events.push_back(BrokerEvent::StoreReadFailed {
                        error: e.to_string(),
                    });
                    self.queue_error(
                        sid,
                        ErrorCode::StorageFailure,
                        crate::wire::ty::SUMMARY_REQUEST,
                    );
                    return;
                }
            };
            if entries.is_empty() {
                break;
            }
            for e in entries {
                if e.seq > head {
                    after = head;
                    break;
                }
                after = e.seq;
                scanned += 1;
                // Messages addressed to the user count (not its own copies).
                let (SyncItem::Message(r), true) = (&e.entry.item, e.entry.shared) else {
                    continue;
                };
                let acc = convs.entry(e.entry.topic).or_default();
                if acc.unread == 0 {
                    acc.first_seq = e.seq;
                    acc.first_time = e.entry.time_ms;
                }
                acc.unread += 1;
                acc.last_seq = e.seq;
                if keep > 0 {
                    if acc.previews.len() == keep {
                        acc.previews.pop_front();
                    }
                    acc.previews.push_back(Preview {
                        seq: e.seq,
                        from_user: e.entry.from_user,
                        time_ms: e.entry.time_ms,
                        msg_type: r.msg_type,
                        head: r.payload.slice(..r.payload.len().min(MAX_PREVIEW)),
                    });
                }
            }
        }
        let conv_count = convs.len() as u64;
        let total_unread = convs.values().map(|a| a.unread).sum();
        let max = req.max_convs.clamp(1, self.cfg.summary_convs) as usize;
        let mut out = Vec::new();
        let mut next_cursor = 0;
        for (i, (conv, acc)) in convs
            .into_iter()
            .filter(|(c, _)| *c > req.cursor || req.cursor == 0)
            .enumerate()
        {
            if i == max {
                next_cursor = out.last().map_or(0, |f: &Frame| match f {
                    Frame::Summary(s) => s.conv,
                    _ => 0,
                });
                break;
            }
            out.push(Frame::Summary(Summary {
                request_id: req.request_id,
                conv,
                unread: acc.unread,
                first_unread_seq: acc.first_seq,
                first_unread_time_ms: acc.first_time,
                last_seq: acc.last_seq,
                previews: acc.previews.into(),
            }));
        }
        out.push(Frame::SummaryEnd(SummaryEnd {
            request_id: req.request_id,
            next_cursor,
            conv_count,
            total_unread,
            head,
        }));
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.out.extend(out.into_iter().map(Out::Frame));
        }
        self.touch(sid);
    }
}
