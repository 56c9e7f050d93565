//! History pages (seed 003's roaming): a device, a new one included, pages
//! through a conversation's storage timeline newest first, and fills the
//! gaps between the ranges it holds. Only durable records are returned, and
//! none the asking user deleted for itself.

use super::session::Out;
use super::Broker;
use crate::conv::ConvKey;
use crate::store::Store;
use crate::time::Time;
use crate::wire::{ty, ConvKind, ErrorCode, Frame, HistoryEnd, HistoryRequest, Record, RecordBody};

/// Most records in one history page (`HISTORY_MAX`).
pub const HISTORY_MAX: u64 = 64;

/// A group member whose row is not durable yet asked for history.
const NOT_A_MEMBER: &str = "not a member of the group (yet)";

impl<S: Store> Broker<S> {
    pub(super) fn on_history(&mut self, now: Time, sid: u64, req: HistoryRequest) {
        let Some(user) = self.sessions.get(&sid).map(|s| s.user) else {
            return;
        };
        let key = ConvKey::of(user, req.conv);
        if req.conv.kind != ConvKind::Direct && self.may_use(user, key, false) != Some(true) {
            self.queue_error(sid, ErrorCode::NoSuchConversation, ty::HISTORY);
            return;
        }
        self.sweep_history(now, key);
        let cutoff = self.history_cutoff(now).unwrap_or(0);
        match self.history_page(user, &req, cutoff) {
            Ok(frames) => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.out.extend(frames.into_iter().map(Out::Frame));
                }
                self.touch(sid);
            }
            Err(e) if e == NOT_A_MEMBER => {
                self.queue_error(sid, ErrorCode::NoSuchConversation, ty::HISTORY);
            }
            Err(e) => {
                self.events
                    .push_back(super::BrokerEvent::StoreReadFailed { error: e });
                self.queue_error(sid, ErrorCode::StorageFailure, ty::HISTORY);
            }
        }
    }

    /// The page `req` asks for; records older than `cutoff` (wall ms) are
    /// past retention and answered as trimmed, deleted or not yet.
    fn history_page(
        &self,
        user: u64,
        req: &HistoryRequest,
        cutoff: u64,
    ) -> Result<Vec<Frame>, String> {
        let store = &*self.store;
        let err = |e: S::Error| e.to_string();
        let key = ConvKey::of(user, req.conv);
        let meta = store.conv_meta(&key).map_err(err)?.unwrap_or_default();
        let state = store
            .user_conv(user, &key)
            .map_err(err)?
            .unwrap_or_default();
        let mut floor = meta.trimmed.max(state.cleared_to);
        let mut top = meta.head.saturating_add(1);
        if let ConvKey::Group(g) = key {
            // A member sees the stretch of the timeline it was a member
            // for: from the record that added it to the one that removed it.
            let row = store
                .group_members(g, user.saturating_sub(1), 1)
                .map_err(err)?;
            let Some((_, m)) = row.into_iter().find(|(u, _)| *u == user) else {
                return Err(NOT_A_MEMBER.into());
            };
            let (low, high) = m.visible(meta.head);
            floor = floor.max(low.saturating_sub(1));
            top = top.min(high.saturating_add(1));
        }
        let before = if req.before == 0 {
            top
        } else {
            req.before.min(top)
        };
        let max = req.max.clamp(1, HISTORY_MAX) as usize;
        let mut records = store.read_conv(&key, before, max).map_err(err)?;
        if let Some(aged) = records.iter().rev().find(|r| r.time_ms < cutoff) {
            floor = floor.max(aged.conv_seq);
        }
        records.retain(|r| r.conv_seq > floor);
        // The page covers down to its oldest record when it is full, and
        // down to the floor when the timeline ran out first.
        let low = match records.first() {
            Some(r) if records.len() == max => r.conv_seq,
            _ => floor + 1,
        };
        let high = before.saturating_sub(1);
        if let (Some(a), Some(b)) = (records.first(), records.last()) {
            let hidden = store
                .hidden(user, &key, a.conv_seq, b.conv_seq)
                .map_err(err)?;
            records.retain(|r| hidden.binary_search(&r.conv_seq).is_err());
        }
        let conv = key.view(user);
        let mut frames: Vec<Frame> = records
            .into_iter()
            .map(|r| {
                let body = if let Some(e) = r.event {
                    RecordBody::Member(e)
                } else if r.recalled {
                    RecordBody::Recalled {
                        msg_type: r.msg_type,
                    }
                } else {
                    RecordBody::Message {
                        msg_type: r.msg_type,
                        payload: r.payload,
                    }
                };
                Frame::Record(Record {
                    request_id: req.request_id,
                    conv,
                    conv_seq: r.conv_seq,
                    topic: r.topic,
                    from_user: r.from_user,
                    from_device: r.from_device,
                    from_seq: r.from_seq,
                    time_ms: r.time_ms,
                    body,
                })
            })
            .collect();
        let count = frames.len() as u64;
        frames.push(Frame::HistoryEnd(HistoryEnd {
            request_id: req.request_id,
            conv,
            low,
            high,
            floor,
            count,
            last_seq: state.last_seq,
        }));
        Ok(frames)
    }
}
