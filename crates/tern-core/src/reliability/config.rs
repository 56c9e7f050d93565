//! Tunables of the reliability machines, with the defaults documented in
//! `proto-spec/timers.md`.

use std::time::Duration;

/// Sender-side timers and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct SenderConfig {
    /// RTO before any RTT sample.
    pub initial_rto: Duration,
    /// Floor of the RTO.
    pub min_rto: Duration,
    /// Ceiling of the RTO, backoff included.
    pub max_rto: Duration,
    /// How long the peer may hold an ACK back (added to the RTO).
    pub peer_max_ack_delay: Duration,
    /// Multiplier applied to a message's RTO on each timeout.
    pub backoff: f64,
    /// Apply `backoff` only when no ACK of any kind arrived since the
    /// message was last sent (the path went quiet); after random loss on a
    /// path that still answers, the next try waits the plain RTO.
    pub backoff_needs_silence: bool,
    /// Uniform random extra delay on backed-off retries, as a fraction of the interval.
    pub jitter: f64,
    /// Retransmissions of one message before the flow is declared failed.
    pub max_retransmits: u32,
    /// Time since a message's first transmission after which the flow fails.
    pub give_up_after: Duration,
    /// Messages transmitted and not yet acknowledged, at most.
    pub window: usize,
    /// Messages queued (in flight or waiting for the window), at most.
    pub capacity: usize,
    /// Consecutive timeouts of the oldest message, with no ACK of any kind in
    /// between, that open the circuit breaker.
    pub breaker_after: u32,
    /// Higher sequences acknowledged that trigger a fast retransmit of a gap
    /// (used only when `time_threshold` is 0).
    pub fast_retransmit_after: u32,
    /// Time-based loss detection (RACK, RFC 8985): a message not received
    /// while one sent after it was is lost once this multiple of
    /// max(SRTT, the latest delivery's RTT) has passed since it was sent.
    /// 0 turns it off (then `fast_retransmit_after` counts SACKs instead).
    pub time_threshold: f64,
    /// Tail-loss probe: when the newest message in flight is unanswered for
    /// 2 × SRTT (+ the peer's ACK delay if it is alone) and that comes
    /// before its RTO, resend it once, without backoff, so that the peer's
    /// answer shows what else is missing.
    pub tail_probe: bool,
    /// Copies of a repair sent when the path answers (a loss found by the
    /// time rule, or a timeout with an ACK heard since the last send), 2 ms
    /// apart so that they leave in separate datagrams: a repair is then lost
    /// only if every copy is. 2 (the default) halves the p99 of the timer
    /// benchmark at 10 % loss and keeps Tern's own p99 at 10 % loss and
    /// 100 ms RTT under 400 ms on the peer bench; a quiet path (a timeout
    /// with nothing heard) still gets one copy. 1: one copy.
    pub repair_copies: u8,
    /// Loss rate of the path at which new messages, too, go out in
    /// `redundant_copies` copies (2 ms apart) while less than half the
    /// window is in flight; they stop once the rate of sends whose copies
    /// were all lost shows the path below half of it
    /// (`sender/redundancy.rs`). 0 turns it off.
    pub redundant_sends_at: f32,
    /// Copies of each new message while redundant sends are on and the
    /// estimated loss is at least twice `redundant_sends_at` (below, two):
    /// a message is then held up by a loss only if every copy is lost
    /// (p^k). Without the owner's estimate of the path, one message in
    /// four still goes in two, to measure it. 3 by default: with two, at 5 %
    /// loss on two legs and 200 messages/s, the pairs lost on either leg
    /// held up 10 % of messages for a round trip, which set the p99
    /// (`sender/redundancy.rs`, `docs/benchmarks.md`).
    pub redundant_copies: u8,
    /// A new sender starts with redundant sends on, on probation, until
    /// the path shows whether it loses (`sender/redundancy.rs`): on a lossy
    /// path the first messages of a session are otherwise held up by the
    /// losses it takes to notice (at 5 % loss and 100 ms RTT, 70 of the
    /// first 100 messages on the peer bench). On a clean one it costs the
    /// first few dozen messages a second copy.
    pub start_in_copies: bool,
}

impl SenderConfig {
    /// The timers before issue 14 (SACK counting, no RACK, no tail probe,
    /// backoff on every timeout):
    /// kept as a baseline for the timer benchmark.
    pub fn before_rack() -> Self {
        SenderConfig {
            time_threshold: 0.0,
            tail_probe: false,
            backoff_needs_silence: false,
            repair_copies: 1,
            redundant_sends_at: 0.0,
            redundant_copies: 1,
            start_in_copies: false,
            ..SenderConfig::default()
        }
    }
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            initial_rto: Duration::from_millis(500),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_secs(8),
            peer_max_ack_delay: Duration::from_millis(10),
            backoff: 1.5,
            backoff_needs_silence: true,
            jitter: 0.1,
            max_retransmits: 10,
            give_up_after: Duration::from_secs(60),
            window: 256,
            capacity: 4096,
            breaker_after: 3,
            fast_retransmit_after: 2,
            time_threshold: 1.125,
            tail_probe: true,
            repair_copies: 2,
            redundant_sends_at: 0.02,
            redundant_copies: 3,
            start_in_copies: true,
        }
    }
}

/// Receiver-side limits and ACK timing.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// Sequences past the cumulative point that may be buffered.
    pub reorder_window: u64,
    /// Longest an ACK is held back.
    pub max_ack_delay: Duration,
    /// Unacknowledged messages that force an ACK.
    pub ack_every: u32,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            reorder_window: 1024,
            max_ack_delay: Duration::from_millis(10),
            ack_every: 8,
        }
    }
}
