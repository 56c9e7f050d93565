//! Redundant first sends on a lossy path.
//!
//! Repair after a loss costs at least one round trip (the peer must report
//! a later message first), and every message behind the lost one waits for
//! it: delivery is in order. On a path that keeps losing, a message is
//! therefore sent in copies from the start, 2 ms apart, and is lost only if
//! every copy is: two copies, or `redundant_copies` (k, 3 by default) once
//! the estimated loss reaches twice the threshold (4 %). Two are not enough
//! there: at 5 % loss on each of two legs, 1 message in 200 loses both
//! copies on one leg, and each such loss holds up the 20 messages behind
//! it at 200 messages/s, so 10 % of messages wait a round trip (the peer
//! bench's p90 at 5 %: 146 ms against a 101 ms p50). Three copies make
//! that 1 in 4,000.
//!
//! The owner's estimate (below) tells when copies may stop. Without it,
//! every [`PAIR_EVERY`]th message goes in two instead of k: those pairs
//! measure the path (both copies lost estimates `p²`, often enough at a
//! few per cent loss to tell a path that still loses from one that
//! healed), while the k-copy messages carry the rest.
//!
//! The sender judges each message's first attempt once the peer reports it:
//! lost when it was found lost and sent again before that report (a
//! tail-loss probe, a timeout with nothing heard and a resend answered
//! within half the minimum RTT do not count: a guess, a stall, a late
//! ACK). Two running averages keep the rates:
//!
//! - `single`: the share of single first sends that were lost, which
//!   estimates the path's loss rate `p` directly;
//! - `double`: the share of first sends in two copies whose copies were
//!   both lost, which estimates `p²` (copies leave in separate datagrams).
//!   Sends in more copies are not judged.
//!
//! Copies start when `single` reaches `redundant_sends_at` and stop when
//! √`double` falls below half of it, after at least [`DWELL`] pairs, or
//! when the owner's estimate does, after [`DWELL`] sends judged in copies,
//! so that the mode does not flap around the threshold. A path that stops
//! losing therefore returns to single sends within a few hundred messages;
//! one that keeps losing stays doubled.
//!
//! A new sender starts **on probation** (`start_in_copies`): copies on,
//! because on a lossy path the losses it takes to turn them on hold up
//! the messages behind each of them, and those are the first messages of
//! a session. Probation ends on the first evidence:
//!
//! - the owner's [`path hint`](Sender::path_loss_hint): the share of the
//!   peer's datagrams that never arrived, which the owner counts from
//!   their packet numbers (over the last few hundred). It reports the
//!   other direction, but a path that loses one way usually loses the
//!   other, and it comes from the first few dozen datagrams. At or above
//!   half of `redundant_sends_at` copies stay on (and turn off as above);
//!   below, they stop. The owner keeps giving it, and it picks two or k
//!   copies;
//! - or a pair whose copies were both lost: copies stay on;
//! - or [`PROBATION_PAIRS`] pairs judged with neither (a peer that sends
//!   almost nothing): they stop.
//!
//! Bulk flows are left alone: copies go only while fewer than half the
//! window is in flight. A full window repairs quickly (many later messages
//! reveal a loss), and doubling it would add load exactly when the path may
//! be congested.

use std::time::Duration;

use super::{Sender, Slot};
use crate::time::Time;

/// Weight of one judged single send in its average (1/64).
const SINGLE_GAIN: f32 = 1.0 / 64.0;
/// Weight of one judged doubled send in its average (1/256: its losses are
/// rarer, p² instead of p).
const DOUBLE_GAIN: f32 = 1.0 / 256.0;
/// Pairs judged before the mode may turn off again.
pub(crate) const DWELL: u16 = 256;
/// While on, one first send in this many goes in two copies (a pair that
/// measures the path) rather than `redundant_copies`.
pub(super) const PAIR_EVERY: u32 = 4;
/// Pairs judged, with no hint from the owner and no pair lost, after which
/// a probation ends with copies off. Not sooner: a receiver that only
/// acknowledges gives its 64th datagram after about as many messages, and
/// when the pairs came first (64 at first) the probation ended off on a
/// path losing 5 %, and the warm-up it is there to spare came anyway.
pub(crate) const PROBATION_PAIRS: u16 = 256;

/// The loss estimate behind redundant first sends.
#[derive(Debug, Default, Clone)]
pub(super) struct Redundancy {
    single: f32,
    double: f32,
    on: bool,
    /// Pairs judged since the mode turned on (saturating).
    dwell: u16,
    /// First sends in copies since the mode turned on (picks the pairs).
    sent_on: u32,
    /// On probation: copies until the path shows whether it loses.
    probation: bool,
    /// The owner's latest estimate of the path from the peer's datagrams
    /// lost (`reliability/gaps.rs`), once it has one.
    reverse: Option<f32>,
    /// Sends judged since the mode turned on, in any number of copies
    /// (saturating): the dwell of the rule that turns copies off on the
    /// owner's estimate.
    judged_on: u16,
}

impl Redundancy {
    /// Copies on, until the first evidence about the path.
    pub(super) fn on_probation() -> Self {
        Redundancy {
            on: true,
            probation: true,
            ..Redundancy::default()
        }
    }

    /// Whether a first send should go in copies now.
    pub(super) fn on(&self) -> bool {
        self.on
    }

    /// Ends a probation on the owner's estimate of the path's loss rate
    /// (`at`: the rate that turns copies on).
    pub(super) fn hint(&mut self, loss: f32, at: f32) {
        self.reverse = Some(loss);
        if !self.probation {
            // With the owner's estimate, copies need no measuring pairs:
            // they stop once it stays below half the threshold.
            if self.on && self.judged_on >= DWELL && loss < at / 2.0 {
                self.turn_off(loss);
            }
            return;
        }
        self.probation = false;
        if loss >= at / 2.0 {
            self.keep_on(loss);
        } else {
            self.turn_off(loss);
        }
    }

    /// Copies on (or kept on) for a path losing about `p`: the pair
    /// average starts as if one pair had just lost both copies. At a few
    /// per cent loss such a pair comes once in hundreds, and starting from
    /// p² alone the average fell below the threshold before the first one
    /// came (the peer bench at 5 % saw copies stop after about 2,000
    /// messages, and the losses that turned them on again held up 80).
    fn keep_on(&mut self, p: f32) {
        self.on = true;
        self.probation = false;
        self.dwell = 0;
        self.judged_on = 0;
        self.sent_on = 0;
        self.single = self.single.max(p);
        self.double = (p * p).max(DOUBLE_GAIN);
    }

    /// Copies off (probation over, if it was on) for a path losing about
    /// `p`, where the single-send average resumes.
    fn turn_off(&mut self, p: f32) {
        self.on = false;
        self.probation = false;
        self.single = p;
    }

    /// The estimated loss rate of the path, from whichever average is fed.
    pub(super) fn loss_rate(&self) -> f32 {
        if self.on {
            self.double.sqrt()
        } else {
            self.single
        }
    }

    /// Judges `slot`'s first attempt, now that the peer reported it at
    /// `now`: lost if it was found lost (a tail-loss probe is a guess, and
    /// a timeout with nothing heard may be a stall), unless the report came
    /// within half the path's minimum RTT of the resend: then it answered
    /// an earlier copy (the ACK was late, not the message lost). Half, not
    /// all of it: a repair goes in copies, and the report of the first
    /// comes a little less than a round trip after the last.
    pub(super) fn judge_slot<T>(&mut self, now: Time, slot: &Slot<T>, min_rtt: Duration, at: f32) {
        let spurious = now.saturating_since(slot.last_sent) < min_rtt / 2;
        self.judge(slot.sent_in, slot.found_lost && !spurious, at);
    }

    /// Copies for the next first send while on, given `k`: every
    /// [`PAIR_EVERY`]th is a pair, the rest go in `k`.
    fn next_copies(&mut self, k: u8, at: f32) -> u8 {
        self.sent_on = self.sent_on.wrapping_add(1);
        // Below twice the threshold two copies are enough (a pair is lost
        // at p² < 0.16 %); above it, `k`.
        let estimate = self
            .reverse
            .unwrap_or_else(|| self.single.max(self.double.sqrt()));
        if k <= 2 || estimate < 2.0 * at {
            return k.min(2);
        }
        // Without the owner's estimate, pairs measure the path.
        if self.reverse.is_none() && self.sent_on.is_multiple_of(PAIR_EVERY) {
            2
        } else {
            k
        }
    }

    /// Judges a message the peer just reported for the first time, whose
    /// first send went in `copies` copies: `lost` if it had to be sent
    /// again before the report. `at` is the loss rate that turns copies on
    /// (0: never).
    pub(super) fn judge(&mut self, copies: u8, lost: bool, at: f32) {
        let x = if lost { 1.0 } else { 0.0 };
        if self.on && copies > 1 {
            self.judged_on = self.judged_on.saturating_add(1);
        }
        if copies > 2 {
            // All k lost is too rare to measure anything quickly.
        } else if copies == 2 && self.probation {
            self.dwell = self.dwell.saturating_add(1);
            if lost {
                self.keep_on(at);
            } else if self.dwell >= PROBATION_PAIRS {
                self.turn_off(self.single);
            }
        } else if copies == 2 {
            self.double += (x - self.double) * DOUBLE_GAIN;
            self.dwell = self.dwell.saturating_add(1);
            if self.on && self.dwell >= DWELL && self.double.sqrt() < at / 2.0 {
                self.turn_off(self.double.sqrt());
            }
        } else {
            self.single += (x - self.single) * SINGLE_GAIN;
            if !self.on && at > 0.0 && self.single >= at {
                self.keep_on(self.single);
            }
        }
    }
}

impl<T: Clone> Sender<T> {
    /// Extra copies for a message about to be sent for the first time.
    pub(super) fn extra_first_copies(&mut self) -> u8 {
        let k = self.cfg.redundant_copies;
        if k > 1 && self.redundancy.on() && self.in_flight() < self.cfg.window / 2 {
            let at = self.cfg.redundant_sends_at;
            self.redundancy.next_copies(k, at) - 1
        } else {
            0
        }
    }

    /// The owner's estimate of the path's loss rate, from the datagrams it
    /// did not receive from the peer (`reliability/gaps.rs`): ends a
    /// probation, picks two or `redundant_copies` copies, and stops copies
    /// once low (see `sender/redundancy.rs`).
    pub fn path_loss_hint(&mut self, loss: f32) {
        let at = self.cfg.redundant_sends_at;
        self.redundancy.hint(loss, at);
    }

    /// Whether new messages go in copies only until the path shows
    /// whether it loses.
    pub fn on_probation(&self) -> bool {
        self.redundancy.probation
    }

    /// The path's loss rate as the sender estimates it, and whether new
    /// messages go out in copies.
    pub fn loss_estimate(&self) -> (f32, bool) {
        (self.redundancy.loss_rate(), self.redundancy.on())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `n` judgements of the current mode with a loss every `every`.
    fn feed(r: &mut Redundancy, n: u32, every: u32) {
        for i in 1..=n {
            let copies = if r.on() { 2 } else { 1 };
            r.judge(copies, every > 0 && i % every == 0, 0.02);
        }
    }

    #[test]
    fn a_clean_path_never_turns_copies_on() {
        let mut r = Redundancy::default();
        feed(&mut r, 10_000, 0);
        assert!(!r.on());
    }

    #[test]
    fn a_rare_loss_does_not_turn_copies_on() {
        let mut r = Redundancy::default();
        // 0.5 %: one loss every 200 messages.
        feed(&mut r, 20_000, 200);
        assert!(!r.on());
    }

    #[test]
    fn five_percent_loss_turns_copies_on_within_a_few_losses() {
        let mut r = Redundancy::default();
        feed(&mut r, 60, 20);
        assert!(r.on(), "rate {}", r.loss_rate());
    }

    #[test]
    fn copies_stay_on_while_doubled_sends_still_lose_sometimes() {
        let mut r = Redundancy::default();
        feed(&mut r, 100, 20);
        assert!(r.on());
        // 5 % loss doubled: both copies lost once in 400.
        for _ in 0..10 {
            feed(&mut r, 400, 400);
        }
        assert!(r.on(), "rate {}", r.loss_rate());
    }

    #[test]
    fn copies_turn_off_once_the_path_heals_but_not_before_the_dwell() {
        let mut r = Redundancy::default();
        feed(&mut r, 100, 20);
        assert!(r.on());
        feed(&mut r, u32::from(DWELL) - 1, 0);
        assert!(r.on(), "held for the dwell");
        feed(&mut r, 2_000, 0);
        assert!(!r.on());
        assert!(r.loss_rate() < 0.01);
    }

    #[test]
    fn zero_threshold_means_never() {
        let mut r = Redundancy::default();
        for _ in 0..1_000 {
            r.judge(1, true, 0.0);
        }
        assert!(!r.on());
    }
}
