//! The checker's conversation part (protocol version 2): from the views
//! each device journaled (its list and every conversation's history, see
//! [`super::conv_journal`]) and what it was handed live, it counts
//!
//! - **diverged**: devices of one user that disagree on a conversation's
//!   history (records, their `conv_seq`, recall markers) or on the list
//!   (which conversations, unread count, last and read positions); the two
//!   users of a direct conversation whose histories differ; a device with
//!   no complete view after settling; a late device holding less than the
//!   others;
//! - **history**: a view that contradicts what was sent, acknowledged,
//!   handed or marked read: an ACKed message missing from either side's
//!   history, a message stored twice, `conv_seq` not dense, a message
//!   nobody submitted or under another sender sequence than its ACK, a
//!   sender's messages out of order, an unread count that is not the
//!   number of the others' messages past the read position, a read
//!   position below one a device set, a live entry whose `conv_seq` holds
//!   another record, a roaming page that differs from the final history.
//!
//! The per-view rules are in [`super::conv_rules`].

use std::collections::{BTreeMap, HashMap, HashSet};

use super::checker::{Ack, Dev};
use super::conv_rules::{check_view, is_group, Ctx};
use super::journal::{EntryKind, HistRec, ListRec, MsgId, RecvRecord, ViewWhat};
use super::report::{Kind, Report};

/// One complete set of views: the list and each conversation's history.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct View {
    pub(super) list: BTreeMap<String, ListRec>,
    pub(super) hist: BTreeMap<String, Vec<HistRec>>,
    /// Highest sync-timeline entry handed when the view was complete.
    pub(super) inbox: u64,
}

/// A message entry a device was handed live, with its record number.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub(super) seq: u64,
    pub(super) cref: String,
    pub(super) conv_seq: u64,
    pub(super) from: (u64, u32, u64),
    pub(super) payload: Option<String>,
}

/// What one device journaled of its conversations.
#[derive(Debug, Default)]
pub(super) struct DeviceViews {
    /// The last complete final view (its round).
    pub(super) last: Option<(u32, View)>,
    /// Why the last final view failed, if none completed.
    error: Option<String>,
    /// A late device's roaming view, and whether it completed.
    pub(super) roam: Option<Result<View, String>>,
    pub(super) live: Vec<Live>,
    /// Highest read position handed live per conversation.
    pub(super) reads_seen: BTreeMap<String, u64>,
    /// Read entries handed: inbox sequence → (conversation, position,
    /// device that set it).
    reads: BTreeMap<u64, (String, u64, u32)>,
    /// Checkpoint of the first login (a late device is owed entries past it).
    first_checkpoint: Option<u64>,
    pub(super) downgraded: bool,
}

impl DeviceViews {
    /// Collects a device's conversation records from its receive journal.
    pub(super) fn of(records: &[RecvRecord]) -> DeviceViews {
        let mut dv = DeviceViews::default();
        let mut open: HashMap<(ViewWhat, u32), View> = HashMap::new();
        let mut handed = 0u64;
        for r in records {
            match r {
                RecvRecord::List(l) => {
                    let v = open.entry((l.what, l.round)).or_default();
                    v.list = l
                        .items
                        .iter()
                        .map(|i| (i.conv.clone(), i.clone()))
                        .collect();
                }
                RecvRecord::History(h) => {
                    let v = open.entry((h.what, h.round)).or_default();
                    v.hist.insert(h.conv.clone(), h.records.clone());
                }
                RecvRecord::ViewEnd(end) => {
                    let mut v = open.remove(&(end.what, end.round)).unwrap_or_default();
                    v.inbox = handed;
                    match (end.what, &end.error) {
                        (ViewWhat::Roam, None) => dv.roam = Some(Ok(v)),
                        (ViewWhat::Roam, Some(e)) => dv.roam = Some(Err(e.clone())),
                        (ViewWhat::Final, None) => {
                            if dv.last.as_ref().is_none_or(|(r, _)| *r <= end.round) {
                                dv.last = Some((end.round, v));
                            }
                        }
                        (ViewWhat::Final, Some(e)) => dv.error = Some(e.clone()),
                    }
                }
                RecvRecord::Entry(e) => {
                    handed = handed.max(e.seq);
                    let (Some(cref), Some(conv_seq)) = (&e.cref, e.conv_seq) else {
                        continue;
                    };
                    let own = e.sync.as_deref() == Some("own");
                    let group_msg = e.kind == EntryKind::Group && e.payload.is_some();
                    if e.kind == EntryKind::Message || own || group_msg {
                        if conv_seq > 0 {
                            dv.live.push(Live {
                                seq: e.seq,
                                cref: cref.clone(),
                                conv_seq,
                                from: (e.from_user, e.from_device, e.from_seq),
                                payload: e.payload.clone(),
                            });
                        }
                    } else if e.sync.as_deref() == Some("read") {
                        let m = dv.reads_seen.entry(cref.clone()).or_default();
                        *m = (*m).max(conv_seq);
                        dv.reads
                            .insert(e.seq, (cref.clone(), conv_seq, e.from_device));
                    }
                }
                RecvRecord::Downgraded { .. } => dv.downgraded = true,
                RecvRecord::Connected { checkpoint, .. } => {
                    dv.first_checkpoint.get_or_insert(*checkpoint);
                }
                RecvRecord::Offline { .. } => {}
            }
        }
        dv
    }
}

/// Everything the conversation checks need.
#[derive(Default)]
pub(super) struct ConvCheck {
    pub(super) devices: BTreeMap<Dev, DeviceViews>,
    /// Read positions set and acknowledged: (user, device, conv, up_to).
    pub(super) marks: Vec<(u64, u32, String, u64)>,
}

/// A message by sender user, device and uplink sequence.
type SenderSeq = (u64, u32, u64);

/// The first difference between two histories, described.
fn first_difference(a: &[HistRec], b: &[HistRec]) -> Option<String> {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return Some(format!("#{} is {x:?} vs #{} {y:?}", x.conv_seq, y.conv_seq));
        }
    }
    match a.len().cmp(&b.len()) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(format!(
            "{} records vs {}: extra {:?}",
            a.len(),
            b.len(),
            a[b.len()]
        )),
        std::cmp::Ordering::Less => Some(format!(
            "{} records vs {}: missing {:?}",
            a.len(),
            b.len(),
            b[a.len()]
        )),
    }
}

/// The other user of a direct conversation named `d:PEER`.
fn peer_of(cref: &str) -> Option<u64> {
    cref.strip_prefix("d:")?.parse().ok()
}

impl ConvCheck {
    /// Runs every conversation check. `devices_of`: every device of each
    /// user, late ones included; `required`: every device must have
    /// journaled a complete final view.
    pub(super) fn finish(
        &self,
        devices_of: &BTreeMap<u64, Vec<u32>>,
        required: bool,
        late: &HashSet<Dev>,
        acks: &HashMap<MsgId, Ack>,
        submits: &HashMap<MsgId, (u64, u64)>,
        report: &mut Report,
    ) {
        // The reference view of each user: its first device with one.
        let mut reference: BTreeMap<u64, (u32, &View)> = BTreeMap::new();
        for (&user, devs) in devices_of {
            for &device in devs {
                let dv = self.devices.get(&(user, device));
                if dv.is_some_and(|d| d.downgraded) {
                    report.violation(Kind::Diverged, || {
                        format!("device {user}/{device} was downgraded to protocol version 1")
                    });
                }
                let Some((round, view)) = dv.and_then(|d| d.last.as_ref()) else {
                    if required {
                        let why = dv.and_then(|d| d.error.clone()).unwrap_or_default();
                        report.violation(Kind::Diverged, || {
                            format!("device {user}/{device} journaled no complete view of its conversations after settling {why}")
                        });
                    }
                    continue;
                };
                report.views += 1;
                let ctx = Ctx {
                    user,
                    device,
                    acks,
                    submits,
                    marks: &self.marks,
                };
                check_view(&ctx, view, self.devices.get(&(user, device)), report);
                match reference.get(&user) {
                    None => {
                        reference.insert(user, (device, view));
                        report.history_records +=
                            view.hist.values().map(|h| h.len() as u64).sum::<u64>();
                    }
                    Some(&(rd, rv)) => compare(user, (rd, rv), (device, *round, view), report),
                }
            }
        }
        // Both users of a direct conversation hold the same history.
        for (&a, &(ad, av)) in &reference {
            for (conv, ah) in &av.hist {
                let Some(b) = peer_of(conv).filter(|&b| b > a) else {
                    continue;
                };
                let Some(&(bd, bv)) = reference.get(&b) else {
                    continue;
                };
                let bh = bv.hist.get(&format!("d:{a}"));
                let diff = match bh {
                    None => Some("absent on the other side".to_string()),
                    Some(bh) => first_difference(ah, bh),
                };
                if let Some(diff) = diff {
                    report.violation(Kind::Diverged, || {
                        format!("users {a} (device {ad}) and {b} (device {bd}) disagree on their direct conversation: {diff}")
                    });
                }
            }
        }
        group_histories_agree(&reference, report);
        self.acked_in_history(&reference, acks, report);
        self.reads_everywhere(devices_of, late, report);
    }

    /// A read position handed to one device of a user reaches every other
    /// (a late one: those past its first checkpoint).
    fn reads_everywhere(
        &self,
        devices_of: &BTreeMap<u64, Vec<u32>>,
        late: &HashSet<Dev>,
        report: &mut Report,
    ) {
        for (&user, devs) in devices_of {
            let mut all: BTreeMap<u64, (u32, &(String, u64, u32))> = BTreeMap::new();
            for &d in devs {
                for (seq, r) in self
                    .devices
                    .get(&(user, d))
                    .into_iter()
                    .flat_map(|dv| &dv.reads)
                {
                    all.entry(*seq).or_insert((d, r));
                }
            }
            for &d in devs {
                let Some(dv) = self.devices.get(&(user, d)) else {
                    continue;
                };
                let from = if late.contains(&(user, d)) {
                    dv.first_checkpoint.unwrap_or(u64::MAX)
                } else {
                    0
                };
                for (seq, (by, (conv, up_to, set_on))) in all.range(from + 1..) {
                    if !dv.reads.contains_key(seq) {
                        report.violation(Kind::Diverged, || {
                            format!("device {user}/{d} was never handed read position {conv} #{up_to} (set on device {set_on}, entry #{seq}, handed to device {by})")
                        });
                    }
                }
            }
        }
    }

    /// Every ACKed message is in both sides' history.
    fn acked_in_history(
        &self,
        reference: &BTreeMap<u64, (u32, &View)>,
        acks: &HashMap<MsgId, Ack>,
        report: &mut Report,
    ) {
        // By sender and sender sequence, so that a recall marker counts
        // (that a payload matches its sequence is checked per view).
        let mut held: HashMap<(u64, String), HashSet<SenderSeq>> = HashMap::new();
        for (&user, (_, view)) in reference {
            for (conv, recs) in &view.hist {
                let ids = recs
                    .iter()
                    .map(|r| (r.from_user, r.from_device, r.from_seq))
                    .collect();
                held.insert((user, conv.clone()), ids);
            }
        }
        let mut acks: Vec<_> = acks.iter().collect();
        acks.sort_unstable_by_key(|(id, _)| **id);
        // The run's group, as the users' views name it (one group).
        let group = reference
            .values()
            .flat_map(|(_, v)| v.hist.keys())
            .find(|c| is_group(c))
            .cloned();
        for (id, a) in acks {
            let sides: Vec<(u64, String)> = if a.to == super::GROUP_TO {
                // Every user whose stretch of the group covers the post
                // holds it (its history runs from the record that made it
                // a member to the one that ended that, if any).
                let Some(g) = &group else {
                    report.violation(Kind::History, || {
                        format!(
                            "group post {id:?} was acknowledged but no user's list has the group"
                        )
                    });
                    continue;
                };
                let at = reference.values().find_map(|(_, v)| {
                    v.hist.get(g)?.iter().find_map(|r| {
                        ((r.from_user, r.from_device, r.from_seq) == (id.0, id.1, a.seq))
                            .then_some(r.conv_seq)
                    })
                });
                let Some(at) = at else {
                    report.violation(Kind::History, || {
                        format!("group post {id:?} (sender seq {}) was acknowledged but is in no user's history of {g}", a.seq)
                    });
                    continue;
                };
                reference
                    .iter()
                    .filter(|(_, (_, v))| {
                        v.hist.get(g).is_some_and(|h| {
                            h.first().is_some_and(|f| f.conv_seq <= at)
                                && h.last().is_some_and(|l| l.conv_seq >= at)
                        })
                    })
                    .map(|(u, _)| (*u, g.clone()))
                    .collect()
            } else {
                vec![(id.0, format!("d:{}", a.to)), (a.to, format!("d:{}", id.0))]
            };
            for (user, conv) in sides {
                let Some(&(device, _)) = reference.get(&user) else {
                    continue;
                };
                if !held
                    .get(&(user, conv.clone()))
                    .is_some_and(|s| s.contains(&(id.0, id.1, a.seq)))
                {
                    report.violation(Kind::History, || {
                        format!(
                            "message {}:{}:{} (sender seq {}) was acknowledged but is not in user {user}'s history of {conv} (device {device})",
                            id.0, id.1, id.2, a.seq
                        )
                    });
                }
            }
        }
    }
}

/// Every user's history of the run's group is the same over the stretch
/// both were members for (the first user's reference is compared with
/// each other's where their stretches overlap; density per view is checked
/// by the rules).
fn group_histories_agree(reference: &BTreeMap<u64, (u32, &View)>, report: &mut Report) {
    let mut first: Option<(u64, u32, &String, &Vec<super::journal::HistRec>)> = None;
    for (&user, &(device, view)) in reference {
        for (conv, recs) in view.hist.iter().filter(|(c, _)| is_group(c)) {
            let Some((fu, fd, fc, frecs)) = first else {
                first = Some((user, device, conv, recs));
                continue;
            };
            if fc != conv {
                report.violation(Kind::Diverged, || {
                    format!("users {fu} and {user} hold different groups: {fc} and {conv}")
                });
                continue;
            }
            let span = |h: &Vec<super::journal::HistRec>| {
                (
                    h.first().map_or(0, |r| r.conv_seq),
                    h.last().map_or(0, |r| r.conv_seq),
                )
            };
            let ((a_lo, a_hi), (b_lo, b_hi)) = (span(frecs), span(recs));
            let (low, high) = (a_lo.max(b_lo), a_hi.min(b_hi));
            let within = |r: &&super::journal::HistRec| (low..=high).contains(&r.conv_seq);
            let a: Vec<_> = frecs.iter().filter(within).cloned().collect();
            let b: Vec<_> = recs.iter().filter(within).cloned().collect();
            if let Some(diff) = first_difference(&a, &b) {
                report.violation(Kind::Diverged, || {
                    format!("users {fu} (device {fd}) and {user} (device {device}) disagree on the group's history {conv}: {diff}")
                });
            }
        }
    }
}

/// A device's view against its user's reference view.
fn compare(
    user: u64,
    (rd, rv): (u32, &View),
    (device, round, view): (u32, u32, &View),
    report: &mut Report,
) {
    if rv.inbox != view.inbox {
        let (a, b) = (rv.inbox, view.inbox);
        report.violation(Kind::Diverged, || {
            format!("devices {user}/{rd} and {user}/{device} (round {round}) had been handed their sync timeline up to #{a} and #{b} when they took their final views")
        });
    }
    let convs = |v: &View| v.list.keys().cloned().collect::<Vec<_>>();
    if convs(rv) != convs(view) {
        let (a, b) = (convs(rv), convs(view));
        report.violation(Kind::Diverged, || {
            format!("devices {user}/{rd} and {user}/{device} (round {round}) list different conversations: {a:?} vs {b:?}")
        });
    }
    for (conv, item) in &view.list {
        if let Some(r) = rv.list.get(conv) {
            if r != item {
                report.violation(Kind::Diverged, || {
                    format!("devices {user}/{rd} and {user}/{device} disagree on the list item of {conv}: {r:?} vs {item:?}")
                });
            }
        }
    }
    for (conv, recs) in &view.hist {
        let Some(r) = rv.hist.get(conv) else { continue };
        if let Some(diff) = first_difference(r, recs) {
            report.violation(Kind::Diverged, || {
                format!("devices {user}/{rd} and {user}/{device} disagree on the history of {conv}: {diff}")
            });
        }
    }
}
