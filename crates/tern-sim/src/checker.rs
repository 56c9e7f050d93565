//! The simulator's invariant checker: every message a sender submitted is
//! stored exactly once and reaches every device of its receiver exactly once,
//! in the order its sender submitted it.

use std::collections::{HashMap, HashSet};

use bytes::{BufMut, Bytes, BytesMut};

use crate::world::SimReport;
use tern_core::client::{ClientEvent, OpId};
use tern_core::time::Time;
use tern_core::wire::EntryBody;

/// (user, device) of a sender or a receiving device.
type Dev = (u64, u32);

struct Sent {
    to: u64,
    n: u32,
    at: Time,
    stored: u32,
}

/// Collects what senders and receivers saw.
#[derive(Default)]
pub struct Checker {
    sent: HashMap<(Dev, OpId), Sent>,
    by_n: HashMap<(Dev, u32), OpId>,
    /// receiving device → sending device → counters seen, in arrival order.
    seen: HashMap<Dev, HashMap<Dev, Vec<u32>>>,
    seen_set: HashSet<(Dev, Dev, u32)>,
    violations: Vec<String>,
    deliveries: u64,
    latencies: Vec<u64>,
    undelivered: u64,
    stored_once: u64,
}

impl Checker {
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

    /// A sender submitted message `n` to `to`.
    pub fn on_submit(&mut self, at: Time, user: u64, device: u32, op: OpId, to: u64, n: u32) {
        self.sent.insert(
            ((user, device), op),
            Sent {
                to,
                n,
                at,
                stored: 0,
            },
        );
        self.by_n.insert(((user, device), n), op);
        self.undelivered += 1;
    }

    /// An event reached the application of (user, device).
    pub fn on_event(&mut self, now: Time, user: u64, device: u32, ev: &ClientEvent) {
        let me = (user, device);
        match ev {
            ClientEvent::Stored { op, .. } => match self.sent.get_mut(&(me, *op)) {
                Some(s) => {
                    s.stored += 1;
                    if s.stored == 1 {
                        self.stored_once += 1;
                    }
                    if s.stored > 1 {
                        self.violations
                            .push(format!("{me:?} op {op:?} reported stored twice"));
                    }
                }
                None => self
                    .violations
                    .push(format!("{me:?} stored unknown op {op:?}")),
            },
            ClientEvent::Rejected { op, code, .. } => {
                self.violations
                    .push(format!("{me:?} op {op:?} rejected with code {code}"));
            }
            ClientEvent::Entry(d) => {
                let EntryBody::Message { payload, .. } = &d.body else {
                    return;
                };
                let Some((u, dv, n)) = Self::parse(payload) else {
                    self.violations
                        .push(format!("{me:?} got a corrupted payload at seq {}", d.seq));
                    return;
                };
                if (u, dv) != (d.from_user, d.from_device) {
                    self.violations.push(format!(
                        "{me:?} seq {} claims sender {:?}",
                        d.seq,
                        (d.from_user, d.from_device)
                    ));
                }
                let from = (u, dv);
                if !self.seen_set.insert((me, from, n)) {
                    self.violations.push(format!("{me:?} got message {n} of {from:?} twice (second at inbox seq {} from_seq {} t={:?})", d.seq, d.from_seq, now));
                    return;
                }
                let list = self.seen.entry(me).or_default().entry(from).or_default();
                if list.last().is_some_and(|last| *last > n) {
                    self.violations.push(format!(
                        "{me:?} got message {n} of {from:?} after {}",
                        list.last().unwrap()
                    ));
                }
                list.push(n);
                self.deliveries += 1;
                if let Some(s) = self
                    .by_n
                    .get(&(from, n))
                    .and_then(|op| self.sent.get(&(from, *op)))
                {
                    if s.to != user {
                        self.violations.push(format!(
                            "{me:?} got message {n} of {from:?} meant for {}",
                            s.to
                        ));
                    }
                    self.latencies
                        .push(now.saturating_since(s.at).as_micros() as u64);
                }
            }
            _ => {}
        }
    }

    /// Cheap progress test used to end a run early: every message was
    /// stored and the number of deliveries reached what is owed.
    pub fn all_delivered(&self, devices_per_user: u64) -> bool {
        self.stored_once == self.sent.len() as u64
            && self.deliveries >= self.undelivered * devices_per_user
    }

    /// Final check over all devices; fills the report.
    pub fn verify(mut self, devices: &[Dev], report: &mut SimReport) {
        for ((from, _op), s) in &self.sent {
            if s.stored == 0 {
                self.violations.push(format!(
                    "message {} of {from:?} never acknowledged as stored",
                    s.n
                ));
            }
            for dev in devices.iter().filter(|(u, _)| *u == s.to) {
                if !self.seen_set.contains(&(*dev, *from, s.n)) {
                    self.violations
                        .push(format!("message {} of {from:?} never reached {dev:?}", s.n));
                }
            }
        }
        report.stored = self.sent.values().filter(|s| s.stored > 0).count() as u64;
        report.delivered = self.deliveries;
        report.latencies_us = std::mem::take(&mut self.latencies);
        self.violations.truncate(12);
        report.violations = self.violations;
    }
}
