//! Token buckets, and a bounded set of them keyed by source, for the rate
//! limits of every transport: the broker's per-session and pre-login
//! limits and reply budgets, and the daemon's limit on QUIC handshakes per
//! source address. Time comes in as an argument, as everywhere in the core.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::time::Time;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Time,
}

impl Bucket {
    /// A bucket holding `burst` tokens at `now`.
    pub fn full(burst: f64, now: Time) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token if there is one, after refilling at `rate` per
    /// second up to `burst`.
    pub fn take(&mut self, now: Time, rate: f64, burst: f64) -> bool {
        let dt = now.saturating_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One bucket per source, at most `max_sources` of them: when full, the
/// buckets that have refilled are forgotten (they lose nothing), and a new
/// source is refused while none has.
#[derive(Debug)]
pub struct SourceLimits<K> {
    sources: HashMap<K, Bucket>,
    max_sources: usize,
    rate: f64,
    burst: f64,
}

impl<K: Hash + Eq + Copy> SourceLimits<K> {
    /// `rate` per second and `burst` for each source.
    pub fn new(rate: f64, burst: f64, max_sources: usize) -> Self {
        SourceLimits {
            sources: HashMap::new(),
            max_sources,
            rate,
            burst,
        }
    }

    /// Sources with a bucket (at most `max_sources`).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// May `source` do one more thing at `now`?
    pub fn allow(&mut self, now: Time, source: K) -> bool {
        if !self.sources.contains_key(&source) && self.sources.len() >= self.max_sources {
            let idle = Duration::from_secs_f64(self.burst / self.rate.max(1e-9));
            self.sources
                .retain(|_, b| now.saturating_since(b.at) < idle);
            if self.sources.len() >= self.max_sources {
                return false;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        self.sources
            .entry(source)
            .or_insert_with(|| Bucket::full(burst, now))
            .take(now, rate, burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let mut l = SourceLimits::new(10.0, 3.0, 100);
        let t = Time::from_secs(1);
        assert_eq!((0..5).filter(|_| l.allow(t, 1u8)).count(), 3);
        assert!(l.allow(t, 2u8), "another source has its own bucket");
        assert!(!l.allow(t + Duration::from_millis(50), 1u8));
        assert!(l.allow(t + Duration::from_millis(100), 1u8));
    }

    #[test]
    fn a_full_table_forgets_refilled_sources_and_refuses_while_none_has() {
        let mut l = SourceLimits::new(10.0, 2.0, 2);
        let t = Time::from_secs(1);
        assert!(l.allow(t, 1u8) && l.allow(t, 2u8));
        assert!(!l.allow(t, 3u8), "full, nobody refilled yet");
        assert!(l.allow(t + Duration::from_secs(1), 3u8));
        assert!(l.tracked() <= 2);
    }
}
