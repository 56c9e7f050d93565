//! The sending half of a reliable flow: a retransmission queue indexed by
//! sequence, with adaptive timers, time-based loss detection and a tail-loss
//! probe (`loss.rs`), a bounded window and a circuit breaker.
//!
//! Call order for a driver, on every wake-up:
//! 1. feed input: [`Sender::push`], [`Sender::handle_ack`], [`Sender::handle_timeout`];
//! 2. drain [`Sender::poll_transmit`] until `None`, sending what it returns;
//! 3. drain [`Sender::poll_event`];
//! 4. sleep until [`Sender::poll_timeout`].

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

use super::config::SenderConfig;
use super::rtt::RttEstimator;
use super::stats::SenderStats;
use crate::time::Time;

/// What the sender reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent<T> {
    /// The peer released this message (cumulative ACK).
    Acked {
        /// Its sequence.
        seq: u64,
        /// The item, handed back.
        item: T,
    },
    /// The retry budget of `seq` ran out. The flow stops transmitting (every
    /// message stays queued, nothing is dropped) until [`Sender::revive`] or an
    /// ACK shows the path alive again, or the owner takes the messages out
    /// with [`Sender::drain`] to replay them in a new session.
    Failed {
        /// The message whose budget ran out.
        seq: u64,
        /// Retransmissions it had.
        retransmits: u32,
        /// Time since its first transmission.
        elapsed: Duration,
    },
}

/// The queue is at capacity; the caller must wait for ACKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("send queue full ({capacity} messages)")]
pub struct QueueFull {
    /// The configured capacity.
    pub capacity: usize,
}

#[derive(Debug)]
struct Slot<T> {
    item: T,
    /// Number of times transmitted (Karn: sample RTT only when 1).
    transmissions: u32,
    /// When it was first sent.
    first_sent: Time,
    /// Retransmissions counted against the retry budget (reset by revive).
    retries: u32,
    budget_start: Time,
    last_sent: Time,
    rto: Duration,
    deadline: Time,
    /// Covered by the peer's latest selective ranges.
    sacked: bool,
    /// Ever reported received (selectively or cumulatively): its delivery
    /// already gave its RTT sample and moved the RACK point.
    reported: bool,
    /// Queued for retransmission.
    due: bool,
    /// Extra copies of a repair still to send (`repair_copies`).
    copies: u8,
    /// When the next extra copy goes.
    copy_at: Time,
    /// The queued retransmission is an extra copy: not a new retry.
    is_copy: bool,
    /// Copies the first send went out in (1 unless redundancy was on).
    sent_in: u8,
    /// Resent because it was found lost (by the time rule, by counting
    /// SACKs, or by its RTO while the path answered), not as a probe:
    /// what `sender/redundancy.rs` counts as a loss.
    found_lost: bool,
}

/// Sending half of a reliable flow.
pub struct Sender<T> {
    cfg: SenderConfig,
    rtt: RttEstimator,
    /// Sequence of `queue[0]`.
    base: u64,
    queue: VecDeque<Slot<T>>,
    /// First sequence never transmitted.
    next_unsent: u64,
    retx: VecDeque<u64>,
    consecutive_timeouts: u32,
    breaker_open: bool,
    failed: bool,
    events: VecDeque<SenderEvent<T>>,
    stats: SenderStats,
    rng: SmallRng,
    loss: loss::LossState,
    redundancy: redundancy::Redundancy,
}

mod loss;
mod redundancy;
#[cfg(test)]
pub(super) use redundancy::{DWELL, PROBATION_PAIRS};

impl<T: Clone> Sender<T> {
    /// A sender whose first message will carry `first_seq` (>= 1).
    pub fn new(cfg: SenderConfig, first_seq: u64, seed: u64) -> Self {
        let rtt = RttEstimator::new(
            cfg.initial_rto,
            cfg.min_rto,
            cfg.max_rto,
            cfg.peer_max_ack_delay,
        );
        let redundancy =
            if cfg.start_in_copies && cfg.redundant_copies > 1 && cfg.redundant_sends_at > 0.0 {
                redundancy::Redundancy::on_probation()
            } else {
                redundancy::Redundancy::default()
            };
        Sender {
            cfg,
            rtt,
            base: first_seq.max(1),
            queue: VecDeque::new(),
            next_unsent: first_seq.max(1),
            retx: VecDeque::new(),
            consecutive_timeouts: 0,
            breaker_open: false,
            failed: false,
            events: VecDeque::new(),
            stats: SenderStats::default(),
            rng: SmallRng::seed_from_u64(seed),
            loss: loss::LossState::default(),
            redundancy,
        }
    }

    /// Carries an RTT estimate over from a previous flow on the same path.
    pub fn with_rtt(mut self, rtt: RttEstimator) -> Self {
        self.rtt = rtt;
        self
    }

    /// Sequence the next pushed message gets.
    pub fn next_seq(&self) -> u64 {
        self.base + self.queue.len() as u64
    }

    /// Lowest sequence not yet released.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Messages held (in flight or waiting for the window).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True when [`Sender::push`] would fail.
    pub fn is_full(&self) -> bool {
        self.queue.len() >= self.cfg.capacity
    }

    /// True after the retry budget ran out and before revival.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The RTT estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Counters.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }

    /// The message held under `seq`, if any.
    pub fn get(&self, seq: u64) -> Option<&T> {
        let i = seq.checked_sub(self.base)?;
        self.queue.get(usize::try_from(i).ok()?).map(|s| &s.item)
    }

    /// Queues a message under [`Sender::next_seq`] and returns that sequence.
    pub fn push(&mut self, now: Time, item: T) -> Result<u64, QueueFull> {
        if self.is_full() {
            return Err(QueueFull {
                capacity: self.cfg.capacity,
            });
        }
        let seq = self.next_seq();
        self.queue.push_back(Slot {
            item,
            transmissions: 0,
            first_sent: now,
            retries: 0,
            budget_start: now,
            last_sent: now,
            rto: Duration::ZERO,
            deadline: now,
            sacked: false,
            reported: false,
            due: false,
            copies: 0,
            copy_at: now,
            is_copy: false,
            sent_in: 1,
            found_lost: false,
        });
        self.stats.queued += 1;
        Ok(seq)
    }

    fn in_flight(&self) -> usize {
        (self.next_unsent - self.base) as usize
    }

    fn window(&self) -> usize {
        if self.breaker_open {
            1
        } else {
            self.cfg.window
        }
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        if self.cfg.jitter <= 0.0 {
            return Duration::ZERO;
        }
        d.mul_f64(self.rng.gen_range(0.0..self.cfg.jitter))
    }

    /// What [`Sender::poll_transmit`] would return next, without marking it
    /// sent: lets a caller check that it fits in the datagram first.
    pub fn peek_transmit(&self) -> Option<(u64, &T)> {
        if self.failed {
            return None;
        }
        for &seq in &self.retx {
            let Some(i) = seq.checked_sub(self.base) else {
                continue;
            };
            if let Some(slot) = self.queue.get(i as usize).filter(|s| s.due) {
                return Some((seq, &slot.item));
            }
        }
        if self.in_flight() < self.window() && self.in_flight() < self.queue.len() {
            let seq = self.next_unsent;
            return Some((seq, &self.queue[(seq - self.base) as usize].item));
        }
        None
    }

    /// The next message to put on the wire now, marked as sent at `now`.
    /// Retransmissions come first, then new messages while the window allows.
    pub fn poll_transmit(&mut self, now: Time) -> Option<(u64, T)> {
        if self.failed {
            return None;
        }
        while let Some(seq) = self.retx.pop_front() {
            let Some(i) = seq.checked_sub(self.base).map(|i| i as usize) else {
                continue;
            };
            let Some(slot) = self.queue.get_mut(i) else {
                continue;
            };
            if !slot.due {
                continue;
            }
            slot.due = false;
            if std::mem::take(&mut slot.is_copy) {
                if slot.retries == 0 {
                    // A spare copy of the first send: still one send for
                    // Karn's rule (`loss::Newest::note`).
                    self.stats.first_copies += 1;
                } else {
                    slot.transmissions += 1;
                    self.stats.repair_copies += 1;
                }
            } else {
                slot.transmissions += 1;
                slot.retries += 1;
            }
            if slot.copies > 0 {
                slot.copy_at = now + loss::COPY_GAP;
            }
            slot.last_sent = now;
            let extra = slot.rto;
            let jitter = self.jitter(extra);
            let slot = &mut self.queue[i];
            slot.deadline = now + slot.rto + jitter;
            let item = slot.item.clone();
            self.on_sent(now);
            return Some((seq, item));
        }
        if self.in_flight() < self.window() && self.in_flight() < self.queue.len() {
            let seq = self.next_unsent;
            let rto = self.rtt.rto();
            let copies = self.extra_first_copies();
            let slot = &mut self.queue[(seq - self.base) as usize];
            slot.copies = copies;
            slot.copy_at = now + loss::COPY_GAP;
            slot.sent_in = copies + 1;
            slot.transmissions = 1;
            slot.first_sent = now;
            slot.budget_start = now;
            slot.last_sent = now;
            slot.rto = rto;
            slot.deadline = now + rto;
            let item = slot.item.clone();
            self.next_unsent += 1;
            self.stats.sent += 1;
            self.on_sent(now);
            return Some((seq, item));
        }
        None
    }

    /// Processes an ACK: every sequence `<= cumulative` is released; `ranges`
    /// (inclusive, ascending) were received by the peer but not yet released.
    pub fn handle_ack(
        &mut self,
        now: Time,
        cumulative: u64,
        ranges: &[(u64, u64)],
        delay: Duration,
    ) {
        let top = self.next_unsent.saturating_sub(1);
        let mut cumulative = cumulative;
        if cumulative > top {
            // The peer claims what we never sent: ignore the excess.
            self.stats.invalid_acks += 1;
            cumulative = top;
        }
        self.loss.on_ack(now);
        let mut newest = loss::Newest::new(self.rtt.min_rtt());
        let mut progress = false;
        while self.base <= cumulative {
            let Some(slot) = self.queue.pop_front() else {
                break;
            };
            if !slot.reported {
                let first = (slot.transmissions == 1).then_some(slot.first_sent);
                newest.note(now, self.base, slot.last_sent, first);
                let (min_rtt, at) = (self.rtt.min_rtt(), self.cfg.redundant_sends_at);
                self.redundancy.judge_slot(now, &slot, min_rtt, at);
            }
            self.events.push_back(SenderEvent::Acked {
                seq: self.base,
                item: slot.item,
            });
            self.base += 1;
            self.stats.acked += 1;
            progress = true;
        }
        // Selective ranges are advisory: refresh the flags from this ACK.
        let in_flight = self.in_flight();
        for slot in self.queue.iter_mut().take(in_flight) {
            slot.sacked = false;
        }
        for &(start, end) in ranges {
            let lo = start.max(self.base);
            let hi = end.min(top);
            if lo > hi {
                continue;
            }
            for seq in lo..=hi {
                let slot = &mut self.queue[(seq - self.base) as usize];
                if !slot.reported {
                    let first = (slot.transmissions == 1).then_some(slot.first_sent);
                    newest.note(now, seq, slot.last_sent, first);
                    slot.reported = true;
                    let (min_rtt, at) = (self.rtt.min_rtt(), self.cfg.redundant_sends_at);
                    self.redundancy.judge_slot(now, slot, min_rtt, at);
                }
                slot.sacked = true;
                slot.due = false;
                slot.copies = 0;
            }
        }
        // RTT: from the newest message delivered by this ACK that was sent
        // once (Karn), never from one reported before (its release now says
        // nothing about the path: it waited for a gap to fill).
        if let Some(rtt) = newest.sample {
            self.rtt.on_sample(rtt, delay);
        }
        self.on_delivered(&newest);
        // Any ACK proves the path alive, even one that releases nothing
        // because an earlier message is still missing: the breaker is for
        // dead paths, not for random loss.
        self.consecutive_timeouts = 0;
        self.breaker_open = false;
        self.detect_lost(now);
        if progress && self.failed {
            self.failed = false;
            self.reset_budgets(now);
        }
    }

    fn reset_budgets(&mut self, now: Time) {
        for slot in &mut self.queue {
            slot.retries = 0;
            slot.budget_start = now;
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.failed {
            return;
        }
        self.loss_timers(now);
        let heard = self.loss.heard();
        let (fresh_rto, max_rto) = (self.rtt.rto(), self.rtt.max_rto());
        let repair_extra = self.cfg.repair_copies.saturating_sub(1);
        let mut expired = false;
        // Received-but-unreleased messages need a probe only when nothing
        // else in flight will make the peer acknowledge again.
        let mut probed = self.queue.iter().take(self.in_flight()).any(|s| !s.sacked);
        for i in 0..self.in_flight() {
            let (deadline, sacked, due) = {
                let s = &self.queue[i];
                (s.deadline, s.sacked, s.due)
            };
            if deadline > now || due {
                continue;
            }
            let rto = self.queue[i].rto;
            if (sacked && probed) || (self.breaker_open && i > 0) {
                // Held back by the breaker, or received but unreleased while
                // another such message already probes: re-arm.
                self.queue[i].deadline = now + rto;
                continue;
            }
            // Every message in flight was received, yet none released past its
            // timer: the releasing ACK was lost. Resend one as a probe so the
            // peer acknowledges again; it is not a sign of a dead path.
            probed |= sacked;
            let slot = &mut self.queue[i];
            let elapsed = now.saturating_since(slot.budget_start);
            if slot.retries >= self.cfg.max_retransmits || elapsed >= self.cfg.give_up_after {
                self.failed = true;
                self.stats.failures += 1;
                self.events.push_back(SenderEvent::Failed {
                    seq: self.base + i as u64,
                    retransmits: slot.retries,
                    elapsed,
                });
                self.retx.clear();
                for s in &mut self.queue {
                    s.due = false;
                }
                return;
            }
            // Back off only a path that went quiet: when the peer answered
            // anything since this message was last sent, the path is alive
            // and the loss was random, so the next try keeps the plain RTO.
            let alive = heard.is_some_and(|h| h > slot.last_sent);
            slot.rto = if self.cfg.backoff_needs_silence && alive {
                fresh_rto
            } else {
                slot.rto.mul_f64(self.cfg.backoff).min(max_rto)
            };
            // A repair on a path that answers goes out in extra copies; a
            // quiet path gets one.
            slot.copies = if alive { repair_extra } else { 0 };
            // A timeout with nothing heard may be a stall (a slow commit
            // holds the server's ACKs), not a loss.
            slot.found_lost |= alive && !sacked;
            slot.due = true;
            self.retx.push_back(self.base + i as u64);
            self.stats.timeout_retransmits += 1;
            // The breaker counts timeouts of the oldest message only: many
            // messages expiring together are one event, not several.
            expired |= i == 0 && !sacked;
        }
        if expired {
            self.consecutive_timeouts += 1;
            if self.consecutive_timeouts >= self.cfg.breaker_after && !self.breaker_open {
                self.breaker_open = true;
                self.stats.breaker_opened += 1;
                // Only the oldest message keeps probing the path.
                let base = self.base;
                self.retx.retain(|s| *s == base);
                for s in self.queue.iter_mut().skip(1) {
                    s.due = false;
                    s.copies = 0;
                    s.deadline = now + s.rto;
                }
            }
        }
    }

    /// The earliest time [`Sender::handle_timeout`] must be called, if any.
    /// Returns `now`-or-earlier times when a transmission is already possible.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.failed {
            return None;
        }
        self.queue
            .iter()
            .take(self.in_flight())
            .filter(|s| !s.due)
            .map(|s| s.deadline)
            .chain(self.loss.next_timer())
            .chain(self.probe_deadline())
            .chain(self.next_copy())
            .min()
    }

    /// True when [`Sender::poll_transmit`] would return something now.
    pub fn has_transmit(&self) -> bool {
        !self.failed
            && (!self.retx.is_empty()
                || (self.in_flight() < self.window() && self.in_flight() < self.queue.len()))
    }

    /// Next event for the owner.
    pub fn poll_event(&mut self) -> Option<SenderEvent<T>> {
        self.events.pop_front()
    }

    /// The path is known to be alive again (a heartbeat answered, a new
    /// login): clear the failure, reset every budget and resend everything
    /// unreleased at once.
    pub fn revive(&mut self, now: Time) {
        self.failed = false;
        self.breaker_open = false;
        self.consecutive_timeouts = 0;
        self.reset_budgets(now);
        self.retx.clear();
        let in_flight = self.in_flight();
        for (i, slot) in self.queue.iter_mut().enumerate().take(in_flight) {
            slot.due = true;
            self.retx.push_back(self.base + i as u64);
        }
    }

    /// Takes every unreleased message out, oldest first, for replay elsewhere.
    pub fn drain(&mut self) -> Vec<(u64, T)> {
        let base = self.base;
        self.retx.clear();
        self.loss = loss::LossState::default();
        self.next_unsent = base;
        self.queue
            .drain(..)
            .enumerate()
            .map(|(i, s)| (base + i as u64, s.item))
            .collect()
    }
}
