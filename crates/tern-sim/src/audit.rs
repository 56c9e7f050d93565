//! The end of a conversations run (protocol version 2): once everything is
//! delivered and the network healed, every device asks the server for its
//! user's conversation list and pages through each conversation's whole
//! history, as a new device scrolling up would. Then every device of a user
//! must agree with every other on each history (same records, same order)
//! and on the list (last record, read position, unread count); and each
//! device that lived through the run must hold, from its own sync timeline,
//! exactly that history and the read position the list shows, so that the
//! unread counter it computes is the server's.

use std::collections::BTreeMap;

use bytes::Bytes;
use tern_core::client::{ClientConn, ConvList, HistoryPage};
use tern_core::time::Time;
use tern_core::wire::{ConvRef, ReadCounts, RecordBody};

use crate::checker::Dev;
use crate::conv_view::Views;

/// Records asked per history page.
const PAGE: u64 = 64;

/// One device's audit: its requests and the answers.
#[derive(Debug, Default)]
pub struct Audit {
    started: bool,
    list_asked: bool,
    /// The list, every page.
    pub list: Option<ConvList>,
    /// Each conversation's history: `conv_seq` → (sender, payload, recalled).
    pub history: BTreeMap<ConvRef, BTreeMap<u64, (u64, Bytes)>>,
    /// Conversations still to page through, and the page under way.
    todo: Vec<(ConvRef, u64)>,
    asked: Option<(ConvRef, u64)>,
    pub done: bool,
    /// Groups runs, the owner's device: read counts of the group's records
    /// `1 ..= head` to ask for once the histories are paged.
    pub count_group: Option<(u64, u64)>,
    /// The next record to ask counts from, and when it was asked.
    count_next: u64,
    count_asked: Option<Time>,
    /// Read counts per record: (members, read by).
    pub counts: BTreeMap<u64, (u64, u64)>,
}

impl Audit {
    /// Starts the audit (at the device's next wake-up).
    pub fn start(&mut self) {
        self.started = true;
    }

    /// Whether it is under way and not finished.
    pub fn running(&self) -> bool {
        self.started && !self.done
    }

    /// Sends the next request the audit needs, if the connection takes it.
    pub fn drive(&mut self, now: Time, conn: &mut ClientConn) {
        if !self.running() {
            return;
        }
        if !self.list_asked {
            self.list_asked = conn.request_list(now, 0, 0);
            return;
        }
        if self.list.is_none() || self.asked.is_some() {
            return;
        }
        match self.todo.last().copied() {
            Some((conv, before)) => {
                if conn.request_history(now, conv, before, PAGE) {
                    self.asked = Some((conv, before));
                }
            }
            None => self.drive_counts(now, conn),
        }
    }

    /// Asks for the read counts of the group, 64 records at a time (again
    /// when an answer is overdue: it is one datagram, and may be lost).
    fn drive_counts(&mut self, now: Time, conn: &mut ClientConn) {
        let Some((group, head)) = self.count_group else {
            self.done = true;
            return;
        };
        self.count_next = self.count_next.max(1);
        if self.count_next > head {
            self.done = true;
            return;
        }
        let overdue = self
            .count_asked
            .is_none_or(|at| now.saturating_since(at) > std::time::Duration::from_secs(2));
        if overdue
            && conn
                .request_read_counts(now, group, self.count_next, 64)
                .is_some()
        {
            self.count_asked = Some(now);
        }
    }

    /// Read counts arrived.
    pub fn on_counts(&mut self, c: &ReadCounts) {
        if !self.running() || c.low != self.count_next || self.count_asked.is_none() {
            return;
        }
        for (i, n) in c.read_by.iter().enumerate() {
            self.counts.insert(c.low + i as u64, (c.members, *n));
        }
        self.count_asked = None;
        self.count_next = c.low + c.read_by.len().max(1) as u64;
    }

    /// The list arrived: every conversation in it is paged through.
    pub fn on_list(&mut self, list: ConvList) {
        if !self.running() || self.list.is_some() {
            return;
        }
        self.todo = list.items.iter().rev().map(|i| (i.conv, 0)).collect();
        self.list = Some(list);
    }

    /// A history page arrived: kept, and the page before it asked next
    /// unless it reached the floor.
    pub fn on_page(&mut self, page: &HistoryPage) {
        if page.gap_fill || self.asked.map(|a| a.0) != Some(page.conv) {
            return;
        }
        self.asked = None;
        let h = self.history.entry(page.conv).or_default();
        for r in &page.records {
            let payload = match &r.body {
                RecordBody::Message { payload, .. } => payload.clone(),
                RecordBody::Recalled { .. } | RecordBody::Member(_) => Bytes::new(),
            };
            h.insert(r.conv_seq, (r.from_user, payload));
        }
        let Some(top) = self.todo.last_mut() else {
            return;
        };
        if page.end.low <= page.end.floor + 1 {
            self.todo.pop();
        } else {
            top.1 = page.end.low;
        }
    }
}

/// One device, as the audit compares it.
pub struct Audited<'a> {
    pub dev: Dev,
    /// Joined after the run: it holds no sync history, only what it paged.
    pub late: bool,
    pub views: &'a Views,
    pub audit: &'a Audit,
    /// Groups may pass the write fan-out threshold: a device holds from its
    /// sync timeline only the group records its user was online for.
    pub read_fanout: bool,
}

/// Disagreements between the devices of each user, and between each
/// device and what it holds.
pub fn check(devices: &[Audited<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut first_of_user: BTreeMap<u64, &Audited<'_>> = BTreeMap::new();
    for d in devices {
        let Some(list) = &d.audit.list else {
            out.push(format!("{:?} never got its conversation list", d.dev));
            continue;
        };
        if !d.audit.done {
            out.push(format!("{:?} did not finish paging its history", d.dev));
            continue;
        }
        let first = *first_of_user.entry(d.dev.0).or_insert(d);
        if first.dev != d.dev {
            out.extend(agree(first, d));
        }
        if d.late {
            continue;
        }
        let user = d.dev.0;
        for item in &list.items {
            let held = d.views.convs.get(&item.conv);
            let history = d.audit.history.get(&item.conv);
            let held_msgs = held.map(|v| &v.msgs);
            let group = item.conv.kind == tern_core::wire::ConvKind::Group;
            if d.read_fanout && group {
                out.extend(check_read_fanout(d, item, held_msgs, history));
                continue;
            }
            if held_msgs != history {
                out.push(format!(
                    "{:?} holds {} records of {:?} from its sync timeline, history has {}",
                    d.dev,
                    held_msgs.map_or(0, |m| m.len()),
                    item.conv,
                    history.map_or(0, |h| h.len())
                ));
            }
            let read = held.map_or(0, |v| v.read);
            let unread = d.views.unread(user, &item.conv);
            if (read, unread) != (item.read_seq, item.unread) {
                out.push(format!(
                    "{:?} in {:?}: read position {read} and {unread} unread on the device, {} and {} on the server",
                    d.dev, item.conv, item.read_seq, item.unread
                ));
            }
        }
        for conv in d.views.convs.keys() {
            if !list.items.iter().any(|i| i.conv == *conv) {
                out.push(format!("{:?} holds {conv:?}, not in its list", d.dev));
            }
        }
    }
    out
}

/// A group in a read fan-out run: what the device holds from its sync
/// timeline is part of the history, as it is there; the server's unread
/// count is the history's messages from others past the read position.
fn check_read_fanout(
    d: &Audited<'_>,
    item: &tern_core::wire::ListItem,
    held: Option<&BTreeMap<u64, (u64, Bytes)>>,
    history: Option<&BTreeMap<u64, (u64, Bytes)>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    let history = history.unwrap_or(&empty);
    for (seq, rec) in held.unwrap_or(&empty) {
        if history.get(seq) != Some(rec) {
            out.push(format!(
                "{:?} holds record {seq} of {:?} from its sync timeline as {rec:?}, history has {:?}",
                d.dev,
                item.conv,
                history.get(seq)
            ));
        }
    }
    let unread = history
        .range(item.read_seq + 1..)
        .filter(|(_, (from, payload))| *from != d.dev.0 && !payload.is_empty())
        .count() as u64;
    if unread != item.unread {
        out.push(format!(
            "{:?} in {:?}: the server counts {} unread past {}, its history {unread}",
            d.dev, item.conv, item.unread, item.read_seq
        ));
    }
    out
}

/// Two devices of one user see the same list and the same histories.
fn agree(a: &Audited<'_>, b: &Audited<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let (la, lb) = (a.audit.list.as_ref(), b.audit.list.as_ref());
    let key = |l: Option<&ConvList>| -> Vec<(ConvRef, u64, u64, u64)> {
        let mut v: Vec<_> = l
            .map(|l| &l.items[..])
            .unwrap_or_default()
            .iter()
            .map(|i| (i.conv, i.last_seq, i.read_seq, i.unread))
            .collect();
        v.sort();
        v
    };
    if key(la) != key(lb) {
        out.push(format!(
            "{:?} and {:?} disagree on the list: {:?} vs {:?}",
            a.dev,
            b.dev,
            key(la),
            key(lb)
        ));
    }
    for (conv, h) in &a.audit.history {
        let other = b.audit.history.get(conv);
        if other != Some(h) {
            let seqs =
                |h: &BTreeMap<u64, (u64, Bytes)>| -> Vec<u64> { h.keys().copied().collect() };
            out.push(format!(
                "{:?} and {:?} disagree on the history of {conv:?}: records {:?} vs {:?}",
                a.dev,
                b.dev,
                seqs(h),
                other.map(seqs)
            ));
        }
    }
    out
}
