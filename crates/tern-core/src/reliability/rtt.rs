//! Round-trip time estimation (RFC 6298) with QUIC's ACK-delay correction.

use std::time::Duration;

/// Smoothed RTT and its variation, and the retransmission timeout they give.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Duration,
    latest: Duration,
    initial_rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    peer_max_ack_delay: Duration,
}

/// Timer granularity: the smallest variance term the RTO may use.
const GRANULARITY: Duration = Duration::from_millis(10);

impl RttEstimator {
    /// A new estimator with no samples yet.
    pub fn new(
        initial_rto: Duration,
        min_rto: Duration,
        max_rto: Duration,
        peer_max_ack_delay: Duration,
    ) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            min_rtt: Duration::MAX,
            latest: Duration::ZERO,
            initial_rto,
            min_rto,
            max_rto,
            peer_max_ack_delay,
        }
    }

    /// Feeds one sample: the time from sending a message (sent once only, per
    /// Karn's rule) to receiving its ACK, and the delay the peer reported.
    pub fn on_sample(&mut self, rtt: Duration, ack_delay: Duration) {
        self.latest = rtt;
        self.min_rtt = self.min_rtt.min(rtt);
        // Subtract the peer's hold time, but never below the lowest RTT seen.
        let ack_delay = ack_delay.min(self.peer_max_ack_delay.max(GRANULARITY) * 4);
        let adjusted = if rtt >= self.min_rtt + ack_delay {
            rtt - ack_delay
        } else {
            rtt
        };
        match self.srtt {
            None => {
                self.srtt = Some(adjusted);
                self.rttvar = adjusted / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(adjusted);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + adjusted) / 8);
            }
        }
    }

    /// Smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Smoothed RTT, or the initial RTO's worth before any sample.
    pub fn srtt_or_initial(&self) -> Duration {
        self.srtt.unwrap_or(self.initial_rto)
    }

    /// Lowest raw sample seen (`Duration::MAX` before any).
    pub fn min_rtt(&self) -> Duration {
        self.min_rtt
    }

    /// Latest raw sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The retransmission timeout for a first transmission.
    pub fn rto(&self) -> Duration {
        match self.srtt {
            None => self.initial_rto,
            Some(srtt) => (srtt + (self.rttvar * 4).max(GRANULARITY) + self.peer_max_ack_delay)
                .clamp(self.min_rto, self.max_rto),
        }
    }

    /// Largest RTO allowed.
    pub fn max_rto(&self) -> Duration {
        self.max_rto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_millis(500),
            Duration::from_millis(100),
            Duration::from_secs(8),
            Duration::from_millis(10),
        )
    }

    #[test]
    fn initial_rto_before_samples() {
        assert_eq!(est().rto(), Duration::from_millis(500));
    }

    #[test]
    fn converges_on_steady_rtt() {
        let mut e = est();
        for _ in 0..50 {
            e.on_sample(Duration::from_millis(100), Duration::ZERO);
        }
        let srtt = e.srtt().unwrap();
        assert_eq!(srtt, Duration::from_millis(100));
        // rttvar decays towards 0, so the granularity floor applies.
        assert!(e.rto() >= Duration::from_millis(120) && e.rto() <= Duration::from_millis(125));
    }

    #[test]
    fn first_sample_sets_variance_to_half() {
        let mut e = est();
        e.on_sample(Duration::from_millis(200), Duration::ZERO);
        assert_eq!(e.rttvar(), Duration::from_millis(100));
        assert_eq!(e.rto(), Duration::from_millis(200 + 400 + 10));
    }

    #[test]
    fn ack_delay_is_subtracted_only_above_min_rtt() {
        let mut e = est();
        e.on_sample(Duration::from_millis(100), Duration::ZERO);
        e.on_sample(Duration::from_millis(110), Duration::from_millis(10));
        assert_eq!(e.srtt().unwrap(), Duration::from_millis(100));
    }

    #[test]
    fn rto_is_clamped() {
        let mut e = est();
        e.on_sample(Duration::from_millis(1), Duration::ZERO);
        for _ in 0..50 {
            e.on_sample(Duration::from_millis(1), Duration::ZERO);
        }
        assert_eq!(e.rto(), Duration::from_millis(100));
        e.on_sample(Duration::from_secs(60), Duration::ZERO);
        assert_eq!(e.rto(), Duration::from_secs(8));
    }
}
