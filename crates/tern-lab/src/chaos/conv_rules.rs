//! The rules one device's final view must keep by itself (see
//! [`super::conv_check`] for the comparisons between devices): the view
//! against the sends, ACKs and read positions of the run, against what the
//! device was handed live, and a late device's roaming view against its
//! final one.

use std::collections::{HashMap, HashSet};

use super::checker::Ack;
use super::conv_check::{DeviceViews, View};
use super::journal::{parse_payload, HistRec, MsgId};
use super::report::{Kind, Report};

/// What the rules need besides the view.
pub(super) struct Ctx<'a> {
    pub(super) user: u64,
    pub(super) device: u32,
    pub(super) acks: &'a HashMap<MsgId, Ack>,
    pub(super) submits: &'a HashMap<MsgId, (u64, u64)>,
    pub(super) marks: &'a [(u64, u32, String, u64)],
}

/// Checks one device's final view (and its live entries and roaming view).
pub(super) fn check_view(
    ctx: &Ctx<'_>,
    view: &View,
    dv: Option<&DeviceViews>,
    report: &mut Report,
) {
    let (user, device) = (ctx.user, ctx.device);
    let listed: Vec<_> = view.list.keys().collect();
    let paged: Vec<_> = view.hist.keys().collect();
    if listed != paged {
        report.violation(Kind::History, || {
            format!("device {user}/{device}: list {listed:?} but histories of {paged:?}")
        });
    }
    for (conv, item) in &view.list {
        let recs = view.hist.get(conv).map_or(&[][..], Vec::as_slice);
        records(ctx, conv, recs, report);
        let last = recs.last().map_or(0, |r| r.conv_seq);
        if item.last_seq != last {
            report.violation(Kind::History, || {
                format!("device {user}/{device}, {conv}: list says last #{} but its history ends at #{last}", item.last_seq)
            });
        }
        let unread = recs
            .iter()
            .filter(|r| {
                r.conv_seq > item.read_seq && r.from_user != user && !r.recalled && !r.member
            })
            .count() as u64;
        if item.unread != unread || item.read_seq > item.last_seq || item.hidden {
            report.violation(Kind::History, || {
                format!(
                    "device {user}/{device}, {conv}: list says {} unread, read #{}, last #{}, hidden {}, but its history has {unread} messages from the other user past #{}",
                    item.unread, item.read_seq, item.last_seq, item.hidden, item.read_seq
                )
            });
        }
        for (_, d, _, up_to) in ctx.marks.iter().filter(|m| m.0 == user && &m.2 == conv) {
            if item.read_seq < (*up_to).min(item.last_seq) {
                report.violation(Kind::History, || {
                    format!("device {user}/{device}, {conv}: read position #{} below #{up_to}, set on device {d} and acknowledged", item.read_seq)
                });
            }
        }
        if let Some(&seen) = dv.and_then(|d| d.reads_seen.get(conv)) {
            if item.read_seq < seen {
                report.violation(Kind::History, || {
                    format!("device {user}/{device}, {conv}: read position #{} below #{seen}, handed to it live", item.read_seq)
                });
            }
        }
    }
    let Some(dv) = dv else { return };
    // What the device was handed live is what its history holds there.
    for l in &dv.live {
        let rec = view.hist.get(&l.cref).and_then(|h| {
            h.binary_search_by_key(&l.conv_seq, |r| r.conv_seq)
                .ok()
                .map(|i| &h[i])
        });
        let same = rec.is_some_and(|r| {
            (r.from_user, r.from_device, r.from_seq) == l.from
                && (r.recalled || r.payload == l.payload)
        });
        if !same {
            report.violation(Kind::History, || {
                format!(
                    "device {user}/{device} was handed entry #{} as {} #{} from {:?} {:?}, but its history holds {rec:?} there",
                    l.seq, l.cref, l.conv_seq, l.from, l.payload
                )
            });
        }
    }
    match &dv.roam {
        None => {}
        Some(Err(e)) => report.violation(Kind::History, || {
            format!("late device {user}/{device} could not page its history when it joined: {e}")
        }),
        Some(Ok(roam)) => {
            report.roam_records += roam.hist.values().map(|h| h.len() as u64).sum::<u64>();
            for (conv, recs) in &roam.hist {
                dense(user, device, conv, recs, "roaming", report);
                let fin = view.hist.get(conv).map_or(&[][..], Vec::as_slice);
                for r in recs {
                    let at = fin
                        .binary_search_by_key(&r.conv_seq, |f| f.conv_seq)
                        .ok()
                        .map(|i| &fin[i]);
                    if at != Some(r) {
                        report.violation(Kind::History, || {
                            format!("late device {user}/{device}, {conv}: roaming page had {r:?}, the final history {at:?}")
                        });
                    }
                }
            }
        }
    }
}

/// `conv_seq` dense from 1 (a group's: from the member's own first record,
/// the one that made it a member), ascending, each once.
fn dense(user: u64, device: u32, conv: &str, recs: &[HistRec], what: &str, report: &mut Report) {
    let first = match recs.first() {
        Some(r) if is_group(conv) && r.member => r.conv_seq,
        _ => 1,
    };
    for (i, r) in recs.iter().enumerate() {
        if r.conv_seq != first + i as u64 {
            report.violation(Kind::History, || {
                format!(
                    "device {user}/{device}, {conv}: {what} history is not dense: #{} at position {}",
                    r.conv_seq,
                    i + 1
                )
            });
            return;
        }
    }
}

/// One conversation's records: dense, each message submitted once by one
/// of the two users to the other, under its ACKed sequence, in order.
fn records(ctx: &Ctx<'_>, conv: &str, recs: &[HistRec], report: &mut Report) {
    let (user, device) = (ctx.user, ctx.device);
    dense(user, device, conv, recs, "final", report);
    let peer: Option<u64> = conv.strip_prefix("d:").and_then(|p| p.parse().ok());
    let mut ids: HashSet<MsgId> = HashSet::new();
    let mut last_from: HashMap<(u64, u32), u64> = HashMap::new();
    for r in recs {
        let last = last_from.entry((r.from_user, r.from_device)).or_insert(0);
        // One membership operation makes several records (a create: one
        // per member), all under its one sender sequence.
        if r.from_seq < *last || (r.from_seq == *last && !r.member) {
            let prev = *last;
            report.violation(Kind::History, || {
                format!(
                    "device {user}/{device}, {conv} #{}: sender {}/{} seq {} after its seq {prev}",
                    r.conv_seq, r.from_user, r.from_device, r.from_seq
                )
            });
        }
        *last = (*last).max(r.from_seq);
        if r.recalled || r.member {
            continue;
        }
        let Some(id) = r.payload.as_deref().and_then(parse_payload) else {
            report.violation(Kind::History, || {
                format!(
                    "device {user}/{device}, {conv} #{}: payload {:?}",
                    r.conv_seq, r.payload
                )
            });
            continue;
        };
        if !ids.insert(id) {
            report.violation(Kind::History, || {
                format!(
                    "device {user}/{device}, {conv}: message {id:?} stored twice (again at #{})",
                    r.conv_seq
                )
            });
        }
        let other = if is_group(conv) {
            Some(super::GROUP_TO)
        } else if r.from_user == user {
            peer
        } else {
            Some(user)
        };
        let fits = (id.0, id.1) == (r.from_user, r.from_device)
            && (r.from_user == user || Some(r.from_user) == peer || is_group(conv))
            && ctx
                .submits
                .get(&id)
                .is_some_and(|&(topic, to)| topic == r.topic && Some(to) == other);
        if !fits {
            report.violation(Kind::History, || {
                format!(
                    "device {user}/{device}, {conv} #{}: {r:?} was not submitted as such",
                    r.conv_seq
                )
            });
        }
        if let Some(a) = ctx.acks.get(&id) {
            if a.seq != r.from_seq {
                report.violation(Kind::History, || {
                    format!("device {user}/{device}, {conv} #{}: message {id:?} acked as seq {} but stored as {}", r.conv_seq, a.seq, r.from_seq)
                });
            }
        }
    }
}

/// Whether `conv` names the run's group.
pub(super) fn is_group(conv: &str) -> bool {
    conv.starts_with("g:")
}
