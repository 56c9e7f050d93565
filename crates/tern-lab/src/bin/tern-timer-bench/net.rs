//! The point-to-point harness shared by every timer policy: a sender and a
//! receiver in virtual time, joined by two seeded [`Link`]s (data one way,
//! ACKs the other), and a Poisson-ish stream of messages.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tern_sim::impairment::{Impairment, Link};

/// A sender/receiver pair under one retransmission policy. Time is in
/// microseconds of virtual time.
pub trait Policy {
    /// The application hands message `idx` (0, 1, 2, ...) to the sender.
    fn submit(&mut self, now: u64, idx: usize);
    /// A datagram reaches the receiver; push the indices of the messages it
    /// hands to the application, in the order it hands them.
    fn at_receiver(&mut self, now: u64, datagram: Bytes, delivered: &mut Vec<usize>);
    /// A datagram reaches the sender.
    fn at_sender(&mut self, now: u64, datagram: Bytes);
    /// Fire whatever timers are due at `now`.
    fn on_timeout(&mut self, now: u64);
    /// Datagrams to put on the wire now: sender → receiver and receiver → sender.
    fn transmit(&mut self, now: u64, data: &mut Vec<Bytes>, acks: &mut Vec<Bytes>);
    /// The next instant `on_timeout` must run, if any timer is armed.
    fn next_timeout(&self) -> Option<u64>;
    /// Messages the sender gave up on (declared lost, or retry budget spent).
    fn gave_up(&self) -> u64;
}

/// What one flow did.
#[derive(Debug, Default, Clone)]
pub struct FlowResult {
    /// Submit-to-app latency of every delivered message, microseconds.
    pub latencies_us: Vec<u64>,
    /// Messages submitted.
    pub submitted: u64,
    /// Messages the receiver's application never got.
    pub never_delivered: u64,
    /// Messages the sender gave up on.
    pub gave_up: u64,
    /// Datagrams sent, sender → receiver.
    pub data_datagrams: u64,
    /// Datagrams sent, receiver → sender.
    pub ack_datagrams: u64,
    /// Bytes sent both ways (Tern's own bytes, no IP/UDP headers).
    pub bytes: u64,
}

impl FlowResult {
    pub fn merge(&mut self, o: FlowResult) {
        self.latencies_us.extend(o.latencies_us);
        self.submitted += o.submitted;
        self.never_delivered += o.never_delivered;
        self.gave_up += o.gave_up;
        self.data_datagrams += o.data_datagrams;
        self.ack_datagrams += o.ack_datagrams;
        self.bytes += o.bytes;
    }
}

/// SplitMix64 over a few inputs: independent, reproducible sub-seeds.
pub fn mix(parts: &[u64]) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        x ^= p;
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = z ^ (z >> 31);
    }
    x
}

/// Submission instants of `n` messages: exponential gaps of mean `mean`
/// (a Poisson process), starting `mean` in.
pub fn schedule(seed: u64, n: usize, mean: Duration) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mean = mean.as_micros() as f64;
    let mut t = mean;
    (0..n)
        .map(|_| {
            let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
            t += -u.ln() * mean;
            t as u64
        })
        .collect()
}

/// One flow's path: the same impairment both ways, independent seeds.
pub struct Path {
    pub imp: Impairment,
    pub data_seed: u64,
    pub ack_seed: u64,
}

/// Runs one flow to completion: every message delivered or given up, and
/// nothing left in flight or armed.
pub fn run_flow(policy: &mut dyn Policy, path: &Path, submits: &[u64]) -> FlowResult {
    let mut data_link = Link::new(path.imp.clone(), path.data_seed);
    let mut ack_link = Link::new(path.imp.clone(), path.ack_seed);
    let mut queue: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut in_flight: HashMap<u64, (bool, Bytes)> = HashMap::new();
    let mut next_id = 0u64;
    let mut delivered_at: Vec<Option<u64>> = vec![None; submits.len()];
    let mut res = FlowResult {
        submitted: submits.len() as u64,
        ..FlowResult::default()
    };
    let mut next_submit = 0usize;
    let mut now = 0u64;
    let (mut out_data, mut out_acks, mut handed) = (Vec::new(), Vec::new(), Vec::new());
    let mut steps = 0u64;
    loop {
        steps += 1;
        assert!(steps < 200_000_000, "flow does not progress");
        while let Some(&Reverse((at, id))) = queue.peek() {
            if at > now {
                break;
            }
            queue.pop();
            let (to_receiver, d) = in_flight.remove(&id).expect("queued datagram");
            if to_receiver {
                policy.at_receiver(now, d, &mut handed);
                for idx in handed.drain(..) {
                    assert!(delivered_at[idx].is_none(), "message {idx} handed up twice");
                    delivered_at[idx] = Some(now);
                }
            } else {
                policy.at_sender(now, d);
            }
        }
        while next_submit < submits.len() && submits[next_submit] <= now {
            policy.submit(now, next_submit);
            next_submit += 1;
        }
        policy.on_timeout(now);
        policy.transmit(now, &mut out_data, &mut out_acks);
        for (to_receiver, list) in [(true, &mut out_data), (false, &mut out_acks)] {
            for d in list.drain(..) {
                res.bytes += d.len() as u64;
                let link = if to_receiver {
                    res.data_datagrams += 1;
                    &mut data_link
                } else {
                    res.ack_datagrams += 1;
                    &mut ack_link
                };
                for out in link.transmit(now, d).deliveries {
                    next_id += 1;
                    in_flight.insert(next_id, (to_receiver, out.datagram));
                    queue.push(Reverse((out.at_us, next_id)));
                }
            }
        }
        let next = [
            queue.peek().map(|Reverse((at, _))| *at),
            submits.get(next_submit).copied(),
            policy.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => now = t.max(now + 1),
            None => break,
        }
    }
    for (i, d) in delivered_at.iter().enumerate() {
        match d {
            Some(at) => res.latencies_us.push(at - submits[i]),
            None => res.never_delivered += 1,
        }
    }
    res.gave_up = policy.gave_up();
    res
}

/// Nearest-rank percentile of sorted microsecond samples, in milliseconds.
pub fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}
