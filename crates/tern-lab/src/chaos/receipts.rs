//! Receipt checks: a DELIVERED or READ receipt must name a message that
//! exists, and every message it covers (the named one and every earlier one
//! from the same device to the same user; READ: in the same conversation)
//! must have been handed to the acknowledging device before the receipt
//! reached the sender's device. A device that joined late is owed nothing
//! stored before it registered: its receipts cover the sender device's
//! messages from the first one it was handed (its gaps are checked apart).

use std::collections::{HashMap, HashSet};

use super::checker::{Dev, DevState, Known};
use super::report::{Kind, Report};

#[derive(Debug, Clone)]
pub(super) struct Receipt {
    /// Owner of the inbox (the original sender).
    pub(super) owner: u64,
    pub(super) inbox_seq: u64,
    /// Earliest time any device of the owner got it.
    pub(super) t_us: u64,
    pub(super) read: bool,
    pub(super) conv: u64,
    /// Author: receiving user and the acknowledging (reading) device.
    pub(super) by: Dev,
    pub(super) target_device: u32,
    pub(super) target_seq: u64,
}

/// (acknowledging device, sender user, sender device, READ conversation) →
/// the known sender sequences to that user, and the running maximum of the
/// times the device was handed them (`u64::MAX`: never).
pub(super) type PrefixCache = HashMap<(Dev, u64, u32, Option<u64>), (Vec<u64>, Vec<u64>)>;

pub(super) fn check_receipt(
    r: &Receipt,
    known: &Known,
    devs: &HashMap<Dev, DevState>,
    late: &HashSet<Dev>,
    cache: &mut PrefixCache,
    report: &mut Report,
) {
    let (a, d, q) = (r.owner, r.target_device, r.target_seq);
    let (b, bd) = r.by;
    let what = if r.read { "READ" } else { "DELIVERED" };
    let describe = |why: String| {
        format!(
            "{what} receipt #{} in user {a}'s inbox from {b}/{bd} for {a}/{d} seq {q} (conv {}): {why}",
            r.inbox_seq, r.conv
        )
    };
    let target_conv = known.get(&(a, d, b)).and_then(|m| m.get(&q)).copied();
    let Some(target_conv) = target_conv else {
        report.violation(Kind::BadReceipt, || {
            describe(format!("no message {a}/{d} seq {q} to user {b} exists"))
        });
        return;
    };
    if r.read && target_conv != r.conv {
        report.violation(Kind::BadReceipt, || {
            describe(format!("that message is in conv {target_conv}"))
        });
        return;
    }
    let conv = r.read.then_some(r.conv);
    let key = ((b, bd), a, d, conv);
    let (seqs, prefix) = &*cache.entry(key).or_insert_with(|| {
        let by_seq = devs.get(&(b, bd)).map(|st| &st.by_seq);
        let first = if late.contains(&(b, bd)) {
            by_seq
                .into_iter()
                .flatten()
                .filter(|((u, dv, _), _)| (*u, *dv) == (a, d))
                .map(|((_, _, s), _)| *s)
                .min()
                .unwrap_or(q)
        } else {
            0
        };
        let seqs: Vec<u64> = known
            .get(&(a, d, b))
            .into_iter()
            .flatten()
            .filter(|(s, c)| **s >= first && conv.is_none_or(|cv| cv == **c))
            .map(|(s, _)| *s)
            .collect();
        let mut max = 0u64;
        let prefix: Vec<u64> = seqs
            .iter()
            .map(|s| {
                let t = by_seq
                    .and_then(|m| m.get(&(a, d, *s)))
                    .copied()
                    .unwrap_or(u64::MAX);
                max = max.max(t);
                max
            })
            .collect();
        (seqs, prefix)
    });
    let i = seqs.partition_point(|s| *s <= q);
    if i == 0 {
        return; // unreachable: q itself is known
    }
    if prefix[i - 1] <= r.t_us {
        return;
    }
    // Find the first covered message not handed (in time) to the device.
    let by_seq = devs.get(&(b, bd)).map(|st| &st.by_seq);
    let mut why = String::from("?");
    for s in &seqs[..i] {
        match by_seq.and_then(|m| m.get(&(a, d, *s))) {
            None => {
                why = format!("device {b}/{bd} was never handed message {a}/{d} seq {s}");
                break;
            }
            Some(t) if *t > r.t_us => {
                why = format!(
                    "device {b}/{bd} was handed message {a}/{d} seq {s} only at t={t}us, after the receipt (t={}us)",
                    r.t_us
                );
                break;
            }
            Some(_) => {}
        }
    }
    report.violation(Kind::BadReceipt, || describe(why.clone()));
}
