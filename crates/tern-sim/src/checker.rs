//! The simulator's invariant checker. What it proves, per run:
//! - every message a sender submitted is stored, under one uplink sequence,
//!   and reported stored at most once per life of the sending process;
//! - every stored (ACKed) message reaches every device of its receiver;
//! - each device is handed its inbox entries in sequence order, with no gap
//!   and nothing twice, within one life of its process; after a crash, the
//!   new process starts right after the checkpoint it had persisted, so an
//!   entry is handed again only if it was never persisted as released;
//! - a message is in each receiving inbox once (a message stored twice
//!   would come back under a second inbox sequence);
//! - a device never persists a checkpoint past what its application
//!   released, and the server never holds a checkpoint past the one the
//!   device persisted (else the server may delete entries a restarted
//!   device still needs).
//!
//! With own copies (protocol version 2), a message also reaches every
//! device of its sender's user, the sending one included, under the same
//! rules.

use std::collections::{HashMap, HashSet};

use bytes::{BufMut, Bytes, BytesMut};

use crate::world::SimReport;
use tern_core::client::Checkpoint;
use tern_core::time::Time;
use tern_core::wire::{Entry, SyncBody};

/// (user, device) of a sender or a receiving device.
pub type Dev = (u64, u32);
/// Message `n` of a sending device.
type Msg = (Dev, u32);

struct Sent {
    to: u64,
    at: Time,
    /// The uplink sequence it was first reported stored under.
    stored: Option<u64>,
}

/// One receiving device.
#[derive(Default)]
struct Inbox {
    /// Inbox sequence last handed in this life of the process.
    last: u64,
    /// Messages handed and not lost by a crash, with their inbox sequence.
    seen: HashMap<Msg, u64>,
    /// Per sender: (inbox sequence, message counter) in the order handed.
    order: HashMap<Dev, Vec<(u64, u32)>>,
}

/// Whether `me` is meant to get a message `from` sent (`s`).
fn meant_for(own_copies: bool, s: &Sent, from: Dev, me: Dev) -> bool {
    s.to == me.0 || (own_copies && from.0 == me.0)
}

/// Collects what senders and receivers saw.
#[derive(Default)]
pub struct Checker {
    /// Messages also reach their sender's devices (version 2).
    own_copies: bool,
    /// Devices added after the messages were sent: what they get of them
    /// (the backlog not yet trimmed) is checked for order, not counted.
    late: HashSet<Dev>,
    sent: HashMap<Msg, Sent>,
    /// Stored reports in the current life of each sender.
    stored_life: HashSet<Msg>,
    stored_count: u64,
    inboxes: HashMap<Dev, Inbox>,
    /// The inbox sequence each device first got each message at.
    first_seq: HashMap<(Dev, Msg), u64>,
    delivered: u64,
    rehanded: u64,
    violations: Vec<String>,
    latencies: Vec<u64>,
    /// Group entries and posts (groups runs).
    pub group: crate::group_check::GroupCheck,
}

impl Checker {
    /// A checker; `own_copies` when messages also reach every device of
    /// their sender's user (version 2).
    pub fn new(own_copies: bool) -> Self {
        Checker {
            own_copies,
            ..Checker::default()
        }
    }

    /// The payload that identifies message `n` of a device.
    pub fn payload(user: u64, device: u32, n: u32) -> Bytes {
        let mut b = BytesMut::with_capacity(16);
        b.put_u64(user);
        b.put_u32(device);
        b.put_u32(n);
        b.freeze()
    }

    fn parse(p: &[u8]) -> Option<(u64, u32, u32)> {
        let p: &[u8; 16] = p.try_into().ok()?;
        Some((
            u64::from_be_bytes(p[0..8].try_into().ok()?),
            u32::from_be_bytes(p[8..12].try_into().ok()?),
            u32::from_be_bytes(p[12..16].try_into().ok()?),
        ))
    }

    /// Records a violation found outside the checker.
    pub fn violation(&mut self, v: String) {
        self.violations.push(v);
    }

    /// A sender submitted message `n` to `to`.
    pub fn on_submit(&mut self, at: Time, from: Dev, to: u64, n: u32) {
        let sent = Sent {
            to,
            at,
            stored: None,
        };
        if self.sent.insert((from, n), sent).is_some() {
            self.violations
                .push(format!("{from:?} submitted message {n} twice"));
        }
    }

    /// The server acknowledged message `n` of `from` as stored under `seq`.
    pub fn on_stored(&mut self, from: Dev, n: u32, seq: u64) {
        let Some(s) = self.sent.get_mut(&(from, n)) else {
            self.violations
                .push(format!("{from:?} stored unknown message {n}"));
            return;
        };
        if !self.stored_life.insert((from, n)) {
            self.violations
                .push(format!("{from:?} message {n} reported stored twice"));
        }
        match s.stored {
            None => {
                s.stored = Some(seq);
                self.stored_count += 1;
            }
            Some(first) if first != seq => self.violations.push(format!(
                "{from:?} message {n} stored under uplink sequences {first} and {seq}"
            )),
            Some(_) => {}
        }
    }

    /// The server refused message `n` of `from`.
    pub fn on_rejected(&mut self, from: Dev, n: Option<u32>, code: u64) {
        self.violations.push(format!(
            "{from:?} operation {n:?} (a message if numbered) rejected with code {code}"
        ));
    }

    /// Whether `me` is meant to get message `n` of `from`.
    fn meant_for(&self, s: &Sent, from: Dev, me: Dev) -> bool {
        meant_for(self.own_copies, s, from, me)
    }

    /// An inbox entry was handed to the application of `me`.
    pub fn on_entry(&mut self, now: Time, me: Dev, d: &Entry) {
        let inbox = self.inboxes.entry(me).or_default();
        if d.seq != inbox.last + 1 {
            self.violations.push(format!(
                "{me:?} was handed inbox entry {} after {} (t={now:?})",
                d.seq, inbox.last
            ));
        }
        inbox.last = inbox.last.max(d.seq);
        if crate::group_check::is_group(d) {
            self.group.on_entry(me, d);
            return;
        }
        let SyncBody::Message { payload, .. } = &d.body else {
            return;
        };
        let Some((u, dv, n)) = Self::parse(payload) else {
            self.violations
                .push(format!("{me:?} got a corrupted payload at seq {}", d.seq));
            return;
        };
        let from = (u, dv);
        if from != (d.from_user, d.from_device) {
            self.violations.push(format!(
                "{me:?} seq {} claims sender {:?}",
                d.seq,
                (d.from_user, d.from_device)
            ));
        }
        if let Some(seq) = inbox.seen.insert((from, n), d.seq) {
            self.violations.push(format!(
                "{me:?} got message {n} of {from:?} twice (inbox seqs {seq} and {}, t={now:?})",
                d.seq
            ));
            return;
        }
        if !self.late.contains(&me) {
            self.delivered += 1;
        }
        let order = inbox.order.entry(from).or_default();
        if let Some(&(_, last)) = order.last().filter(|(_, last)| *last > n) {
            self.violations
                .push(format!("{me:?} got message {n} of {from:?} after {last}"));
        }
        order.push((d.seq, n));
        match self.first_seq.get(&(me, (from, n))) {
            Some(&first) if first != d.seq => self.violations.push(format!(
                "message {n} of {from:?} is in {me:?}'s inbox twice (seqs {first} and {}): stored twice",
                d.seq
            )),
            Some(_) => self.rehanded += 1,
            None => {
                self.first_seq.insert((me, (from, n)), d.seq);
                if let Some(s) = self.sent.get(&(from, n)) {
                    if !self.meant_for(s, from, me) {
                        self.violations.push(format!(
                            "{me:?} got message {n} of {from:?} meant for {}",
                            s.to
                        ));
                    }
                    if s.to == me.0 {
                        self.latencies
                            .push(now.saturating_since(s.at).as_micros() as u64);
                    }
                }
            }
        }
    }

    /// The last inbox sequence handed to `me` in this life of its process.
    pub fn last_handed(&self, me: Dev) -> u64 {
        self.inboxes.get(&me).map_or(0, |i| i.last)
    }

    /// `me` joins after the messages were sent.
    pub fn add_late(&mut self, me: Dev) {
        self.late.insert(me);
    }

    /// `me` logged in for the first time; its timeline starts after
    /// `checkpoint` (a device added late gets no entries from before).
    pub fn on_first_login(&mut self, me: Dev, checkpoint: u64) {
        let inbox = self.inboxes.entry(me).or_default();
        if inbox.last == 0 {
            inbox.last = checkpoint;
        }
    }

    /// `me` saved `cp` durably while its application had released up to
    /// `released`.
    pub fn on_persist(&mut self, me: Dev, cp: Checkpoint, released: u64) {
        if cp.seq > released {
            self.violations.push(format!(
                "{me:?} persisted checkpoint {} past what its application released ({released})",
                cp.seq
            ));
        }
    }

    /// The process of `me` crashed; the next one starts from the durable
    /// checkpoint `durable`, which the server must not be past.
    pub fn on_restart(&mut self, me: Dev, durable: u64, server: u64) {
        if server > durable {
            self.violations.push(format!(
                "{me:?} crashed with checkpoint {durable} saved, but the server had {server}"
            ));
        }
        self.stored_life.retain(|(from, _)| *from != me);
        self.group.on_restart(me, durable);
        let inbox = self.inboxes.entry(me).or_default();
        // Handed but not saved as released: the new process gets them again.
        let before = inbox.seen.len();
        inbox.seen.retain(|_, seq| *seq <= durable);
        self.delivered -= (before - inbox.seen.len()) as u64;
        for order in inbox.order.values_mut() {
            order.retain(|(seq, _)| *seq <= durable);
        }
        inbox.last = durable;
    }

    /// Cheap progress test used to end a run early: every message was
    /// stored and every receiving device has every message.
    pub fn all_delivered(&self, devices_per_user: u64) -> bool {
        let n = self.sent.len() as u64;
        let users = if self.own_copies { 2 } else { 1 };
        self.stored_count == n && self.delivered == n * devices_per_user * users
    }

    /// Final check over all devices; fills the report.
    pub fn verify(mut self, devices: &[Dev], report: &mut SimReport) {
        for ((from, n), s) in &self.sent {
            if s.stored.is_none() {
                self.violations.push(format!(
                    "message {n} of {from:?} never acknowledged as stored"
                ));
            }
            for dev in devices
                .iter()
                .filter(|d| meant_for(self.own_copies, s, *from, **d))
            {
                let got = self
                    .inboxes
                    .get(dev)
                    .is_some_and(|i| i.seen.contains_key(&(*from, *n)));
                if !got {
                    self.violations
                        .push(format!("message {n} of {from:?} never reached {dev:?}"));
                }
            }
        }
        report.stored = self.stored_count;
        report.delivered = self.delivered;
        report.rehanded = self.rehanded;
        report.latencies_us = std::mem::take(&mut self.latencies);
        self.violations.truncate(12);
        report.violations = self.violations;
    }
}
