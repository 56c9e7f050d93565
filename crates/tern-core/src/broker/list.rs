//! The conversation list (seed 004): at login a device asks for the
//! conversations whose state changed since the list version it last
//! completed, and gets them in one bounded answer, counters and previews
//! first, content later. Answers read only committed state, so a version a
//! device saves never covers a change it was not shown.

use super::session::Out;
use super::Broker;
use crate::store::Store;
use crate::time::Time;
use crate::wire::limits::MAX_PREVIEW;
use crate::wire::{ty, ErrorCode, Frame, ListEnd, ListItem, ListPreview, ListRequest};

/// Most items in one answer (`LIST_MAX_ITEMS`).
pub const LIST_MAX_ITEMS: u64 = 512;
/// Most bytes of LIST_ITEM frames in one answer (`LIST_BUDGET`).
pub const LIST_BUDGET: usize = 16 * 1024;

impl<S: Store> Broker<S> {
    pub(super) fn on_list(&mut self, now: Time, sid: u64, req: ListRequest) {
        let Some(user) = self.sessions.get(&sid).map(|s| s.user) else {
            return;
        };
        if self.hold_list(sid, user, &req) {
            return;
        }
        match self.list_answer(now, user, &req) {
            Ok(frames) => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.out.extend(frames.into_iter().map(Out::Frame));
                }
                self.touch(sid);
            }
            Err(e) => {
                self.events
                    .push_back(super::BrokerEvent::StoreReadFailed { error: e });
                self.queue_error(sid, ErrorCode::StorageFailure, ty::LIST);
            }
        }
    }

    fn list_answer(&self, now: Time, user: u64, req: &ListRequest) -> Result<Vec<Frame>, String> {
        let max = req.max_items.clamp(1, LIST_MAX_ITEMS) as usize;
        let preview_len = usize::from(req.preview_len).min(MAX_PREVIEW);
        let store = &*self.store;
        let err = |e: S::Error| e.to_string();
        let meta = store.inbox_meta(user).map_err(err)?.unwrap_or_default();
        let wall = self.wall_ms(now);
        let changed = store
            .user_convs_since(user, req.since, max + 1)
            .map_err(err)?;
        let mut frames = Vec::new();
        let (mut bytes, mut next_since, mut complete) = (0, req.since, true);
        for (i, uc) in changed.iter().enumerate() {
            if i == max {
                complete = false;
                break;
            }
            let s = uc.state;
            let mut preview = None;
            if preview_len > 0 && s.last_seq > s.cleared_to {
                let last = store.read_conv(&uc.key, s.last_seq + 1, 1).map_err(err)?;
                let hidden = store
                    .hidden(user, &uc.key, s.last_seq, s.last_seq)
                    .map_err(err)?;
                // A membership event has no preview: the list shows messages.
                let message = last.first().filter(|r| r.event.is_none());
                if let (Some(r), true) = (message, hidden.is_empty()) {
                    preview = Some(ListPreview {
                        from_user: r.from_user,
                        age_s: wall.saturating_sub(r.time_ms) / 1000,
                        msg_type: r.msg_type,
                        recalled: r.recalled,
                        head: r.payload.slice(..r.payload.len().min(preview_len)),
                    });
                }
            }
            let item = Frame::ListItem(ListItem {
                request_id: req.request_id,
                conv: uc.key.view(user),
                version: s.version,
                hidden: s.hidden(),
                last_seq: s.last_seq,
                read_seq: s.read_seq,
                unread: s.unread,
                cleared_to: s.cleared_to,
                preview,
            });
            if bytes + item.encoded_len() > LIST_BUDGET && !frames.is_empty() {
                complete = false;
                break;
            }
            bytes += item.encoded_len();
            next_since = s.version;
            frames.push(item);
        }
        let items = frames.len() as u64;
        frames.push(Frame::ListEnd(ListEnd {
            request_id: req.request_id,
            items,
            next_since,
            list_version: if complete {
                meta.list_version.max(next_since)
            } else {
                next_since
            },
            complete,
            total_unread: meta.total_unread,
            server_time_ms: wall,
        }));
        Ok(frames)
    }
}
