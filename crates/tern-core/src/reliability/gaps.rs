//! The share of a peer's datagrams that never arrived, from their packet
//! numbers: each side numbers its datagrams in order, so a jump past the
//! next number is that many datagrams lost, unless they turn up later
//! (reordered). It measures the peer-to-us direction from the first few
//! dozen datagrams of a session, long before our own messages have been
//! lost often enough to tell (a loss is judged only once the peer reports a
//! later message). The senders use it as a first estimate of their own
//! direction ([`Sender::path_loss_hint`](super::Sender::path_loss_hint)).

/// Datagrams (received or missing) before the estimate is given.
pub const GAP_SAMPLES: u32 = 64;
/// Past this many datagrams both counts are halved, so the estimate
/// follows the last few hundred.
const GAP_WINDOW: u32 = 512;

/// Counts the gaps in a peer's packet numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundGaps {
    highest: u64,
    received: u32,
    missing: u32,
}

impl InboundGaps {
    /// A datagram numbered `pn` arrived (already authenticated). A number
    /// at or below the highest fills a gap (reordered), or is a duplicate.
    pub fn on_packet(&mut self, pn: u64) {
        if self.highest == 0 {
            self.highest = pn;
            self.received = 1;
            return;
        }
        if pn > self.highest {
            let skipped = (pn - self.highest - 1).min(u64::from(GAP_SAMPLES));
            self.missing = self.missing.saturating_add(skipped as u32);
            self.received = self.received.saturating_add(1);
            self.highest = pn;
        } else if pn < self.highest && self.missing > 0 {
            self.missing -= 1;
            self.received = self.received.saturating_add(1);
        }
        if self.received.saturating_add(self.missing) >= GAP_WINDOW {
            self.received /= 2;
            self.missing /= 2;
        }
    }

    /// The share lost, once [`GAP_SAMPLES`] datagrams were counted.
    pub fn loss(&self) -> Option<f32> {
        let total = self.received.saturating_add(self.missing);
        (total >= GAP_SAMPLES).then(|| self.missing as f32 / total as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(pns: impl IntoIterator<Item = u64>) -> InboundGaps {
        let mut g = InboundGaps::default();
        for pn in pns {
            g.on_packet(pn);
        }
        g
    }

    #[test]
    fn nothing_is_estimated_from_a_few_datagrams() {
        assert_eq!(feed(1..20).loss(), None);
    }

    #[test]
    fn every_number_arriving_is_no_loss() {
        assert_eq!(feed(5..100).loss(), Some(0.0));
    }

    #[test]
    fn one_number_in_ten_missing_is_ten_per_cent() {
        let g = feed((1..=200).filter(|pn| pn % 10 != 0));
        let loss = g.loss().unwrap();
        assert!((loss - 0.1).abs() < 0.01, "{loss}");
    }

    #[test]
    fn a_reordered_datagram_is_not_a_loss() {
        let mut pns: Vec<u64> = (1..=100).collect();
        pns.swap(10, 11);
        pns.swap(50, 53);
        assert_eq!(feed(pns).loss(), Some(0.0));
    }

    #[test]
    fn duplicates_count_nothing() {
        let g = feed((1..=80).flat_map(|pn| [pn, pn]));
        assert_eq!(g.loss(), Some(0.0));
    }

    #[test]
    fn the_estimate_follows_the_recent_datagrams() {
        let lossy = (1..=1000u64).filter(|pn| pn % 5 != 0);
        let clean = 1001..=4000u64;
        let g = feed(lossy.chain(clean));
        assert!(g.loss().is_some_and(|l| l < 0.01), "{:?}", g.loss());
    }

    #[test]
    fn a_wild_jump_counts_as_a_bounded_loss() {
        let g = feed([1, 2, u64::MAX / 2]);
        assert!(g.loss().is_some_and(|l| l < 1.0));
    }
}
