//! Conversation counters, page by page: the client asks for the next page
//! with the previous page's `next_cursor` until the server says there is no
//! more, collects the pages, and reports them as one result.
//!
//! A page request is answered by SUMMARY frames and one SUMMARY_END, all
//! carrying its request id; frames of any other request are ignored. A page
//! whose end has not come after the retransmission timeout is asked for
//! again under a new id (what came of it so far is dropped), and so is the
//! current page after a re-login (the server forgot the request).

use std::time::Duration;

use crate::time::Time;
use crate::wire::{Summary, SummaryEnd, SummaryRequest};

/// Conversations asked for per page.
pub const SUMMARY_PAGE: u64 = 64;
/// Most conversations collected for one result; past it paging stops and
/// the result's `next_cursor` says where the rest would continue.
pub const MAX_SUMMARY_CONVS: usize = 1 << 16;

/// The answer to one summary request, every page collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summaries {
    /// Every conversation with unread messages, in conversation order.
    pub convs: Vec<Summary>,
    /// The last page's end: the totals and the head the counters were
    /// computed at. `next_cursor` is 0 unless the result was cut at
    /// [`MAX_SUMMARY_CONVS`].
    pub end: SummaryEnd,
    /// Pages asked for (round trips, retransmissions not counted).
    pub pages: u32,
}

/// The page being asked for.
struct Page {
    request_id: u64,
    cursor: u64,
    sent_at: Time,
    convs: Vec<Summary>,
}

#[derive(Default)]
pub(super) struct SummaryPaging {
    page: Option<Page>,
    done: Vec<Summary>,
    pages: u32,
}

impl SummaryPaging {
    /// Starts paging from the first conversation; false if already under way
    /// (its result answers this request too).
    pub(super) fn start(&mut self) -> bool {
        if self.page.is_some() {
            return false;
        }
        self.done.clear();
        self.pages = 0;
        true
    }

    /// The request for the page after `cursor`, under `request_id`.
    pub(super) fn ask(&mut self, now: Time, request_id: u64, cursor: u64) -> SummaryRequest {
        self.page = Some(Page {
            request_id,
            cursor,
            sent_at: now,
            convs: Vec::new(),
        });
        SummaryRequest {
            request_id,
            cursor,
            max_convs: SUMMARY_PAGE,
        }
    }

    /// The cursor of a page to ask for again under a new id: after a
    /// re-login, or when its answer is overdue (`rto` given).
    pub(super) fn resend_cursor(&self, now: Time, rto: Option<Duration>) -> Option<u64> {
        let p = self.page.as_ref()?;
        match rto {
            Some(rto) if now.saturating_since(p.sent_at) < rto * 2 => None,
            _ => Some(p.cursor),
        }
    }

    /// When the current page is overdue.
    pub(super) fn deadline(&self, rto: Duration) -> Option<Time> {
        self.page.as_ref().map(|p| p.sent_at + rto * 2)
    }

    pub(super) fn on_summary(&mut self, s: Summary) {
        let Some(p) = self.page.as_mut() else { return };
        if s.request_id == p.request_id && (p.convs.len() as u64) < SUMMARY_PAGE {
            p.convs.push(s);
        }
    }

    /// A page ended: either the cursor of the next page to ask for, or the
    /// complete result.
    pub(super) fn on_end(&mut self, end: SummaryEnd) -> Option<Result<u64, Summaries>> {
        let p = self.page.as_ref()?;
        if end.request_id != p.request_id {
            return None;
        }
        let p = self.page.take()?;
        self.pages += 1;
        let room = MAX_SUMMARY_CONVS - self.done.len();
        self.done.extend(p.convs.into_iter().take(room));
        if end.next_cursor != 0 && self.done.len() < MAX_SUMMARY_CONVS {
            return Some(Ok(end.next_cursor));
        }
        Some(Err(Summaries {
            convs: std::mem::take(&mut self.done),
            end,
            pages: std::mem::take(&mut self.pages),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(request_id: u64, conv: u64) -> Summary {
        Summary {
            request_id,
            conv,
            unread: 1,
            first_unread_seq: conv,
            first_unread_time_ms: 0,
            last_seq: conv,
            previews: Vec::new(),
        }
    }

    fn end(request_id: u64, next_cursor: u64) -> SummaryEnd {
        SummaryEnd {
            request_id,
            next_cursor,
            conv_count: 3,
            total_unread: 3,
            head: 3,
        }
    }

    #[test]
    fn pages_are_collected_into_one_result() {
        let mut p = SummaryPaging::default();
        assert!(p.start());
        let r = p.ask(Time::ZERO, 1, 0);
        assert_eq!((r.cursor, r.max_convs), (0, SUMMARY_PAGE));
        assert!(!p.start(), "one paging at a time");
        p.on_summary(conv(1, 1));
        p.on_summary(conv(9, 2)); // another request's
        p.on_summary(conv(1, 2));
        assert_eq!(p.on_end(end(9, 0)), None, "not ours");
        assert_eq!(p.on_end(end(1, 2)), Some(Ok(2)));
        p.ask(Time::ZERO, 2, 2);
        p.on_summary(conv(2, 3));
        let Some(Err(all)) = p.on_end(end(2, 0)) else {
            panic!("complete")
        };
        let convs: Vec<u64> = all.convs.iter().map(|s| s.conv).collect();
        assert_eq!((convs, all.pages), (vec![1, 2, 3], 2));
        assert!(p.start(), "done: a new paging may start");
    }

    #[test]
    fn an_overdue_page_is_asked_for_again() {
        let mut p = SummaryPaging::default();
        p.start();
        p.ask(Time::ZERO, 1, 5);
        let rto = Duration::from_millis(100);
        assert_eq!(p.deadline(rto), Some(Time::ZERO + rto * 2));
        assert_eq!(p.resend_cursor(Time::ZERO + rto, Some(rto)), None);
        assert_eq!(p.resend_cursor(Time::ZERO + rto * 2, Some(rto)), Some(5));
        assert_eq!(
            p.resend_cursor(Time::ZERO, None),
            Some(5),
            "after a re-login"
        );
    }
}
