//! The receiving half of a reliable flow: de-duplication and reordering.
//!
//! Seed 002's `lastId` plus out-of-order buffer, with its holes closed: the
//! buffer is bounded by a window past the cumulative point (hostile sequence
//! numbers cannot grow it), every message is handed up exactly once and in
//! order, and the whole state is one number that can be saved and restored.

use std::collections::BTreeMap;

use super::config::ReceiverConfig;
use super::limits_ranges;
use super::stats::ReceiverStats;

/// What happened to a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Next in order: it can be handed up.
    InOrder,
    /// Next in order, and it filled a gap: buffered successors follow it.
    /// Worth an immediate ACK, so the sender stops repairing.
    FilledGap,
    /// Ahead of a gap: buffered until the gap fills.
    Buffered,
    /// Already received (handed up or buffered): re-ACK, do not process.
    Duplicate,
    /// Too far ahead of the cumulative point: dropped, not acknowledged.
    OutOfWindow,
}

/// Receiving half of a reliable flow.
pub struct Receiver<T> {
    cfg: ReceiverConfig,
    /// Every sequence `<= delivered` was handed up.
    delivered: u64,
    /// Handed-up messages waiting in order for the owner.
    ready: std::collections::VecDeque<(u64, T)>,
    buffer: BTreeMap<u64, T>,
    stats: ReceiverStats,
}

impl<T> Receiver<T> {
    /// A receiver that has handed up every sequence `<= delivered`
    /// (0 for a new flow; a saved value to restore one).
    pub fn new(cfg: ReceiverConfig, delivered: u64) -> Self {
        Receiver {
            cfg,
            delivered,
            ready: Default::default(),
            buffer: BTreeMap::new(),
            stats: ReceiverStats::default(),
        }
    }

    /// The state to persist: every sequence up to it was handed up.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Counters.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// Nothing buffered and nothing waiting to be taken.
    pub fn is_idle(&self) -> bool {
        self.buffer.is_empty() && self.ready.is_empty()
    }

    /// Messages buffered ahead of a gap.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Accepts a message.
    pub fn on_receive(&mut self, seq: u64, item: T) -> Arrival {
        if seq <= self.delivered || self.buffer.contains_key(&seq) {
            self.stats.duplicates += 1;
            return Arrival::Duplicate;
        }
        if seq - self.delivered > self.cfg.reorder_window {
            self.stats.out_of_window += 1;
            return Arrival::OutOfWindow;
        }
        if seq != self.delivered + 1 {
            self.stats.reordered += 1;
            self.buffer.insert(seq, item);
            return Arrival::Buffered;
        }
        self.hand_up(seq, item);
        let mut filled = false;
        while let Some(entry) = self.buffer.first_entry() {
            if *entry.key() != self.delivered + 1 {
                break;
            }
            let (seq, item) = entry.remove_entry();
            self.hand_up(seq, item);
            filled = true;
        }
        if filled {
            Arrival::FilledGap
        } else {
            Arrival::InOrder
        }
    }

    fn hand_up(&mut self, seq: u64, item: T) {
        self.delivered = seq;
        self.stats.delivered += 1;
        self.ready.push_back((seq, item));
    }

    /// Next message in order, exactly once.
    pub fn poll_deliver(&mut self) -> Option<(u64, T)> {
        self.ready.pop_front()
    }

    /// Buffered sequences as inclusive ranges, lowest first, at most the
    /// protocol's range limit (the lowest matter most for recovery).
    pub fn buffered_ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for &seq in self.buffer.keys() {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == seq => *end = seq,
                _ => {
                    if out.len() == limits_ranges() {
                        break;
                    }
                    out.push((seq, seq));
                }
            }
        }
        out
    }

    /// Forgets buffered messages (their senders will retransmit) and restarts
    /// from a saved point, e.g. after the owner lost un-persisted state.
    pub fn reset(&mut self, delivered: u64) {
        self.buffer.clear();
        self.ready.clear();
        self.delivered = delivered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx() -> Receiver<u64> {
        Receiver::new(ReceiverConfig::default(), 0)
    }

    fn drain(r: &mut Receiver<u64>) -> Vec<u64> {
        std::iter::from_fn(|| r.poll_deliver().map(|(s, _)| s)).collect()
    }

    #[test]
    fn in_order_is_handed_up_at_once() {
        let mut r = rx();
        assert_eq!(r.on_receive(1, 1), Arrival::InOrder);
        assert_eq!(r.on_receive(2, 2), Arrival::InOrder);
        assert_eq!(drain(&mut r), vec![1, 2]);
    }

    #[test]
    fn gap_is_buffered_then_released_in_order() {
        let mut r = rx();
        assert_eq!(r.on_receive(3, 3), Arrival::Buffered);
        assert_eq!(r.on_receive(2, 2), Arrival::Buffered);
        assert!(drain(&mut r).is_empty());
        assert_eq!(r.buffered_ranges(), vec![(2, 3)]);
        assert_eq!(r.on_receive(1, 1), Arrival::FilledGap);
        assert_eq!(drain(&mut r), vec![1, 2, 3]);
        assert_eq!(r.delivered(), 3);
    }

    #[test]
    fn duplicates_are_reported_not_handed_up() {
        let mut r = rx();
        r.on_receive(1, 1);
        r.on_receive(3, 3);
        assert_eq!(r.on_receive(1, 1), Arrival::Duplicate);
        assert_eq!(r.on_receive(3, 3), Arrival::Duplicate);
        assert_eq!(drain(&mut r), vec![1]);
        assert_eq!(r.stats().duplicates, 2);
    }

    #[test]
    fn hostile_sequences_do_not_grow_memory() {
        let mut r = rx();
        for seq in [u64::MAX, 1 << 62, 1_000_000, 1026] {
            assert_eq!(r.on_receive(seq, 0), Arrival::OutOfWindow);
        }
        assert_eq!(r.buffered(), 0);
        for seq in 2..=1025 {
            r.on_receive(seq, 0);
        }
        // 1 is missing, so 2..=1024 fit in the window and 1025 does not.
        assert_eq!(r.buffered(), 1023);
    }

    #[test]
    fn restore_continues_after_saved_point() {
        let mut r: Receiver<u64> = Receiver::new(ReceiverConfig::default(), 41);
        assert_eq!(r.on_receive(41, 0), Arrival::Duplicate);
        assert_eq!(r.on_receive(42, 0), Arrival::InOrder);
    }

    #[test]
    fn range_list_is_capped() {
        let mut r = rx();
        for seq in (3..200).step_by(2) {
            r.on_receive(seq, 0);
        }
        let ranges = r.buffered_ranges();
        assert_eq!(ranges.len(), 32);
        assert_eq!(ranges[0], (3, 3));
    }
}
