//! A `Sender<u64>` and a `Receiver<u64>` joined by an in-memory channel that
//! the fuzzer drives: it loses, duplicates, reorders and delays messages and
//! ACKs, advances virtual time, and injects hostile ACKs and sequence numbers.
//!
//! Invariants, checked after every operation:
//! - the receiver hands up every sequence at most once, in order, with no gap
//!   (first, first+1, ...), each carrying the item that was pushed under it;
//! - the receiver never buffers more than its reorder window;
//! - the sender never holds more than its capacity, numbers pushes densely,
//!   releases (`Acked`) in order, each exactly once, with the right item, and
//!   `peek_transmit` always names what `poll_transmit` then returns;
//! - honest ACKs (built from `delivered()` and `buffered_ranges()`) are valid
//!   ACK frames and survive the wire codec, and never release more than the
//!   receiver has handed up;
//! - nothing panics, whatever the hostile inputs.
//!
//! At the end the channel turns reliable: every message is delivered and
//! ACKed until the sender is empty. Unless a hostile ACK released a message
//! the receiver never got (the sender must then trust its peer), this must
//! finish within a bounded number of rounds with every pushed message handed
//! up and the sender empty.
#![no_main]

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tern_core::reliability::{
    AckCoalescer, Arrival, Receiver, ReceiverConfig, Sender, SenderConfig, SenderEvent,
};
use tern_core::time::Time;
use tern_core::wire::{self, Frame, Reader};

#[derive(Arbitrary, Debug)]
struct Cfg {
    window: u8,
    capacity: u8,
    reorder_window: u8,
    fast_retransmit_after: u8,
    max_retransmits: u8,
    breaker_after: u8,
    jitter: bool,
    backoff_tenths: u8,
    give_up_s: u8,
    ack_every: u8,
    max_ack_delay_ms: u8,
    first_seq: u32,
    seed: u64,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Queue 1..=4 messages.
    Push(u8),
    /// One `poll_transmit` into the channel.
    Transmit,
    /// `poll_transmit` until it returns nothing.
    TransmitAll,
    /// Move virtual time forward.
    AdvanceTime(u16),
    /// Jump to the sender's next timer and fire it.
    AdvanceToTimeout,
    /// Fire the sender's timers at the current time.
    HandleTimeout,
    DeliverNext,
    DropNext,
    DuplicateNext,
    SwapFirstTwo,
    /// Move the first message in the channel to its back.
    DelayNext,
    /// Honest ACK from the receiver's state, straight to the sender.
    AckNow { delay_ms: u8 },
    /// Honest ACK if the coalescer says one is due.
    AckIfDue,
    /// Honest ACK put into the (lossy, reordering) ACK channel.
    SnapshotAck,
    DeliverAck,
    DropAck,
    SwapAcks,
    /// A hostile ACK with absolute values.
    InjectBogusAck {
        cumulative: u64,
        ranges: Vec<(u64, u64)>,
        delay_us: u64,
    },
    /// A hostile ACK near the sender's window (more likely to do damage).
    InjectNearAck {
        cumulative: u8,
        ranges: Vec<(u8, u8)>,
    },
    /// A forged message with an arbitrary sequence number.
    InjectHostileSeq(u64),
    /// A forged message just past the receiver's cumulative point.
    InjectNearSeq(u16),
    /// The path is known alive: clear failure and resend.
    Revive,
}

#[derive(Arbitrary, Debug)]
struct Input {
    cfg: Cfg,
    ops: Vec<Op>,
}

/// The item pushed under `seq`: the receiver checks it arrives with it.
fn tag(seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5
}

struct Ack {
    cumulative: u64,
    ranges: Vec<(u64, u64)>,
    delay: Duration,
}

struct World {
    now: Time,
    tx: Sender<u64>,
    rx: Receiver<u64>,
    coalescer: AckCoalescer,
    reorder_window: u64,
    capacity: usize,
    first_seq: u64,
    /// Messages on the wire, front first.
    chan: VecDeque<(u64, u64)>,
    /// ACKs on the wire, front first.
    acks: VecDeque<Ack>,
    /// Last sequence the receiver handed up (first_seq - 1 at start).
    last_up: u64,
    /// Last sequence the sender released.
    last_acked: u64,
    /// Messages pushed.
    pushed: u64,
    /// A hostile ACK released something the receiver did not have.
    hostile_release: bool,
}

impl World {
    fn new(c: &Cfg) -> World {
        let window = 1 + usize::from(c.window % 32);
        let capacity = 1 + usize::from(c.capacity % 64);
        let reorder_window = 1 + u64::from(c.reorder_window % 64);
        let scfg = SenderConfig {
            window,
            capacity,
            fast_retransmit_after: 1 + u32::from(c.fast_retransmit_after % 4),
            max_retransmits: u32::from(c.max_retransmits % 12),
            breaker_after: 1 + u32::from(c.breaker_after % 6),
            jitter: if c.jitter { 0.1 } else { 0.0 },
            backoff: 1.0 + f64::from(c.backoff_tenths % 11) / 10.0,
            give_up_after: Duration::from_secs(1 + u64::from(c.give_up_s % 120)),
            ..SenderConfig::default()
        };
        let rcfg = ReceiverConfig {
            reorder_window,
            max_ack_delay: Duration::from_millis(u64::from(c.max_ack_delay_ms % 50)),
            ack_every: u32::from(c.ack_every % 10),
        };
        let first_seq = 1 + u64::from(c.first_seq);
        World {
            now: Time::ZERO,
            tx: Sender::new(scfg, first_seq, c.seed),
            coalescer: AckCoalescer::new(&rcfg),
            rx: Receiver::new(rcfg, first_seq - 1),
            reorder_window,
            capacity,
            first_seq,
            chan: VecDeque::new(),
            acks: VecDeque::new(),
            last_up: first_seq - 1,
            last_acked: first_seq - 1,
            pushed: 0,
            hostile_release: false,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn transmit_one(&mut self) -> bool {
        let peeked = self.tx.peek_transmit().map(|(seq, item)| (seq, *item));
        let polled = self.tx.poll_transmit(self.now);
        assert_eq!(peeked, polled, "peek_transmit disagrees with poll_transmit");
        match polled {
            Some((seq, item)) => {
                assert!(seq >= self.tx.base() && seq < self.tx.next_seq(), "sent {seq} outside the queue");
                assert_eq!(item, tag(seq), "sender put the wrong item under {seq}");
                self.chan.push_back((seq, item));
                true
            }
            None => false,
        }
    }

    fn receive(&mut self, seq: u64, item: u64) {
        let before = self.rx.delivered();
        let arrival = self.rx.on_receive(seq, item);
        match arrival {
            Arrival::InOrder | Arrival::FilledGap => assert_eq!(seq, before + 1),
            Arrival::Buffered => assert!(seq > before + 1 && seq - before <= self.reorder_window),
            Arrival::Duplicate => assert_eq!(self.rx.delivered(), before),
            Arrival::OutOfWindow => {
                assert!(seq > before && seq - before > self.reorder_window);
                assert_eq!(self.rx.delivered(), before);
            }
        }
        if arrival != Arrival::OutOfWindow {
            self.coalescer
                .on_ack_eliciting(self.now, arrival != Arrival::InOrder);
        }
    }

    /// The ACK an honest receiver sends now, checked through the wire codec.
    fn honest_ack(&self, delay: Duration) -> Ack {
        let cumulative = self.rx.delivered();
        let ranges = self.rx.buffered_ranges();
        let frame = Frame::Ack(wire::Ack {
            receiver_online: false,
            cumulative,
            delay_us: delay.as_micros() as u64,
            ranges: ranges.clone(),
        });
        if let Err(e) = frame.validate() {
            panic!("receiver built an invalid ACK ({e}): {frame:?}");
        }
        let enc = wire::encode_to_bytes(&frame);
        let back = Frame::decode(&mut Reader::new(enc)).expect("honest ACK must decode");
        assert_eq!(back, frame);
        Ack {
            cumulative,
            ranges,
            delay,
        }
    }

    fn apply_ack(&mut self, ack: &Ack) {
        self.tx
            .handle_ack(self.now, ack.cumulative, &ack.ranges, ack.delay);
    }

    fn send_honest_ack(&mut self, delay: Duration) {
        let ack = self.honest_ack(delay);
        self.apply_ack(&ack);
        self.coalescer.on_ack_sent();
        // An honest ACK never releases what the receiver has not handed up.
        if !self.hostile_release {
            assert!(
                self.tx.base() - 1 <= self.rx.delivered(),
                "sender released up to {} but receiver has only {}",
                self.tx.base() - 1,
                self.rx.delivered()
            );
        }
    }

    fn hostile_ack(&mut self, cumulative: u64, ranges: &[(u64, u64)], delay: Duration) {
        let base_before = self.tx.base();
        self.tx.handle_ack(self.now, cumulative, ranges, delay);
        let released_to = self.tx.base() - 1;
        if self.tx.base() != base_before && released_to > self.rx.delivered() {
            self.hostile_release = true;
        }
    }

    /// Drains outputs and checks the invariants.
    fn check(&mut self) {
        while let Some((seq, item)) = self.rx.poll_deliver() {
            assert_eq!(seq, self.last_up + 1, "receiver handed up {seq} after {}", self.last_up);
            assert_eq!(item, tag(seq), "receiver handed up the wrong item for {seq}");
            self.last_up = seq;
        }
        assert_eq!(self.last_up, self.rx.delivered());
        assert!(
            self.rx.buffered() as u64 <= self.reorder_window,
            "receiver buffers {} > window {}",
            self.rx.buffered(),
            self.reorder_window
        );
        let ranges = self.rx.buffered_ranges();
        assert!(ranges.len() <= wire::limits::MAX_ACK_RANGES);

        assert!(self.tx.len() <= self.capacity, "sender holds {} > {}", self.tx.len(), self.capacity);
        assert_eq!(self.tx.is_full(), self.tx.len() >= self.capacity);
        assert_eq!(self.tx.next_seq(), self.first_seq + self.pushed);
        assert_eq!(self.tx.next_seq(), self.tx.base() + self.tx.len() as u64);
        while let Some(ev) = self.tx.poll_event() {
            match ev {
                SenderEvent::Acked { seq, item } => {
                    assert_eq!(seq, self.last_acked + 1, "sender released {seq} after {}", self.last_acked);
                    assert_eq!(item, tag(seq));
                    self.last_acked = seq;
                }
                SenderEvent::Failed { seq, .. } => {
                    assert!(seq >= self.tx.base() && seq < self.tx.next_seq());
                    assert!(self.tx.is_failed());
                }
            }
        }
        assert_eq!(self.last_acked, self.tx.base() - 1);
        if self.tx.is_failed() {
            assert!(!self.tx.has_transmit());
            assert_eq!(self.tx.poll_timeout(), None);
        }
        if self.coalescer.is_owed() {
            let due = self.coalescer.poll_timeout().expect("owed ACK without a deadline");
            assert!(self.coalescer.should_send(due.max(self.now)));
        } else {
            assert!(!self.coalescer.should_send(self.now));
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Push(n) => {
                for _ in 0..=(n % 4) {
                    let expect = self.tx.next_seq();
                    let full = self.tx.is_full();
                    match self.tx.push(self.now, tag(expect)) {
                        Ok(seq) => {
                            assert!(!full);
                            assert_eq!(seq, expect);
                            self.pushed += 1;
                        }
                        Err(e) => {
                            assert!(full);
                            assert_eq!(e.capacity, self.capacity);
                        }
                    }
                }
            }
            Op::Transmit => {
                self.transmit_one();
            }
            Op::TransmitAll => {
                let mut n = 0;
                while self.transmit_one() {
                    n += 1;
                    assert!(n <= 2 * self.capacity, "poll_transmit does not stop");
                }
                assert!(!self.tx.has_transmit());
            }
            Op::AdvanceTime(ms) => self.advance(Duration::from_millis((*ms).into())),
            Op::AdvanceToTimeout => {
                if let Some(t) = self.tx.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.tx.handle_timeout(self.now);
            }
            Op::HandleTimeout => self.tx.handle_timeout(self.now),
            Op::DeliverNext => {
                if let Some((seq, item)) = self.chan.pop_front() {
                    self.receive(seq, item);
                }
            }
            Op::DropNext => {
                self.chan.pop_front();
            }
            Op::DuplicateNext => {
                if let Some(&m) = self.chan.front() {
                    if self.chan.len() < 4096 {
                        self.chan.push_front(m);
                    }
                }
            }
            Op::SwapFirstTwo => {
                if self.chan.len() >= 2 {
                    self.chan.swap(0, 1);
                }
            }
            Op::DelayNext => {
                if let Some(m) = self.chan.pop_front() {
                    self.chan.push_back(m);
                }
            }
            Op::AckNow { delay_ms } => {
                self.send_honest_ack(Duration::from_millis((*delay_ms).into()))
            }
            Op::AckIfDue => {
                if self.coalescer.should_send(self.now) {
                    let delay = self.coalescer.delay(self.now);
                    self.send_honest_ack(delay);
                }
            }
            Op::SnapshotAck => {
                let ack = self.honest_ack(self.coalescer.delay(self.now));
                self.coalescer.on_ack_sent();
                if self.acks.len() < 256 {
                    self.acks.push_back(ack);
                }
            }
            Op::DeliverAck => {
                if let Some(ack) = self.acks.pop_front() {
                    // Honest but possibly stale: still never releases more
                    // than the receiver has (it only ever grows).
                    self.apply_ack(&ack);
                    if !self.hostile_release {
                        assert!(self.tx.base() - 1 <= self.rx.delivered());
                    }
                }
            }
            Op::DropAck => {
                self.acks.pop_front();
            }
            Op::SwapAcks => {
                if self.acks.len() >= 2 {
                    self.acks.swap(0, 1);
                }
            }
            Op::InjectBogusAck {
                cumulative,
                ranges,
                delay_us,
            } => {
                let ranges: Vec<_> = ranges.iter().copied().take(64).collect();
                self.hostile_ack(*cumulative, &ranges, Duration::from_micros(*delay_us));
            }
            Op::InjectNearAck { cumulative, ranges } => {
                let base = self.tx.base();
                let cumulative = (base - 1).saturating_add(u64::from(*cumulative % 80));
                let ranges: Vec<_> = ranges
                    .iter()
                    .take(64)
                    .map(|&(s, l)| {
                        let start = base.saturating_add(u64::from(s % 80));
                        (start, start.saturating_add(u64::from(l % 8)))
                    })
                    .collect();
                self.hostile_ack(cumulative, &ranges, Duration::ZERO);
            }
            Op::InjectHostileSeq(seq) => {
                // Forged, but carrying the item that belongs to the sequence:
                // what matters here is the number (memory, window, ordering).
                self.receive(*seq, tag(*seq));
            }
            Op::InjectNearSeq(d) => {
                let seq = self.rx.delivered().saturating_add(1 + u64::from(*d % 256));
                self.receive(seq, tag(seq));
            }
            Op::Revive => self.tx.revive(self.now),
        }
    }

    /// The channel becomes reliable: deliver and ACK until the sender is empty.
    fn settle(&mut self) {
        const MAX_ROUNDS: usize = 2000;
        for round in 0..MAX_ROUNDS {
            if self.tx.is_empty() && self.chan.is_empty() {
                break;
            }
            // After a hostile release the flow may never finish (by design):
            // run a few rounds for the no-panic checks only.
            if self.hostile_release && round >= 50 {
                break;
            }
            if self.tx.is_failed() {
                self.tx.revive(self.now);
            }
            let mut n = 0;
            while self.transmit_one() {
                n += 1;
                assert!(n <= 2 * self.capacity, "poll_transmit does not stop");
            }
            while let Some((seq, item)) = self.chan.pop_front() {
                self.receive(seq, item);
            }
            self.check();
            self.send_honest_ack(Duration::ZERO);
            self.check();
            let next = self
                .tx
                .poll_timeout()
                .unwrap_or(self.now)
                .max(self.now + Duration::from_millis(1));
            self.now = next;
            self.tx.handle_timeout(self.now);
            self.check();
        }
        if self.hostile_release {
            return;
        }
        assert!(
            self.tx.is_empty(),
            "sender still holds {} messages (base {}) after {MAX_ROUNDS} reliable rounds; receiver at {}",
            self.tx.len(),
            self.tx.base(),
            self.rx.delivered()
        );
        assert!(
            self.rx.delivered() >= self.first_seq + self.pushed - 1,
            "receiver at {} but {} messages were pushed from {}",
            self.rx.delivered(),
            self.pushed,
            self.first_seq
        );
    }
}

/// `TERN_FUZZ_STATS=1`: print one line of counters per input, to see which
/// states a corpus reaches (`reliability_ops -runs=0 fuzz/corpus/reliability_ops`).
fn print_stats() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("TERN_FUZZ_STATS").is_some_and(|v| v != "0"))
}

fuzz_target!(|input: Input| {
    let mut w = World::new(&input.cfg);
    for op in input.ops.iter().take(2000) {
        w.step(op);
        w.check();
    }
    let before_settle = w.tx.stats().clone();
    w.settle();
    w.check();
    if print_stats() {
        let s = w.tx.stats();
        let r = w.rx.stats();
        eprintln!(
            "STATS ops={} pushed={} hostile_release={} timeouts={} fast={} failures={} breaker={} invalid_acks={} (before settle: timeouts={} fast={} failures={} breaker={}) rx_dup={} rx_reordered={} rx_out_of_window={}",
            input.ops.len(),
            w.pushed,
            w.hostile_release,
            s.timeout_retransmits,
            s.fast_retransmits,
            s.failures,
            s.breaker_opened,
            s.invalid_acks,
            before_settle.timeout_retransmits,
            before_settle.fast_retransmits,
            before_settle.failures,
            before_settle.breaker_opened,
            r.duplicates,
            r.reordered,
            r.out_of_window,
        );
    }
});
