//! The two baseline retransmission policies, modelled from their published
//! behaviour (see `/work/shared/reference/anchors.md`). Both are given every
//! advantage Tern does not take: the receiver hands a message up on its first
//! arrival (no ordering, so no head-of-line blocking), de-duplicates, and
//! ACKs every arrival (duplicates included) at once, one ACK per datagram.
//! Datagrams are 5 bytes (kind, index): only their count is reported.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::net::Policy;

const DATA: u8 = 1;
const ACK: u8 = 2;

fn encode(kind: u8, idx: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(5);
    b.put_u8(kind);
    b.put_u32(idx as u32);
    b.freeze()
}

fn decode(d: &Bytes) -> (u8, usize) {
    (d[0], u32::from_be_bytes([d[1], d[2], d[3], d[4]]) as usize)
}

/// Receiver shared by both baselines: deliver on first arrival, dedup, ACK
/// every arrival immediately.
#[derive(Default)]
struct EagerReceiver {
    seen: HashSet<usize>,
    acks_out: Vec<usize>,
}

impl EagerReceiver {
    /// A DATA datagram arrives: hand its message up (once), ACK it.
    fn on_datagram(&mut self, d: &Bytes, delivered: &mut Vec<usize>) {
        let (kind, idx) = decode(d);
        debug_assert_eq!(kind, DATA);
        if self.seen.insert(idx) {
            delivered.push(idx);
        }
        self.acks_out.push(idx);
    }
}

/// The message an ACK datagram acknowledges.
fn acked(d: &Bytes) -> usize {
    let (kind, idx) = decode(d);
    debug_assert_eq!(kind, ACK);
    idx
}

/// MobileIMSDK's client QoS daemon: a scan every 5 s; an unacknowledged
/// message older than 3 s (age counted from its first send) is retransmitted,
/// at most 2 times; at the scan after the second retry it is declared lost
/// (13–18 s after the first send). No backoff.
pub struct MobileImSdk {
    /// idx → (first sent, retries)
    unacked: BTreeMap<usize, (u64, u32)>,
    next_scan: u64,
    out: Vec<usize>,
    rx: EagerReceiver,
    lost: u64,
}

pub const MOBILEIMSDK_SCAN_US: u64 = 5_000_000;
pub const MOBILEIMSDK_MIN_AGE_US: u64 = 3_000_000;
pub const MOBILEIMSDK_RETRIES: u32 = 2;

impl MobileImSdk {
    pub fn new(seed: u64) -> Self {
        // The daemon's phase relative to the traffic is arbitrary.
        let phase = SmallRng::seed_from_u64(seed).gen_range(0..MOBILEIMSDK_SCAN_US);
        MobileImSdk {
            unacked: BTreeMap::new(),
            next_scan: phase,
            out: Vec::new(),
            rx: EagerReceiver::default(),
            lost: 0,
        }
    }

    fn scan(&mut self, now: u64) {
        let mut lost = Vec::new();
        for (&idx, (first_sent, retries)) in self.unacked.iter_mut() {
            if *retries >= MOBILEIMSDK_RETRIES {
                lost.push(idx);
            } else if now - *first_sent > MOBILEIMSDK_MIN_AGE_US {
                *retries += 1;
                self.out.push(idx);
            }
        }
        for idx in lost {
            self.unacked.remove(&idx);
            self.lost += 1;
        }
    }
}

impl Policy for MobileImSdk {
    fn submit(&mut self, now: u64, idx: usize) {
        self.unacked.insert(idx, (now, 0));
        self.out.push(idx);
    }

    fn at_receiver(&mut self, _now: u64, d: Bytes, delivered: &mut Vec<usize>) {
        self.rx.on_datagram(&d, delivered);
    }

    fn at_sender(&mut self, _now: u64, d: Bytes) {
        self.unacked.remove(&acked(&d));
    }

    fn on_timeout(&mut self, now: u64) {
        while self.next_scan <= now {
            let at = self.next_scan;
            self.scan(at);
            self.next_scan += MOBILEIMSDK_SCAN_US;
        }
    }

    fn transmit(&mut self, _now: u64, data: &mut Vec<Bytes>, acks: &mut Vec<Bytes>) {
        data.extend(self.out.drain(..).map(|i| encode(DATA, i)));
        acks.extend(self.rx.acks_out.drain(..).map(|i| encode(ACK, i)));
    }

    fn next_timeout(&self) -> Option<u64> {
        (!self.unacked.is_empty()).then_some(self.next_scan)
    }

    fn gave_up(&self) -> u64 {
        self.lost
    }
}

/// CoAP confirmable messages (RFC 7252 §4.2): initial timeout uniform in
/// [ACK_TIMEOUT, ACK_TIMEOUT × ACK_RANDOM_FACTOR] = [2 s, 3 s], doubled on
/// each retransmission, MAX_RETRANSMIT = 4; the sender gives up when the
/// timeout after the 4th retransmission expires. NSTART (1 outstanding
/// message) is *not* modelled: every message is sent at once, which favours
/// CoAP.
pub struct CoapCon {
    rng: SmallRng,
    /// idx → (deadline, current timeout, retransmissions)
    state: HashMap<usize, (u64, u64, u32)>,
    timers: BTreeSet<(u64, usize)>,
    out: Vec<usize>,
    rx: EagerReceiver,
    gave_up: u64,
}

pub const COAP_ACK_TIMEOUT_US: u64 = 2_000_000;
pub const COAP_RANDOM_FACTOR: f64 = 1.5;
pub const COAP_MAX_RETRANSMIT: u32 = 4;

impl CoapCon {
    pub fn new(seed: u64) -> Self {
        CoapCon {
            rng: SmallRng::seed_from_u64(seed),
            state: HashMap::new(),
            timers: BTreeSet::new(),
            out: Vec::new(),
            rx: EagerReceiver::default(),
            gave_up: 0,
        }
    }
}

impl Policy for CoapCon {
    fn submit(&mut self, now: u64, idx: usize) {
        let hi = (COAP_ACK_TIMEOUT_US as f64 * COAP_RANDOM_FACTOR) as u64;
        let timeout = self.rng.gen_range(COAP_ACK_TIMEOUT_US..=hi);
        self.state.insert(idx, (now + timeout, timeout, 0));
        self.timers.insert((now + timeout, idx));
        self.out.push(idx);
    }

    fn at_receiver(&mut self, _now: u64, d: Bytes, delivered: &mut Vec<usize>) {
        self.rx.on_datagram(&d, delivered);
    }

    fn at_sender(&mut self, _now: u64, d: Bytes) {
        let idx = acked(&d);
        if let Some((deadline, _, _)) = self.state.remove(&idx) {
            self.timers.remove(&(deadline, idx));
        }
    }

    fn on_timeout(&mut self, now: u64) {
        while let Some(&(deadline, idx)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.timers.pop_first();
            let st = self.state.get_mut(&idx).expect("armed timer has state");
            if st.2 >= COAP_MAX_RETRANSMIT {
                self.state.remove(&idx);
                self.gave_up += 1;
                continue;
            }
            st.2 += 1;
            st.1 *= 2;
            st.0 = now + st.1;
            self.timers.insert((st.0, idx));
            self.out.push(idx);
        }
    }

    fn transmit(&mut self, _now: u64, data: &mut Vec<Bytes>, acks: &mut Vec<Bytes>) {
        data.extend(self.out.drain(..).map(|i| encode(DATA, i)));
        acks.extend(self.rx.acks_out.drain(..).map(|i| encode(ACK, i)));
    }

    fn next_timeout(&self) -> Option<u64> {
        self.timers.first().map(|&(t, _)| t)
    }

    fn gave_up(&self) -> u64 {
        self.gave_up
    }
}
