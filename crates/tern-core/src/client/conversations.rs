//! Conversations on the client (`proto-spec/conversations.md`): the list
//! fetched since a version, history pages, and the ranges of each storage
//! timeline this device holds, with the gaps between them.
//!
//! Requests are idempotent: one whose answer is overdue is asked again under
//! a new id (what came of it so far is dropped), and so is every request
//! under way after a re-login. An answer is complete only when it holds as
//! many items (records) as its end frame says; otherwise a datagram was lost
//! and the same request goes out again.

use std::collections::HashMap;
use std::time::Duration;

use crate::conv::RangeSet;
use crate::time::Time;
use crate::wire::{ConvRef, HistoryEnd, HistoryRequest, ListEnd, ListItem, ListRequest, Record};

/// Most items one list answer is asked for (the server caps it at 512).
pub const LIST_PAGE: u64 = 512;
/// Most records one history page is asked for.
pub const HISTORY_PAGE: u64 = 64;
/// A gap between a live message and what a device holds is filled at once
/// when it is at most this long; a longer one is left for the application
/// to page through (it scrolls there or not).
pub const AUTO_FILL: u64 = 256;

/// What a device holds of one conversation's storage timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// The records held, as ranges of `conv_seq`.
    pub ranges: RangeSet,
    /// Nothing at or below it can be fetched (trimmed or cleared).
    pub floor: u64,
    /// The newest record the server said exists.
    pub last_seq: u64,
}

impl Held {
    /// The ranges missing between the floor and the newest record.
    pub fn missing(&self) -> Vec<(u64, u64)> {
        self.ranges.missing(self.floor + 1, self.last_seq)
    }
}

/// The conversation list, every page of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvList {
    /// Conversations changed since the version asked for, oldest change
    /// first.
    pub items: Vec<ListItem>,
    /// Save it: the next fetch asks for changes since it.
    pub list_version: u64,
    /// Unread messages over all the user's conversations.
    pub total_unread: u64,
    /// The server's clock when the last page was cut (for preview ages).
    pub server_time_ms: u64,
    /// Round trips it took (resends not counted).
    pub pages: u32,
}

/// A history page, complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The conversation.
    pub conv: ConvRef,
    /// Its records, ascending (none the user deleted).
    pub records: Vec<Record>,
    /// What the page covers.
    pub end: HistoryEnd,
    /// Fetched by the client itself to fill a gap, not asked for by the
    /// application.
    pub gap_fill: bool,
}

struct ListFetch {
    request_id: u64,
    since: u64,
    preview_len: u8,
    sent_at: Time,
    got: Vec<ListItem>,
    done: Vec<ListItem>,
    pages: u32,
}

struct HistoryFetch {
    request_id: u64,
    before: u64,
    max: u64,
    sent_at: Time,
    got: Vec<Record>,
    gap_fill: bool,
}

/// What came of a frame or a timer: requests to send, results to report.
#[derive(Default)]
pub(super) struct Output {
    pub requests: Vec<crate::wire::Frame>,
    pub list: Option<ConvList>,
    pub pages: Vec<HistoryPage>,
}

/// The conversation machine of a client connection.
#[derive(Default)]
pub(super) struct Conversations {
    held: HashMap<ConvRef, Held>,
    list: Option<ListFetch>,
    history: HashMap<ConvRef, HistoryFetch>,
}

impl Conversations {
    /// Starts from what a previous run of the device held.
    pub fn restore(held: Vec<(ConvRef, Held)>) -> Self {
        Conversations {
            held: held.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn held(&self, conv: &ConvRef) -> Option<&Held> {
        self.held.get(conv)
    }

    pub fn all_held(&self) -> impl Iterator<Item = (&ConvRef, &Held)> {
        self.held.iter()
    }

    /// Starts fetching the list since `since`; false if a fetch is under way
    /// (its result answers this request too).
    pub fn start_list(
        &mut self,
        now: Time,
        id: u64,
        since: u64,
        preview_len: u8,
    ) -> Option<ListRequest> {
        if self.list.is_some() {
            return None;
        }
        self.list = Some(ListFetch {
            request_id: id,
            since,
            preview_len,
            sent_at: now,
            got: Vec::new(),
            done: Vec::new(),
            pages: 1,
        });
        Some(list_request(id, since, preview_len))
    }

    /// Starts fetching a history page of `conv`; `None` if one is under way
    /// for it.
    pub fn start_history(
        &mut self,
        now: Time,
        id: u64,
        conv: ConvRef,
        before: u64,
        max: u64,
        gap_fill: bool,
    ) -> Option<HistoryRequest> {
        if self.history.contains_key(&conv) {
            return None;
        }
        let max = max.clamp(1, HISTORY_PAGE);
        self.history.insert(
            conv,
            HistoryFetch {
                request_id: id,
                before,
                max,
                sent_at: now,
                got: Vec::new(),
                gap_fill,
            },
        );
        Some(HistoryRequest {
            request_id: id,
            conv,
            before,
            max,
        })
    }

    /// An item of the list answer under way; one of an earlier answer (a
    /// late datagram) or a second copy (a duplicated one) is dropped.
    pub fn on_list_item(&mut self, item: ListItem) {
        if let Some(f) = self
            .list
            .as_mut()
            .filter(|f| f.request_id == item.request_id)
        {
            if !f.got.iter().any(|i| i.conv == item.conv) {
                f.got.push(item);
            }
        }
    }

    /// A list answer ended: the next page's request, or the whole list.
    pub fn on_list_end(&mut self, now: Time, end: ListEnd, next_id: u64) -> Output {
        let mut out = Output::default();
        let Some(f) = self
            .list
            .as_mut()
            .filter(|f| f.request_id == end.request_id)
        else {
            return out;
        };
        if f.got.len() as u64 != end.items {
            // A datagram was lost: the same page again.
            f.got.clear();
            f.request_id = next_id;
            f.sent_at = now;
            let req = list_request(next_id, f.since, f.preview_len);
            out.requests.push(crate::wire::Frame::List(req));
            return out;
        }
        let page = std::mem::take(&mut f.got);
        for item in &page {
            let h = self.held.entry(item.conv).or_default();
            h.last_seq = h.last_seq.max(item.last_seq);
            h.floor = h.floor.max(item.cleared_to);
            h.ranges.remove_through(h.floor);
        }
        let f = self.list.as_mut().expect("checked above");
        f.done.extend(page);
        if !end.complete {
            f.since = end.next_since;
            f.request_id = next_id;
            f.sent_at = now;
            f.pages += 1;
            let req = list_request(next_id, f.since, f.preview_len);
            out.requests.push(crate::wire::Frame::List(req));
            return out;
        }
        let f = self.list.take().expect("checked above");
        out.list = Some(ConvList {
            items: f.done,
            list_version: end.list_version,
            total_unread: end.total_unread,
            server_time_ms: end.server_time_ms,
            pages: f.pages,
        });
        out
    }

    /// A record of the history page under way, in place; one of an
    /// earlier answer (a late datagram) or a second copy (a duplicated one)
    /// is dropped.
    pub fn on_record(&mut self, r: Record) {
        if let Some(f) = self
            .history
            .get_mut(&r.conv)
            .filter(|f| f.request_id == r.request_id)
        {
            if let Err(at) = f.got.binary_search_by_key(&r.conv_seq, |x| x.conv_seq) {
                f.got.insert(at, r);
            }
        }
    }

    /// A history page ended: the page, or the same request again if it is
    /// short.
    pub fn on_history_end(&mut self, now: Time, end: HistoryEnd, next_id: u64) -> Output {
        let mut out = Output::default();
        let Some(f) = self
            .history
            .get_mut(&end.conv)
            .filter(|f| f.request_id == end.request_id)
        else {
            return out;
        };
        if f.got.len() as u64 != end.count {
            f.got.clear();
            f.request_id = next_id;
            f.sent_at = now;
            out.requests
                .push(crate::wire::Frame::History(HistoryRequest {
                    request_id: next_id,
                    conv: end.conv,
                    before: f.before,
                    max: f.max,
                }));
            return out;
        }
        let f = self.history.remove(&end.conv).expect("checked above");
        let h = self.held.entry(end.conv).or_default();
        h.floor = h.floor.max(end.floor);
        h.last_seq = h.last_seq.max(end.last_seq);
        h.ranges.insert(end.low.max(h.floor + 1), end.high);
        h.ranges.remove_through(h.floor);
        out.pages.push(HistoryPage {
            conv: end.conv,
            records: f.got,
            end,
            gap_fill: f.gap_fill,
        });
        out
    }

    /// A message record arrived in the sync timeline. Returns the gap to
    /// fill at once (newest first), if the record shows one next to what
    /// the device held and it is short enough.
    pub fn on_message(&mut self, conv: ConvRef, conv_seq: u64) -> Option<(u64, u64)> {
        if conv_seq == 0 {
            return None;
        }
        let h = self.held.entry(conv).or_default();
        let newest = h.ranges.highest();
        h.ranges.insert(conv_seq, conv_seq);
        h.last_seq = h.last_seq.max(conv_seq);
        let newest = newest?;
        (conv_seq > newest + 1 && conv_seq - newest - 1 <= AUTO_FILL)
            .then_some((newest + 1, conv_seq - 1))
    }

    /// The device cleared or the server trimmed `conv` up to `floor`.
    pub fn on_floor(&mut self, conv: ConvRef, floor: u64) {
        let h = self.held.entry(conv).or_default();
        h.floor = h.floor.max(floor);
        h.ranges.remove_through(h.floor);
    }

    /// Requests to send again: overdue ones (`rto` given), or all of them
    /// after a re-login (`rto` None), each under a new id from `ids`.
    pub fn resend(
        &mut self,
        now: Time,
        rto: Option<Duration>,
        mut ids: impl FnMut() -> u64,
    ) -> Vec<crate::wire::Frame> {
        let due = |at: Time| rto.is_none_or(|rto| now.saturating_since(at) >= rto * 2);
        let mut out = Vec::new();
        if let Some(f) = self.list.as_mut().filter(|f| due(f.sent_at)) {
            f.got.clear();
            f.request_id = ids();
            f.sent_at = now;
            out.push(crate::wire::Frame::List(list_request(
                f.request_id,
                f.since,
                f.preview_len,
            )));
        }
        for (conv, f) in self.history.iter_mut().filter(|(_, f)| due(f.sent_at)) {
            f.got.clear();
            f.request_id = ids();
            f.sent_at = now;
            out.push(crate::wire::Frame::History(HistoryRequest {
                request_id: f.request_id,
                conv: *conv,
                before: f.before,
                max: f.max,
            }));
        }
        out
    }

    /// The server refused a request of this frame type. An ERROR names no
    /// request: a refused HISTORY ends every page under way (the
    /// application is told each was refused and may ask again), rather
    /// than the refused one being asked again forever.
    pub fn on_refused(&mut self, frame_type: u8) {
        if frame_type == crate::wire::ty::LIST {
            self.list = None;
        } else if frame_type == crate::wire::ty::HISTORY {
            self.history.clear();
        }
    }

    /// When the oldest request under way falls due, for `rto`.
    pub fn deadline(&self, rto: Duration) -> Option<Time> {
        let list = self.list.as_ref().map(|f| f.sent_at);
        let hist = self.history.values().map(|f| f.sent_at);
        list.into_iter().chain(hist).min().map(|at| at + rto * 2)
    }
}

fn list_request(request_id: u64, since: u64, preview_len: u8) -> ListRequest {
    ListRequest {
        request_id,
        since,
        max_items: LIST_PAGE,
        preview_len,
    }
}
