//! Loss detection beyond each message's own RTO:
//!
//! - **time-based (RACK, RFC 8985, with QUIC's threshold):** once the peer
//!   reports a message received, every message sent before it that is still
//!   missing is lost as soon as `time_threshold` × max(SRTT, that delivery's
//!   RTT) has passed since it was sent; until then a loss timer waits for it.
//!   Order is by send time (then sequence), so a retransmission is judged
//!   against what was sent after it, not after its first copy.
//! - **tail-loss probe (RFC 8985 §7):** the newest message in flight has no
//!   successor whose delivery could reveal its loss. When nothing is
//!   answered for 2 × SRTT (plus the peer's ACK delay when one message is
//!   alone in flight) and that comes before the RTO, it is resent once,
//!   without backoff and without counting as a timeout; the answer to the
//!   probe lets the time-based rule find whatever else is missing.
//!
//! With `time_threshold` 0, the older rule applies: a message is resent
//! when `fast_retransmit_after` later sequences are SACKed and it was last
//! sent at least one SRTT ago.

use std::time::Duration;

use super::Sender;
use crate::time::Time;

/// Time between the copies of one repair: enough for them to leave in
/// separate datagrams, so that one loss does not take both.
pub(super) const COPY_GAP: Duration = Duration::from_millis(2);

/// What a sender keeps for loss detection.
#[derive(Debug, Default, Clone)]
pub(super) struct LossState {
    /// (send time, sequence) of the most recently sent message the peer
    /// reported received.
    rack: Option<(Time, u64)>,
    /// The RTT of that delivery.
    rack_rtt: Duration,
    /// When the next message passes the time threshold.
    loss_time: Option<Time>,
    /// A tail-loss probe went out and nothing new was reported since.
    probe_out: bool,
    /// The last transmission of any message.
    last_send: Option<Time>,
    /// The last ACK of any kind.
    heard: Option<Time>,
}

impl LossState {
    /// An ACK arrived at `now`.
    pub(super) fn on_ack(&mut self, now: Time) {
        self.heard = Some(now);
    }

    /// When the last ACK of any kind arrived.
    pub(super) fn heard(&self) -> Option<Time> {
        self.heard
    }

    /// The loss timer, if armed (the probe's time is computed by the sender).
    pub(super) fn next_timer(&self) -> Option<Time> {
        self.loss_time
    }
}

/// The newest deliveries one ACK reports, gathered while it is processed.
#[derive(Debug)]
pub(super) struct Newest {
    min_rtt: Duration,
    /// The RTT sample: the newest delivery of a message sent once.
    pub(super) sample: Option<Duration>,
    sample_key: Option<(Time, u64)>,
    /// The newest delivery that is unambiguous: sent once, or retransmitted
    /// at least a minimum RTT ago (a quicker answer is for an older copy).
    rack: Option<(Time, u64)>,
    rack_rtt: Duration,
    /// Anything reported received for the first time.
    any: bool,
}

impl Newest {
    /// Nothing gathered yet; `min_rtt` is the lowest RTT seen on the path.
    pub(super) fn new(min_rtt: Duration) -> Self {
        Newest {
            min_rtt,
            sample: None,
            sample_key: None,
            rack: None,
            rack_rtt: Duration::ZERO,
            any: false,
        }
    }

    /// `seq`, last sent at `sent`, was reported received for the first time
    /// at `now`. `first` is when it was first sent if it was never sent
    /// again (Karn), the spare copies of a first send aside: they leave
    /// within [`COPY_GAP`], so whichever arrived, the sample is off by at
    /// most that.
    pub(super) fn note(&mut self, now: Time, seq: u64, sent: Time, first: Option<Time>) {
        self.any = true;
        let key = (sent, seq);
        let rtt = now.saturating_since(first.unwrap_or(sent));
        if first.is_some() && self.sample_key.is_none_or(|k| key > k) {
            self.sample_key = Some(key);
            self.sample = Some(rtt);
        }
        let unambiguous = first.is_some() || rtt >= self.min_rtt;
        if unambiguous && self.rack.is_none_or(|k| key > k) {
            self.rack = Some(key);
            self.rack_rtt = rtt;
        }
    }
}

impl<T: Clone> Sender<T> {
    /// A message went on the wire at `now`.
    pub(super) fn on_sent(&mut self, now: Time) {
        self.loss.last_send = Some(now);
    }

    /// Moves the RACK point forward with what one ACK reported.
    pub(super) fn on_delivered(&mut self, newest: &Newest) {
        if newest.any {
            self.loss.probe_out = false;
        }
        if let Some(key) = newest.rack {
            if self.loss.rack.is_none_or(|k| key > k) {
                self.loss.rack = Some(key);
                self.loss.rack_rtt = newest.rack_rtt;
            }
        }
    }

    /// Marks for retransmission every message the rules declare lost at
    /// `now`, and arms the loss timer for the next one that may be.
    pub(super) fn detect_lost(&mut self, now: Time) {
        self.loss.loss_time = None;
        if self.breaker_open {
            return;
        }
        if self.cfg.time_threshold <= 0.0 {
            self.count_sacks(now);
            return;
        }
        let Some(rack) = self.loss.rack else {
            return;
        };
        let rtt = self.rtt.srtt_or_initial().max(self.loss.rack_rtt);
        let threshold = rtt.mul_f64(self.cfg.time_threshold);
        let mut next: Option<Time> = None;
        for i in 0..self.in_flight() {
            let seq = self.base + i as u64;
            let slot = &mut self.queue[i];
            if slot.sacked || slot.due || (slot.last_sent, seq) >= rack {
                continue;
            }
            let lost_at = slot.last_sent + threshold;
            if lost_at <= now {
                slot.due = true;
                slot.found_lost = true;
                slot.copies = self.cfg.repair_copies.saturating_sub(1);
                self.retx.push_back(seq);
                self.stats.fast_retransmits += 1;
            } else {
                next = Some(next.map_or(lost_at, |t| t.min(lost_at)));
            }
        }
        self.loss.loss_time = next;
    }

    /// The rule used when time-based detection is off: enough later
    /// sequences SACKed, and last sent at least one SRTT ago.
    fn count_sacks(&mut self, now: Time) {
        let srtt = self.rtt.srtt_or_initial();
        let mut above = 0u32;
        for i in (0..self.in_flight()).rev() {
            let slot = &mut self.queue[i];
            if slot.sacked {
                above += 1;
            } else if above >= self.cfg.fast_retransmit_after
                && !slot.due
                && now.saturating_since(slot.last_sent) >= srtt
            {
                slot.due = true;
                slot.found_lost = true;
                self.retx.push_back(self.base + i as u64);
                self.stats.fast_retransmits += 1;
            }
        }
    }

    /// When the tail-loss probe is due, if one is: only with an RTT sample,
    /// no loss timer armed, no probe unanswered, and before the earliest
    /// RTO of a message still missing.
    pub(super) fn probe_deadline(&self) -> Option<Time> {
        if !self.cfg.tail_probe
            || self.loss.probe_out
            || self.loss.loss_time.is_some()
            || self.breaker_open
            || self.failed
        {
            return None;
        }
        let srtt = self.rtt.srtt()?;
        let last_send = self.loss.last_send?;
        let mut missing = 0usize;
        let mut first_rto: Option<Time> = None;
        for slot in self.queue.iter().take(self.in_flight()) {
            if slot.sacked || slot.due {
                continue;
            }
            missing += 1;
            first_rto = Some(first_rto.map_or(slot.deadline, |t| t.min(slot.deadline)));
        }
        let first_rto = first_rto?;
        let mut pto = srtt * 2;
        if missing == 1 {
            pto += self.cfg.peer_max_ack_delay;
        }
        let at = last_send + pto;
        (at < first_rto).then_some(at)
    }

    /// When the next extra copy of a repair is due, if any.
    pub(super) fn next_copy(&self) -> Option<Time> {
        self.queue
            .iter()
            .take(self.in_flight())
            .filter(|s| s.copies > 0 && !s.sacked && !s.due)
            .map(|s| s.copy_at)
            .min()
    }

    /// Fires the loss timer, the tail-loss probe and the extra copies of
    /// repairs due at `now`.
    pub(super) fn loss_timers(&mut self, now: Time) {
        for i in 0..self.in_flight() {
            let slot = &mut self.queue[i];
            if slot.copies > 0 && !slot.sacked && !slot.due && slot.copy_at <= now {
                slot.copies -= 1;
                slot.due = true;
                slot.is_copy = true;
                self.retx.push_back(self.base + i as u64);
            }
        }
        if self.loss.loss_time.is_some_and(|t| t <= now) {
            self.detect_lost(now);
        }
        if self.probe_deadline().is_some_and(|t| t <= now) {
            let newest = (0..self.in_flight())
                .rev()
                .find(|&i| !self.queue[i].sacked && !self.queue[i].due);
            if let Some(i) = newest {
                self.queue[i].due = true;
                self.retx.push_back(self.base + i as u64);
                self.stats.tail_probes += 1;
                self.loss.probe_out = true;
            }
        }
    }
}
