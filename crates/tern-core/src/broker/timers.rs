//! After every input: touched sessions pack what they owe into datagrams
//! and re-arm their deadline in the timer heap; due timers retransmit,
//! send delayed ACKs, or close silent sessions.
//!
//! The heap is lazy: an entry is not removed when its session's deadline
//! changes. A session's `scheduled` names its live entry; any other entry
//! for it is stale and fires nothing. A deadline that moves earlier gets a
//! new entry at once. One that moves later gets one only while the old
//! entry is less than [`REARM_HORIZON`] away: those are the short timers
//! (a retransmission, a tail-loss probe, a delayed ACK) that an answer
//! cancels, and without a new entry the loop would wake for each of them
//! with nothing to do (at a chat rate, 0.4 wasted wake-ups per message).
//! A far deadline that moves later (the idle timer, on every heartbeat)
//! keeps its entry, and fires once to re-arm: one entry per idle session,
//! not one per heartbeat.

use std::cmp::Reverse;
use std::time::Duration;

use super::session::Downlink;
use super::Broker;
use crate::store::Store;
use crate::time::Time;

/// A deadline that moves later gets a new heap entry when its old one was
/// due within this long.
const REARM_HORIZON: Duration = Duration::from_secs(1);

impl<S: Store> Broker<S> {
    pub(super) fn touch(&mut self, sid: u64) {
        if !self.touched.contains(&sid) {
            self.touched.push(sid);
        }
    }

    /// Sends what touched sessions have queued and re-arms their timers.
    pub(super) fn flush_touched(&mut self, now: Time) {
        let touched = std::mem::take(&mut self.touched);
        for sid in touched {
            self.flush_session(now, sid);
        }
        self.prune_stale_timers();
    }

    /// Drops stale entries from the top of the heap, so that
    /// [`Broker::poll_timeout`] names a deadline that does something.
    fn prune_stale_timers(&mut self) {
        while let Some(Reverse((t, sid))) = self.timers.peek().copied() {
            let stale = self
                .sessions
                .get(&sid)
                .is_none_or(|s| s.scheduled.is_some_and(|live| live > t));
            if !stale {
                break;
            }
            self.timers.pop();
        }
    }

    pub(super) fn flush_session(&mut self, now: Time, sid: u64) {
        let ack_frames = self.uplink_ack_frames(now, sid);
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if !ack_frames.is_empty() || s.has_output(now) {
            let before = self.transmits.len();
            s.build(now, ack_frames, self.cfg.max_datagram, &mut self.transmits);
            self.stats.datagrams_out += (self.transmits.len() - before) as u64;
        }
        let deadline = s.next_deadline(self.cfg.idle_timeout);
        let rearm = match s.scheduled {
            None => true,
            Some(t) => deadline < t || (deadline > t && t <= now + REARM_HORIZON),
        };
        if rearm {
            s.scheduled = Some(deadline);
            self.timers.push(Reverse((deadline, sid)));
        }
        self.drain_downlink_events(now, sid);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(Reverse((t, sid))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let idle = self.cfg.idle_timeout;
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            match s.scheduled {
                Some(live) if live == t => s.scheduled = None,
                // Stale: the session's live entry is later.
                Some(live) if live > t => continue,
                _ => {}
            }
            if now.saturating_since(s.last_heard) >= idle {
                self.stats.idle_closed += 1;
                self.close_session(sid, crate::wire::KickReason::Idle, false);
                continue;
            }
            if let Downlink::Push(sender) = &mut s.down {
                sender.handle_timeout(now);
            }
            self.touch(sid);
        }
        self.walk_history(now);
        self.deferred_timeout(now);
        self.flush_touched(now);
    }
}
