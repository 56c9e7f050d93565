//! The driver's side of conversations: list and history requests from the
//! application, served from the local history (`history_store.rs`) when it
//! holds what is asked, fetched (and stored) otherwise.
//!
//! - The list is fetched one request at a time, so that each answer is
//!   stored knowing the version it was asked from.
//! - A history request is answered locally once every `conv_seq` of its
//!   page is held. Until then the driver fetches the missing ranges of that
//!   page, newest first, each as a page of exactly the gap
//!   (`before` = gap end + 1, `max` = gap length): what is held is never
//!   downloaded again. After [`MAX_GAP_FETCHES`] (a memory-only client
//!   that cannot keep it all), or when the newest record is not known yet,
//!   the page is asked for as the application gave it, and that answer is
//!   returned.

use std::collections::{HashMap, VecDeque};

use tern_core::client::{ConvList, HistoryPage};
use tern_core::time::Time;
use tern_core::wire::{ConvRef, ErrorFrame};

use super::driver::Driver;
use super::{ClientError, HistoryStats};

type Waiter<T> = tokio::sync::oneshot::Sender<Result<T, ClientError>>;

/// Gap fetches for one request before the page is asked for whole.
pub(super) const MAX_GAP_FETCHES: u32 = 8;

/// Which list version a list request starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// The one the application gave.
    Given(u64),
    /// The one the local history saved last.
    Saved,
}

struct ListFetch {
    since: u64,
    waiters: Vec<Waiter<ConvList>>,
}

struct Job {
    before: u64,
    max: u64,
    waiter: Waiter<HistoryPage>,
    fetches: u32,
    /// A fetch for it is under way; `true`: for the page as asked.
    in_flight: Option<bool>,
}

/// Who waits for which conversation answer.
#[derive(Default)]
pub(super) struct ConvWaiters {
    list: Option<ListFetch>,
    list_queue: VecDeque<(Since, u8, Waiter<ConvList>)>,
    jobs: HashMap<ConvRef, VecDeque<Job>>,
    pub(super) stats: HistoryStats,
}

impl Driver {
    fn speaks_v1(&self) -> bool {
        self.conn.version() == tern_core::wire::VERSION
    }

    pub(super) fn ask_list(&mut self, now: Time, since: Since, preview: u8, w: Waiter<ConvList>) {
        self.conv_waiters.list_queue.push_back((since, preview, w));
        self.next_list(now);
    }

    fn next_list(&mut self, now: Time) {
        if self.conv_waiters.list.is_some() {
            return;
        }
        let Some((since, preview, w)) = self.conv_waiters.list_queue.pop_front() else {
            return;
        };
        let since = match since {
            Since::Given(v) => v,
            Since::Saved => self.history.list_version(),
        };
        if self.conn.request_list(now, since, preview) {
            self.conv_waiters.list = Some(ListFetch {
                since,
                waiters: vec![w],
            });
        } else {
            let _ = w.send(Err(ClientError::NotSupported));
            self.next_list(now);
        }
    }

    /// A whole list arrived: stored first, then handed out.
    pub(super) fn on_list(&mut self, now: Time, mut list: ConvList) {
        // Request ids are a wire detail: the same item compares equal
        // however it was fetched.
        for i in &mut list.items {
            i.request_id = 0;
        }
        let Some(f) = self.conv_waiters.list.take() else {
            return;
        };
        // Not stored: the saved version stays, the next fetch asks again.
        if let Err(e) = self.history.apply_list(f.since, &list) {
            tracing::error!(error = %e, "cannot store the conversation list");
        }
        for w in f.waiters {
            let _ = w.send(Ok(list.clone()));
        }
        self.next_list(now);
    }

    pub(super) fn ask_history(
        &mut self,
        now: Time,
        conv: ConvRef,
        before: u64,
        max: u64,
        waiter: Waiter<HistoryPage>,
    ) {
        self.conv_waiters
            .jobs
            .entry(conv)
            .or_default()
            .push_back(Job {
                before,
                max,
                waiter,
                fetches: 0,
                in_flight: None,
            });
        self.drive_history(now, conv);
    }

    /// Answers every request of `conv` the local history can serve now,
    /// then fetches for the oldest one left.
    fn drive_history(&mut self, now: Time, conv: ConvRef) {
        let Some(mut jobs) = self.conv_waiters.jobs.remove(&conv) else {
            return;
        };
        let mut left = VecDeque::new();
        for job in jobs.drain(..) {
            match self.history.page(conv, job.before, job.max) {
                // One under way for it is then answered by nobody: harmless.
                Ok(Some(page)) => {
                    self.conv_waiters.stats.pages_local += 1;
                    let _ = job.waiter.send(Ok(page));
                }
                Err(e) => {
                    let _ = job.waiter.send(Err(e.into()));
                }
                _ => left.push_back(job),
            }
        }
        if let Some(head) = left.front_mut() {
            if head.in_flight.is_none() {
                if self.speaks_v1() {
                    for job in left.drain(..) {
                        let _ = job.waiter.send(Err(ClientError::NotSupported));
                    }
                } else {
                    self.fetch_for(now, conv, head);
                }
            }
        }
        if !left.is_empty() {
            self.conv_waiters.jobs.insert(conv, left);
        }
    }

    /// Asks for the newest range `head`'s page misses, or for the page as
    /// asked. The core refuses while a page of `conv` is under way (a gap
    /// it fills by itself): its answer drives this again.
    fn fetch_for(&mut self, now: Time, conv: ConvRef, head: &mut Job) {
        let window = self.history.window(conv, head.before, head.max);
        let gap = window.and_then(|(low, high)| {
            let held = self.history.held(&conv)?;
            held.ranges.missing(low, high).pop()
        });
        let (before, max, whole) = match gap {
            Some((a, b)) if head.fetches < MAX_GAP_FETCHES => (b + 1, b - a + 1, false),
            _ => (head.before, head.max, true),
        };
        if self.conn.request_history(now, conv, before, max) {
            head.fetches += 1;
            head.in_flight = Some(whole);
        }
    }

    /// A page arrived (asked for by a request, or a gap the core filled by
    /// itself): stored first, then the requests of its conversation go on.
    pub(super) fn on_history(&mut self, now: Time, page: HistoryPage) {
        let conv = page.conv;
        let s = &mut self.conv_waiters.stats;
        s.pages_fetched += 1;
        s.records_fetched += page.records.len() as u64;
        if let Err(e) = self.history.apply_page(&page) {
            tracing::error!(error = %e, "cannot store a history page");
        }
        if !page.gap_fill {
            if let Some(head) = self
                .conv_waiters
                .jobs
                .get_mut(&conv)
                .and_then(|j| j.front_mut())
            {
                // Asked for whole: this is the answer, unless the local
                // history can serve it (the same records, maybe fewer that
                // another device deleted since).
                if head.in_flight.take() == Some(true) {
                    let job = self.conv_waiters.jobs.get_mut(&conv).unwrap().pop_front();
                    let job = job.expect("head exists");
                    let local = self.history.page(conv, job.before, job.max);
                    let _ = job
                        .waiter
                        .send(Ok(local.ok().flatten().unwrap_or_else(|| plain(page))));
                }
            }
        }
        self.drive_history(now, conv);
    }

    /// The server refused a list or history request (error with its frame
    /// type): whoever waits for one is told.
    pub(super) fn on_request_refused(&mut self, now: Time, e: &ErrorFrame) {
        use tern_core::wire::ty;
        if e.frame_type == ty::LIST {
            if let Some(f) = self.conv_waiters.list.take() {
                for w in f.waiters {
                    let _ = w.send(Err(ClientError::Rejected(e.code)));
                }
            }
            self.next_list(now);
        } else if e.frame_type == ty::HISTORY {
            for (_, jobs) in self.conv_waiters.jobs.drain() {
                for job in jobs {
                    let _ = job.waiter.send(Err(ClientError::Rejected(e.code)));
                }
            }
        }
    }

    /// The server speaks only version 1: nobody gets an answer.
    pub(super) fn on_downgraded(&mut self) {
        let list = self.conv_waiters.list.take().into_iter();
        for w in list.flat_map(|f| f.waiters) {
            let _ = w.send(Err(ClientError::NotSupported));
        }
        for (_, _, w) in self.conv_waiters.list_queue.drain(..) {
            let _ = w.send(Err(ClientError::NotSupported));
        }
        for (_, jobs) in self.conv_waiters.jobs.drain() {
            for job in jobs {
                let _ = job.waiter.send(Err(ClientError::NotSupported));
            }
        }
    }
}

/// A server page as the library hands it out: without request ids (a wire
/// detail), like a page of the local history.
fn plain(mut page: HistoryPage) -> HistoryPage {
    page.end.request_id = 0;
    for r in &mut page.records {
        r.request_id = 0;
    }
    page
}
