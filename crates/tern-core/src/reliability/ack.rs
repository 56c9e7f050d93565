//! ACK coalescing: when a receiver owes its peer an ACK, and when to send it.
//!
//! A receiver does not ACK every message. It holds the ACK until
//! `ack_every` messages are owed or `max_ack_delay` has passed since the
//! first of them, whichever is first, and sends at once when the flow shows
//! trouble (a message out of order, a duplicate, a gap filled). An ACK also
//! rides on any packet that is sent anyway (piggybacking).

use std::time::Duration;

use super::config::ReceiverConfig;
use crate::time::Time;

/// Tracks whether an ACK is owed and how urgently.
#[derive(Debug, Clone)]
pub struct AckCoalescer {
    max_delay: Duration,
    every: u32,
    owed: u32,
    since: Option<Time>,
    immediate: bool,
}

impl AckCoalescer {
    /// A coalescer with the receiver's timing.
    pub fn new(cfg: &ReceiverConfig) -> Self {
        AckCoalescer {
            max_delay: cfg.max_ack_delay,
            every: cfg.ack_every.max(1),
            owed: 0,
            since: None,
            immediate: false,
        }
    }

    /// Something that must be acknowledged happened. `urgent` asks for an ACK
    /// without delay (reordering, duplicate, gap filled, durable release).
    pub fn on_ack_eliciting(&mut self, now: Time, urgent: bool) {
        self.owed = self.owed.saturating_add(1);
        self.since.get_or_insert(now);
        self.immediate |= urgent || self.owed >= self.every;
    }

    /// A copy of something already received arrived. The peer resends it
    /// because it has not seen an ACK: when none is owed (the last one went
    /// and was lost), one goes at once; when one is owed it covers the copy
    /// on its usual schedule, so a message sent in copies on purpose
    /// (`redundant_sends_at`) costs no extra ACK.
    pub fn on_duplicate(&mut self, now: Time) {
        let urgent = self.since.is_none();
        self.on_ack_eliciting(now, urgent);
    }

    /// True when an ACK should be sent now.
    pub fn should_send(&self, now: Time) -> bool {
        match self.since {
            None => false,
            Some(since) => self.immediate || now.saturating_since(since) >= self.max_delay,
        }
    }

    /// True when an ACK is owed at all (for piggybacking on other packets).
    pub fn is_owed(&self) -> bool {
        self.since.is_some()
    }

    /// How long the oldest owed ACK has been held.
    pub fn delay(&self, now: Time) -> Duration {
        self.since
            .map_or(Duration::ZERO, |s| now.saturating_since(s))
    }

    /// When the held ACK must go out, if one is owed.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.since.map(|s| {
            if self.immediate {
                s
            } else {
                s + self.max_delay
            }
        })
    }

    /// An ACK was sent (alone or piggybacked).
    pub fn on_ack_sent(&mut self) {
        self.owed = 0;
        self.since = None;
        self.immediate = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_until_count_or_delay() {
        let mut a = AckCoalescer::new(&ReceiverConfig::default());
        let t0 = Time::from_millis(1);
        for _ in 0..7 {
            a.on_ack_eliciting(t0, false);
        }
        assert!(!a.should_send(t0));
        assert!(a.should_send(t0 + Duration::from_millis(10)));
        a.on_ack_eliciting(t0, false);
        assert!(a.should_send(t0));
        a.on_ack_sent();
        assert!(!a.is_owed());
    }

    #[test]
    fn a_duplicate_is_answered_at_once_only_when_no_ack_is_owed() {
        let mut a = AckCoalescer::new(&ReceiverConfig::default());
        let t0 = Time::from_millis(1);
        a.on_ack_eliciting(t0, false);
        a.on_duplicate(t0 + Duration::from_millis(2));
        assert!(!a.should_send(t0 + Duration::from_millis(2)), "held");
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_millis(10)));
        a.on_ack_sent();
        a.on_duplicate(t0 + Duration::from_millis(20));
        assert!(
            a.should_send(t0 + Duration::from_millis(20)),
            "our ACK was lost"
        );
    }

    #[test]
    fn urgent_goes_at_once() {
        let mut a = AckCoalescer::new(&ReceiverConfig::default());
        a.on_ack_eliciting(Time::ZERO, true);
        assert!(a.should_send(Time::ZERO));
        assert_eq!(a.poll_timeout(), Some(Time::ZERO));
    }
}
