//! What a [`Link`](super::Link) counts, and why it drops a datagram.

use std::fmt;

/// What a [`Link`](super::Link) has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams offered to the link.
    pub sent: u64,
    /// Dropped by independent random loss.
    pub dropped_random: u64,
    /// Dropped by the Gilbert–Elliott burst model.
    pub dropped_burst: u64,
    /// Dropped inside a blackout window.
    pub dropped_blackout: u64,
    /// Dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Datagrams held back so later ones overtake them.
    pub reordered: u64,
    /// Delivered copies whose bytes were damaged.
    pub corrupted: u64,
}

impl Counters {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_random + self.dropped_burst + self.dropped_blackout + self.dropped_queue
    }

    /// Copies that come out of the link (originals that survived plus duplicates).
    pub fn delivered(&self) -> u64 {
        self.sent - self.dropped() + self.duplicated
    }
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.sent += o.sent;
        self.dropped_random += o.dropped_random;
        self.dropped_burst += o.dropped_burst;
        self.dropped_blackout += o.dropped_blackout;
        self.dropped_queue += o.dropped_queue;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.corrupted += o.corrupted;
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent={} dropped={} (random={} burst={} blackout={} queue={}) duplicated={} reordered={} corrupted={}",
            self.sent,
            self.dropped(),
            self.dropped_random,
            self.dropped_burst,
            self.dropped_blackout,
            self.dropped_queue,
            self.duplicated,
            self.reordered,
            self.corrupted
        )
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Independent random loss.
    Random,
    /// Gilbert–Elliott burst loss.
    Burst,
    /// Inside a blackout window.
    Blackout,
    /// Bottleneck queue full.
    Queue,
}

impl DropReason {
    /// Lower-case name, for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Random => "random",
            DropReason::Burst => "burst",
            DropReason::Blackout => "blackout",
            DropReason::Queue => "queue",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
