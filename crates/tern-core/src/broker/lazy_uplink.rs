//! A session's uplink receive state (the reorder buffer of its operations
//! and the coalescer of the ACKs it is owed), allocated when an operation
//! arrives and given back once nothing is buffered or owed. An idle
//! session (a phone in a pocket, sending heartbeats) keeps only the
//! sequence its uplink resumes from: the two parts are about 180 bytes,
//! more than a tenth of an idle session (`tern-bench million`).

use std::time::Duration;

use crate::reliability::{AckCoalescer, Arrival, Receiver, ReceiverConfig};
use crate::time::Time;
use crate::wire::Frame;

/// The parts made on first use.
pub(crate) struct Uplink {
    rx: Receiver<Frame>,
    acks: AckCoalescer,
}

/// The uplink state, or where it resumes.
pub(crate) enum LazyUplink {
    /// Nothing buffered or owed: every sequence up to `delivered` was
    /// handed to the broker.
    Idle { delivered: u64 },
    /// Receiving.
    Live(Box<Uplink>),
}

impl LazyUplink {
    pub fn new(delivered: u64) -> LazyUplink {
        LazyUplink::Idle { delivered }
    }

    fn live(&mut self, cfg: &ReceiverConfig) -> &mut Uplink {
        if let LazyUplink::Idle { delivered } = *self {
            *self = LazyUplink::Live(Box::new(Uplink {
                rx: Receiver::new(cfg.clone(), delivered),
                acks: AckCoalescer::new(cfg),
            }));
        }
        match self {
            LazyUplink::Live(u) => u,
            LazyUplink::Idle { .. } => unreachable!("made live above"),
        }
    }

    /// Accepts an operation (see [`Receiver::on_receive`]).
    pub fn on_receive(&mut self, cfg: &ReceiverConfig, seq: u64, frame: Frame) -> Arrival {
        self.live(cfg).rx.on_receive(seq, frame)
    }

    /// Next operation in order.
    pub fn poll_deliver(&mut self) -> Option<(u64, Frame)> {
        match self {
            LazyUplink::Live(u) => u.rx.poll_deliver(),
            LazyUplink::Idle { .. } => None,
        }
    }

    /// Operations buffered past a gap.
    pub fn buffered(&self) -> usize {
        match self {
            LazyUplink::Live(u) => u.rx.buffered(),
            LazyUplink::Idle { .. } => 0,
        }
    }

    /// The buffered operations as ranges (for the ACK).
    pub fn buffered_ranges(&self) -> Vec<(u64, u64)> {
        match self {
            LazyUplink::Live(u) => u.rx.buffered_ranges(),
            LazyUplink::Idle { .. } => Vec::new(),
        }
    }

    /// Forgets what is buffered and resumes after `delivered`.
    pub fn reset(&mut self, delivered: u64) {
        match self {
            LazyUplink::Live(u) => u.rx.reset(delivered),
            LazyUplink::Idle { delivered: d } => *d = delivered,
        }
    }

    /// Something must be acknowledged (see [`AckCoalescer::on_ack_eliciting`]).
    pub fn on_ack_eliciting(&mut self, cfg: &ReceiverConfig, now: Time, urgent: bool) {
        self.live(cfg).acks.on_ack_eliciting(now, urgent);
    }

    /// A copy of an operation already received (see
    /// [`AckCoalescer::on_duplicate`]).
    pub fn on_duplicate(&mut self, cfg: &ReceiverConfig, now: Time) {
        self.live(cfg).acks.on_duplicate(now);
    }

    /// Whether an ACK should go out now.
    pub fn should_send(&self, now: Time) -> bool {
        matches!(self, LazyUplink::Live(u) if u.acks.should_send(now))
    }

    /// When the held ACK is due.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self {
            LazyUplink::Live(u) => u.acks.poll_timeout(),
            LazyUplink::Idle { .. } => None,
        }
    }

    /// How long the owed ACK has been held.
    pub fn delay(&self, now: Time) -> Duration {
        match self {
            LazyUplink::Live(u) => u.acks.delay(now),
            LazyUplink::Idle { .. } => Duration::ZERO,
        }
    }

    /// An ACK went out: with nothing buffered, waiting or owed any more,
    /// the parts are given back.
    pub fn on_ack_sent(&mut self) {
        if let LazyUplink::Live(u) = self {
            u.acks.on_ack_sent();
            if u.rx.is_idle() {
                *self = LazyUplink::Idle {
                    delivered: u.rx.delivered(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame::Heartbeat(1)
    }

    #[test]
    fn an_idle_uplink_holds_no_parts_and_resumes_where_it_was() {
        let cfg = ReceiverConfig::default();
        let mut up = LazyUplink::new(7);
        assert!(matches!(up, LazyUplink::Idle { delivered: 7 }));
        assert_eq!(up.on_receive(&cfg, 8, frame()), Arrival::InOrder);
        assert_eq!(up.poll_deliver().map(|(s, _)| s), Some(8));
        up.on_ack_eliciting(&cfg, Time::ZERO, false);
        assert!(up.poll_timeout().is_some());
        up.on_ack_sent();
        assert!(matches!(up, LazyUplink::Idle { delivered: 8 }));
        // A late copy of 8 is still a duplicate.
        assert_eq!(up.on_receive(&cfg, 8, frame()), Arrival::Duplicate);
    }

    #[test]
    fn a_gap_keeps_the_parts_until_it_is_filled() {
        let cfg = ReceiverConfig::default();
        let mut up = LazyUplink::new(0);
        assert_eq!(up.on_receive(&cfg, 2, frame()), Arrival::Buffered);
        up.on_ack_eliciting(&cfg, Time::ZERO, true);
        up.on_ack_sent();
        assert_eq!(up.buffered_ranges(), vec![(2, 2)], "still buffered");
        assert_eq!(up.on_receive(&cfg, 1, frame()), Arrival::FilledGap);
        assert_eq!(up.poll_deliver().map(|(s, _)| s), Some(1));
        assert_eq!(up.poll_deliver().map(|(s, _)| s), Some(2));
        up.on_ack_sent();
        assert!(matches!(up, LazyUplink::Idle { delivered: 2 }));
    }
}
