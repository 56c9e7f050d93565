//! Reliability machines: pure state, time passed in.
//!
//! - [`Sender`]: retransmission queue with adaptive RTO, backoff with jitter,
//!   time-based loss detection (RACK) and a tail-loss probe, redundant
//!   sends on a lossy path, bounded window and circuit breaker.
//! - [`Receiver`]: de-duplication and reordering window.
//! - [`AckCoalescer`]: delayed and piggybacked ACKs.
//! - [`RttEstimator`]: SRTT/RTTVAR per RFC 6298.
//! - [`InboundGaps`]: the peer's datagrams lost, from their packet numbers.

mod ack;
mod config;
mod gaps;
mod receiver;
mod rtt;
mod sender;
mod stats;

pub use ack::AckCoalescer;
pub use config::{ReceiverConfig, SenderConfig};
pub use gaps::{InboundGaps, GAP_SAMPLES};
pub use receiver::{Arrival, Receiver};
pub use rtt::RttEstimator;
pub use sender::{QueueFull, Sender, SenderEvent};
pub use stats::{ReceiverStats, SenderStats};

fn limits_ranges() -> usize {
    crate::wire::limits::MAX_ACK_RANGES
}

#[cfg(test)]
mod loss_tests;
#[cfg(test)]
mod redundancy_tests;
#[cfg(test)]
mod sender_tests;
