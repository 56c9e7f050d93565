//! The group-commit latency histogram: how long each batch took from being
//! handed to the committer until it was durable (what bounds every ACK's
//! latency). Fixed buckets, lock-free, shared by the broker loop (which
//! records) and the server API (`/metrics`, the status page).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds.
pub const BOUNDS_US: [u64; 10] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

/// Counts per bucket (the last one is "above every bound").
#[derive(Default)]
pub struct CommitLatency {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// A copy of the counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Per bucket, not cumulative (`BOUNDS_US`, then the overflow bucket).
    pub counts: Vec<u64>,
    /// Sum of all samples, µs.
    pub sum_us: u64,
}

impl CommitLatency {
    /// Records one commit.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = BOUNDS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

impl LatencySnapshot {
    /// Samples in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative (le seconds, count) pairs for Prometheus.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        BOUNDS_US
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c;
                (*b as f64 / 1e6, acc)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_their_bucket() {
        let h = CommitLatency::default();
        h.record(Duration::from_micros(100));
        h.record(Duration::from_micros(250));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(2));
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2);
        assert_eq!(s.counts[4], 1);
        assert_eq!(s.counts[BOUNDS_US.len()], 1);
        assert_eq!(s.count(), 4);
        assert_eq!(s.cumulative()[4], (0.005, 3));
    }
}
