//! Plain counters kept by the reliability machines. Exported by the daemon.

/// Sender counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Messages queued.
    pub queued: u64,
    /// First transmissions.
    pub sent: u64,
    /// Retransmissions after a timeout.
    pub timeout_retransmits: u64,
    /// Retransmissions of messages declared lost by an ACK: time-based
    /// (a message sent after it was received, and the time threshold
    /// passed), or by counting SACKs when time-based detection is off.
    pub fast_retransmits: u64,
    /// Tail-loss probes sent.
    pub tail_probes: u64,
    /// Extra copies of repairs sent (`repair_copies`), not counted above.
    pub repair_copies: u64,
    /// Extra copies of first sends on a lossy path (`redundant_sends_at`),
    /// not counted above.
    pub first_copies: u64,
    /// Messages released by a cumulative ACK.
    pub acked: u64,
    /// ACKs that claimed sequences never sent (ignored).
    pub invalid_acks: u64,
    /// Times the retry budget ran out.
    pub failures: u64,
    /// Times the circuit breaker opened.
    pub breaker_opened: u64,
}

/// Receiver counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Messages handed up in order.
    pub delivered: u64,
    /// Copies of messages already received.
    pub duplicates: u64,
    /// Messages that arrived ahead of a gap and were buffered.
    pub reordered: u64,
    /// Messages beyond the reorder window, dropped unacknowledged.
    pub out_of_window: u64,
}
