//! After every input: touched sessions pack what they owe into datagrams
//! and re-arm their deadline in the timer heap; due timers retransmit,
//! send delayed ACKs, or close silent sessions.

use std::cmp::Reverse;

use super::session::Downlink;
use super::Broker;
use crate::store::Store;
use crate::time::Time;

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
        if s.scheduled.is_none_or(|t| deadline < t) {
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
            if s.scheduled == Some(t) {
                s.scheduled = None;
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
