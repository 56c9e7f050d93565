//! The invariant checker. It reads only the journals of a run directory
//! (see [`super::journal`]), never the run's memory, so it can be pointed at
//! any run directory afterwards (`tern-chaos check --dir DIR`) and at
//! hand-written journals in tests.
//!
//! What it counts (each must be 0):
//!
//! - **lost**: a message whose `send` resolved `Ok` (an `ack` line) that some
//!   device of its receiver never got; counted once per (message, device).
//! - **duplicates**: an inbox entry handed to a device's application twice
//!   (same inbox sequence), or the same message (same payload id) handed twice
//!   under different inbox sequences.
//! - **order**: per receiving device, conversation and sending device, a
//!   message whose sender uplink sequence is not above the previous one's; or
//!   an inbox sequence below one already handed.
//! - **bad receipts**: a DELIVERED or READ receipt naming a message that does
//!   not exist (not a message from that device to the receipt's author; READ:
//!   not in that conversation), or covering a message (the named one or any
//!   earlier one from the same device to the same receiver, READ: in the same
//!   conversation) that the acknowledging/reading device had not been handed
//!   before the receipt reached the sender's device.
//! - **gaps**: a device's inbox sequence jumping forward (entries skipped).
//! - **bogus**: anything else that cannot happen: an unparsable or
//!   misattributed payload, a message nobody submitted, a message delivered to
//!   the wrong user or conversation, a delivered sender sequence different
//!   from the acknowledged one, devices of one user disagreeing about an
//!   inbox entry, recalls (the run sends none), malformed journal lines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::conv_check::{ConvCheck, DeviceViews};
use super::journal::{
    journal_dir, parse_payload, read_jsonl, recv_file, EntryKind, EntryRecord, Meta, MsgId,
    RecvRecord, SendRecord,
};
use super::receipts::{check_receipt, PrefixCache, Receipt};
pub use super::report::{Kind, Report, EXAMPLES_PER_KIND};

/// A device: (user, device).
pub(super) type Dev = (u64, u32);

/// Known messages from (sender user, sender device) to receiver user:
/// sender sequence → conversation.
pub(super) type Known = HashMap<(u64, u32, u64), BTreeMap<u64, u64>>;

/// What a device was handed of one message: first time and sender sequence.
#[derive(Debug, Clone, Copy)]
struct Seen {
    t_us: u64,
    from_seq: u64,
}

/// An `ack` line: sender sequence, conversation (topic), receiver.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ack {
    pub(super) seq: u64,
    pub(super) conv: u64,
    pub(super) to: u64,
}

/// Content of an inbox entry, which every device of the user must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    kind: EntryKind,
    conv: u64,
    from_user: u64,
    from_device: u32,
    from_seq: u64,
    payload: Option<String>,
    status: Option<String>,
    target: (Option<u32>, Option<u64>),
}

impl Content {
    fn of(e: &EntryRecord) -> Content {
        Content {
            kind: e.kind,
            conv: e.conv,
            from_user: e.from_user,
            from_device: e.from_device,
            from_seq: e.from_seq,
            payload: e.payload.clone(),
            status: e.status.clone(),
            target: (e.target_device, e.target_seq),
        }
    }
}

#[derive(Default)]
pub(super) struct DevState {
    /// Messages handed, by payload id.
    seen: HashMap<MsgId, Seen>,
    /// (from_user, from_device, from_seq) → first time handed.
    pub(super) by_seq: HashMap<(u64, u32, u64), u64>,
}

/// Checks the run directory `dir` (the folder holding `journal/`).
pub fn check_dir(dir: &Path) -> Result<Report, String> {
    let jdir = journal_dir(dir);
    let meta_path = jdir.join("meta.json");
    let meta: Meta = serde_json::from_str(
        &std::fs::read_to_string(&meta_path)
            .map_err(|e| format!("{}: {e}", meta_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", meta_path.display()))?;
    let mut c = Checker::default();
    c.report.devices = meta.devices.len();
    c.late = meta.late.iter().copied().collect();
    read_jsonl(&jdir.join("sends.jsonl"), |line, r: SendRecord| {
        c.on_send(line, r)
    })?;
    let mut all_devices_of: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for &(user, device) in &meta.devices {
        all_devices_of.entry(user).or_default().push(device);
        if !c.late.contains(&(user, device)) {
            c.devices_of.entry(user).or_default().push(device);
        }
    }
    for &(user, device) in &meta.devices {
        let path = jdir.join(recv_file(user, device));
        let mut records = Vec::new();
        read_jsonl(&path, |_, r: RecvRecord| records.push(r))?;
        c.conv
            .devices
            .insert((user, device), DeviceViews::of(&records));
        c.on_device(user, device, records);
    }
    c.conv.finish(
        &all_devices_of,
        meta.conv_checks,
        &c.late,
        &c.acks,
        &c.submits,
        &mut c.report,
    );
    Ok(c.finish())
}

#[derive(Default)]
struct Checker {
    report: Report,
    devices_of: BTreeMap<u64, Vec<u32>>,
    submits: HashMap<MsgId, (u64, u64)>,
    acks: HashMap<MsgId, Ack>,
    devs: HashMap<Dev, DevState>,
    /// (user, inbox seq) → content, as first seen by a device of the user.
    inbox: HashMap<(u64, u64), Content>,
    /// Known messages from (sender user, sender device) to receiver user:
    /// sender sequence → conversation.
    known: Known,
    receipts: HashMap<(u64, u64), Receipt>,
    /// Ids handed twice to some device (their sequence checks are moot).
    duplicated: HashSet<MsgId>,
    /// Devices that joined late: owed nothing sent before.
    late: HashSet<Dev>,
    /// Conversation views and what they are checked against.
    conv: ConvCheck,
}

impl Checker {
    fn on_send(&mut self, line: usize, r: SendRecord) {
        match r {
            SendRecord::Submit {
                user,
                device,
                n,
                conv,
                to,
                ..
            } => {
                if self.submits.insert((user, device, n), (conv, to)).is_some() {
                    self.report.violation(Kind::Bogus, || {
                        format!("sends.jsonl:{line}: message {user}:{device}:{n} submitted twice")
                    });
                } else {
                    self.report.submitted += 1;
                }
            }
            SendRecord::Ack {
                user,
                device,
                n,
                conv,
                to,
                seq,
                ..
            } => {
                let id = (user, device, n);
                match self.submits.get(&id) {
                    Some(&(c, t)) if (c, t) == (conv, to) => {}
                    _ => self.report.violation(Kind::Bogus, || {
                        format!("sends.jsonl:{line}: ack of {user}:{device}:{n} matches no submit")
                    }),
                }
                match self.acks.get(&id) {
                    Some(a) if a.seq != seq => self.report.violation(Kind::Bogus, || {
                        format!(
                            "sends.jsonl:{line}: {user}:{device}:{n} acked as seq {seq} and as seq {}",
                            a.seq
                        )
                    }),
                    Some(_) => {}
                    None => {
                        self.acks.insert(id, Ack { seq, conv, to });
                        self.report.acked += 1;
                        self.known
                            .entry((user, device, to))
                            .or_default()
                            .insert(seq, conv);
                    }
                }
            }
            SendRecord::Read { .. } => {}
            SendRecord::MarkRead {
                user,
                device,
                conv,
                up_to,
                ..
            } => self.conv.marks.push((user, device, conv, up_to)),
        }
    }

    fn on_device(&mut self, user: u64, device: u32, records: Vec<RecvRecord>) {
        let me = (user, device);
        let mut st = DevState::default();
        let mut handed: HashSet<u64> = HashSet::new();
        // A late device's timeline starts where its first login put it.
        let mut last_inbox = if self.late.contains(&me) {
            records
                .iter()
                .find_map(|r| match r {
                    RecvRecord::Connected { checkpoint, .. } => Some(*checkpoint),
                    _ => None,
                })
                .unwrap_or(0)
        } else {
            0
        };
        // (conv, from_user, from_device) → highest sender sequence handed.
        let mut last_from: HashMap<(u64, u64, u32), u64> = HashMap::new();
        for r in records {
            let RecvRecord::Entry(e) = r else { continue };
            if !handed.insert(e.seq) {
                self.report.violation(Kind::Duplicate, || {
                    format!(
                        "device {user}/{device} was handed inbox entry #{} again at t={}us ({:?} from {}/{} seq {})",
                        e.seq, e.t_us, e.kind, e.from_user, e.from_device, e.from_seq
                    )
                });
                continue;
            }
            if e.seq < last_inbox {
                self.report.violation(Kind::Order, || {
                    format!(
                        "device {user}/{device} was handed inbox entry #{} after #{last_inbox}",
                        e.seq
                    )
                });
            } else if e.seq > last_inbox + 1 {
                self.report.violation(Kind::Gap, || {
                    format!(
                        "device {user}/{device} skipped inbox entries #{}..=#{} (handed #{} at t={}us)",
                        last_inbox + 1,
                        e.seq - 1,
                        e.seq,
                        e.t_us
                    )
                });
            }
            last_inbox = last_inbox.max(e.seq);
            let content = Content::of(&e);
            match self.inbox.get(&(user, e.seq)) {
                Some(c) if *c != content => self.report.violation(Kind::Bogus, || {
                    format!(
                        "devices of user {user} disagree about inbox entry #{}: {c:?} vs {content:?} (device {device})",
                        e.seq
                    )
                }),
                Some(_) => {}
                None => {
                    self.inbox.insert((user, e.seq), content);
                }
            }
            match e.kind {
                EntryKind::Message => {
                    self.on_message(me, &e, &mut st, &mut last_from);
                }
                EntryKind::Receipt => self.on_receipt(me, &e),
                EntryKind::Recall => self.report.violation(Kind::Bogus, || {
                    format!(
                        "device {user}/{device} got a recall (#{}) but the run sends none",
                        e.seq
                    )
                }),
                EntryKind::Sync if e.from_user != user => {
                    self.report.violation(Kind::Bogus, || {
                        format!(
                            "device {user}/{device} got entry #{} as its own user's from user {}",
                            e.seq, e.from_user
                        )
                    })
                }
                EntryKind::Sync => {}
                // The run's group: checked against its history (conv_check).
                EntryKind::Group => {}
            }
        }
        self.devs.insert(me, st);
    }

    fn on_message(
        &mut self,
        me: Dev,
        e: &EntryRecord,
        st: &mut DevState,
        last_from: &mut HashMap<(u64, u64, u32), u64>,
    ) {
        let (user, device) = me;
        self.report.deliveries += 1;
        let Some(id) = e.payload.as_deref().and_then(parse_payload) else {
            self.report.violation(Kind::Bogus, || {
                format!(
                    "device {user}/{device}: inbox entry #{} has payload {:?}",
                    e.seq, e.payload
                )
            });
            return;
        };
        if (id.0, id.1) != (e.from_user, e.from_device) {
            self.report.violation(Kind::Bogus, || {
                format!(
                    "device {user}/{device}: message {id:?} arrived as from {}/{}",
                    e.from_user, e.from_device
                )
            });
        }
        // Whatever happens below, this message exists (receipts may name it).
        self.known
            .entry((e.from_user, e.from_device, user))
            .or_default()
            .entry(e.from_seq)
            .or_insert(e.conv);
        st.by_seq
            .entry((e.from_user, e.from_device, e.from_seq))
            .or_insert(e.t_us);
        if let Some(prev) = st.seen.get(&id) {
            self.duplicated.insert(id);
            self.report.violation(Kind::Duplicate, || {
                format!(
                    "device {user}/{device} got message {}:{}:{} twice: first as sender seq {} at t={}us, again as inbox #{} sender seq {} at t={}us",
                    id.0, id.1, id.2, prev.from_seq, prev.t_us, e.seq, e.from_seq, e.t_us
                )
            });
            return;
        }
        st.seen.insert(
            id,
            Seen {
                t_us: e.t_us,
                from_seq: e.from_seq,
            },
        );
        let key = (e.conv, e.from_user, e.from_device);
        let last = last_from.entry(key).or_insert(0);
        if e.from_seq <= *last {
            let prev = *last;
            self.report.violation(Kind::Order, || {
                format!(
                    "device {user}/{device}, conv {}: message {}:{}:{} (sender seq {}) handed after sender seq {prev} of the same device (inbox #{})",
                    e.conv, id.0, id.1, id.2, e.from_seq, e.seq
                )
            });
        }
        *last = (*last).max(e.from_seq);
        match self.submits.get(&id) {
            None => self.report.violation(Kind::Bogus, || {
                format!("device {user}/{device}: message {id:?} was never submitted")
            }),
            Some(&(conv, to)) if (conv, to) != (e.conv, user) => {
                self.report.violation(Kind::Bogus, || {
                    format!(
                        "device {user}/{device}: message {id:?} for user {to} conv {conv} arrived in conv {}",
                        e.conv
                    )
                })
            }
            Some(_) => {}
        }
    }

    fn on_receipt(&mut self, me: Dev, e: &EntryRecord) {
        let (user, device) = me;
        let read = match e.status.as_deref() {
            Some("delivered") => false,
            Some("read") => true,
            other => {
                self.report.violation(Kind::Bogus, || {
                    format!(
                        "device {user}/{device}: receipt #{} with status {other:?}",
                        e.seq
                    )
                });
                return;
            }
        };
        let (Some(target_device), Some(target_seq)) = (e.target_device, e.target_seq) else {
            self.report.violation(Kind::Bogus, || {
                format!(
                    "device {user}/{device}: receipt #{} without a target",
                    e.seq
                )
            });
            return;
        };
        let r = self.receipts.entry((user, e.seq)).or_insert(Receipt {
            owner: user,
            inbox_seq: e.seq,
            t_us: e.t_us,
            read,
            conv: e.conv,
            by: (e.from_user, e.from_device),
            target_device,
            target_seq,
        });
        r.t_us = r.t_us.min(e.t_us);
    }

    fn finish(mut self) -> Report {
        // Sender sequences must match what the sender was told.
        for ((user, device), st) in &self.devs {
            for (id, s) in &st.seen {
                if self.duplicated.contains(id) {
                    continue;
                }
                if let Some(a) = self.acks.get(id) {
                    if a.seq != s.from_seq {
                        let (a_seq, got) = (a.seq, s.from_seq);
                        self.report.violation(Kind::Bogus, || {
                            format!(
                                "device {user}/{device}: message {id:?} acked as sender seq {a_seq} but delivered as {got}"
                            )
                        });
                    }
                } else {
                    self.report.unacked_delivered += 1;
                }
            }
        }
        // Lost: every ACKed message at every device of its receiver.
        let mut acks: Vec<_> = self.acks.iter().map(|(id, a)| (*id, *a)).collect();
        acks.sort_unstable_by_key(|(id, _)| *id);
        for (id, a) in &acks {
            for &d in self.devices_of.get(&a.to).into_iter().flatten() {
                let got = self
                    .devs
                    .get(&(a.to, d))
                    .is_some_and(|st| st.seen.contains_key(id));
                if !got {
                    self.report.violation(Kind::Lost, || {
                        format!(
                            "message {}:{}:{} (sender seq {}, conv {}) acked to its sender but never handed to device {}/{d}",
                            id.0, id.1, id.2, a.seq, a.conv, a.to
                        )
                    });
                }
            }
        }
        // Receipts.
        let mut receipts: Vec<_> = std::mem::take(&mut self.receipts).into_values().collect();
        receipts.sort_unstable_by_key(|r| (r.owner, r.inbox_seq));
        let mut cache = PrefixCache::new();
        for r in &receipts {
            self.report.receipts += 1;
            if r.read {
                self.report.read_receipts += 1;
            }
            check_receipt(
                r,
                &self.known,
                &self.devs,
                &self.late,
                &mut cache,
                &mut self.report,
            );
        }
        self.report
    }
}
