//! A pushing session's downlink sender, allocated when its first entry is
//! pushed. Most sessions are idle most of the time (a phone in a pocket),
//! and a sender with its queues, timers, loss state and statistics is about
//! 600 bytes; an idle session keeps only where its downlink resumes and the
//! round trip its login showed.

use std::time::Duration;

use super::session::DownItem;
use crate::reliability::{QueueFull, Sender, SenderConfig, SenderEvent};
use crate::time::Time;

/// The sender, or what making it needs.
pub(crate) enum LazySender {
    /// Nothing pushed yet.
    Idle {
        /// The first sequence it will push.
        next: u64,
        /// The login's round trip, to seed the sender's RTT with.
        login_rtt: Option<Duration>,
        /// Seed of its randomness.
        seed: u64,
    },
    /// Pushing (it stays, with its RTT state, once made).
    Live(Box<Sender<DownItem>>),
}

impl LazySender {
    pub fn new(next: u64, login_rtt: Option<Duration>, seed: u64) -> LazySender {
        LazySender::Idle {
            next: next.max(1),
            login_rtt,
            seed,
        }
    }

    /// The sender, made now if it was not yet.
    fn live(&mut self, cfg: &SenderConfig) -> &mut Sender<DownItem> {
        if let LazySender::Idle {
            next,
            login_rtt,
            seed,
        } = *self
        {
            let mut sender = Sender::new(cfg.clone(), next, seed);
            if let Some(sample) = login_rtt {
                let mut rtt = sender.rtt().clone();
                rtt.on_sample(sample, Duration::ZERO);
                sender = sender.with_rtt(rtt);
            }
            *self = LazySender::Live(Box::new(sender));
        }
        match self {
            LazySender::Live(s) => s,
            LazySender::Idle { .. } => unreachable!("made above"),
        }
    }

    pub fn next_seq(&self) -> u64 {
        match self {
            LazySender::Idle { next, .. } => *next,
            LazySender::Live(s) => s.next_seq(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            LazySender::Idle { .. } => 0,
            LazySender::Live(s) => s.len(),
        }
    }

    pub fn is_full(&self) -> bool {
        matches!(self, LazySender::Live(s) if s.is_full())
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, LazySender::Live(s) if s.is_failed())
    }

    pub fn push(
        &mut self,
        cfg: &SenderConfig,
        now: Time,
        item: DownItem,
    ) -> Result<u64, QueueFull> {
        self.live(cfg).push(now, item)
    }

    pub fn poll_transmit(&mut self, now: Time) -> Option<(u64, DownItem)> {
        match self {
            LazySender::Idle { .. } => None,
            LazySender::Live(s) => s.poll_transmit(now),
        }
    }

    pub fn handle_ack(
        &mut self,
        now: Time,
        cumulative: u64,
        ranges: &[(u64, u64)],
        delay: Duration,
    ) {
        if let LazySender::Live(s) = self {
            s.handle_ack(now, cumulative, ranges, delay);
        }
    }

    /// The client's datagrams lost, the sender's estimate of the path from
    /// the other direction (once it is made).
    pub fn path_loss_hint(&mut self, loss: f32) {
        if let LazySender::Live(s) = self {
            s.path_loss_hint(loss);
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let LazySender::Live(s) = self {
            s.handle_timeout(now);
        }
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        match self {
            LazySender::Idle { .. } => None,
            LazySender::Live(s) => s.poll_timeout(),
        }
    }

    pub fn has_transmit(&self) -> bool {
        matches!(self, LazySender::Live(s) if s.has_transmit())
    }

    pub fn poll_event(&mut self) -> Option<SenderEvent<DownItem>> {
        match self {
            LazySender::Idle { .. } => None,
            LazySender::Live(s) => s.poll_event(),
        }
    }

    pub fn revive(&mut self, now: Time) {
        if let LazySender::Live(s) = self {
            s.revive(now);
        }
    }

    /// Timeout and fast retransmissions so far.
    pub fn retransmits(&self) -> u64 {
        match self {
            LazySender::Idle { .. } => 0,
            LazySender::Live(s) => {
                let st = s.stats();
                st.timeout_retransmits + st.fast_retransmits
            }
        }
    }
}
