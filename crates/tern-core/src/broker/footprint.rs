//! How much state the broker holds, so that fuzzers and tests can bound its
//! memory: per session (queued frames, downlink in flight, uplink reorder
//! buffer) and in total (sessions, cached users, tracked sources, timers,
//! undrained output).

use super::session::Downlink;
use super::Broker;
use crate::store::Store;

/// A snapshot of the broker's state sizes (counts, not bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Live sessions.
    pub sessions: usize,
    /// Users whose inbox and device state is cached.
    pub users_cached: usize,
    /// Source addresses with a pre-login rate-limit bucket.
    pub sources_tracked: usize,
    /// Entries in the timer heap (live and stale).
    pub timers: usize,
    /// Datagrams produced and not yet taken by `poll_transmit`.
    pub transmits_queued: usize,
    /// Events not yet taken by `poll_event`.
    pub events_queued: usize,
    /// Writes staged for the next batch.
    pub staged_writes: usize,
    /// Most frames queued on one session and not yet packed.
    pub max_session_out: usize,
    /// Most entries in one session's downlink retransmission queue.
    pub max_downlink_in_flight: usize,
    /// Most operations one session's uplink holds past a gap.
    pub max_uplink_buffered: usize,
    /// Most entries of a pull page one session remembers for receipts.
    pub max_last_page: usize,
    /// Most refused operations remembered for one device.
    pub max_rejected_kept: usize,
}

impl<S: Store> Broker<S> {
    /// The sizes of what the broker holds now.
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint {
            sessions: self.sessions.len(),
            users_cached: self.users.len(),
            sources_tracked: self.admission.tracked(),
            timers: self.timers.len(),
            transmits_queued: self.transmits.len(),
            events_queued: self.events.len(),
            staged_writes: self.staged.appends.len()
                + self.staged.trims.len()
                + self.staged.dirty_users.len()
                + self.staged.dirty_devices.len(),
            ..Footprint::default()
        };
        for s in self.sessions.values() {
            f.max_session_out = f.max_session_out.max(s.out.len());
            if let Downlink::Push(sender) = &s.down {
                f.max_downlink_in_flight = f.max_downlink_in_flight.max(sender.len());
            }
            f.max_uplink_buffered = f.max_uplink_buffered.max(s.uplink.buffered());
            f.max_last_page = f.max_last_page.max(s.last_page.len());
        }
        for u in self.users.values() {
            for d in u.devices.values() {
                let kept = d.staged.rejected.len().max(d.durable.rejected.len());
                f.max_rejected_kept = f.max_rejected_kept.max(kept);
            }
        }
        f
    }
}
