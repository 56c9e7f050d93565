//! What the run's tasks share: the phase, the counters, the journals the
//! run itself writes (sends, events), and the in-memory progress tracker
//! that only tells the heal phase when to stop (the verdict comes from the
//! journals alone).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use tokio::sync::watch;

use super::journal::{Clock, EventRecord, JsonlWriter, MsgId};
use super::Params;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Traffic,
    Heal,
    /// Every device journals its list and histories (settling round `n`).
    Settle(u32),
    Stop,
}

/// In-memory progress, only to know when to stop healing. The verdict comes
/// from the journals alone.
#[derive(Default)]
pub(super) struct Tracker {
    pub(super) devices_per_user: u64,
    pub(super) acked: HashSet<MsgId>,
    pub(super) seen_by: HashMap<MsgId, u64>,
    pub(super) seen: HashSet<((u64, u32), MsgId)>,
    pub(super) owed: u64,
    pub(super) satisfied: u64,
}

impl Tracker {
    pub(super) fn on_ack(&mut self, id: MsgId) {
        if self.acked.insert(id) {
            self.owed += self.devices_per_user;
            self.satisfied += self.seen_by.get(&id).copied().unwrap_or(0);
        }
    }

    pub(super) fn on_seen(&mut self, dev: (u64, u32), id: MsgId) {
        if self.seen.insert((dev, id)) {
            *self.seen_by.entry(id).or_default() += 1;
            if self.acked.contains(&id) {
                self.satisfied += 1;
            }
        }
    }

    pub(super) fn complete(&self) -> bool {
        self.satisfied >= self.owed
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) submitted: AtomicU64,
    pub(super) acked: AtomicU64,
    pub(super) unresolved: AtomicU64,
    pub(super) abandoned: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) reads: AtomicU64,
    pub(super) marks: AtomicU64,
    pub(super) history_pages: AtomicU64,
    pub(super) offline_close: AtomicU64,
    pub(super) offline_drop: AtomicU64,
    pub(super) client_rebinds: AtomicU64,
    pub(super) logins: AtomicU64,
    pub(super) quotas_done: AtomicU64,
    /// Posts into the run's group the server acknowledged.
    pub(super) group_posts: AtomicU64,
}

/// A device's last settling round and the digest of its views (`None`:
/// they failed).
pub(super) type ViewReport = (u32, Option<u64>);

pub(super) struct Shared {
    pub(super) params: Params,
    /// The run's group, once user 1's first device created it.
    pub(super) group: std::sync::OnceLock<u64>,
    /// Membership changes done (group churn): the last user added at 30 %
    /// of the traffic, user 2 removed at 60 %.
    pub(super) churn_added: std::sync::atomic::AtomicBool,
    pub(super) churn_removed: std::sync::atomic::AtomicBool,
    pub(super) clock: Clock,
    pub(super) sends: JsonlWriter,
    pub(super) events: JsonlWriter,
    pub(super) tracker: Mutex<Tracker>,
    pub(super) counters: Counters,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) server: std::net::SocketAddr,
    /// The daemon's seal key: every chaos session is sealed, as by default.
    pub(super) seal_key: Option<tern::client::SealKey>,
    /// Per device, the last settling round it journaled and a digest of
    /// what it saw (`None`: the views failed), so the run knows when the
    /// devices agree; the verdict still comes from the journals alone.
    pub(super) views: Mutex<HashMap<(u64, u32), ViewReport>>,
}

impl Shared {
    pub(super) fn event(&self, ev: &str, detail: serde_json::Value) {
        let _ = self.events.append(&EventRecord {
            t_us: self.clock.us(),
            ev: ev.into(),
            detail,
        });
        let _ = self.events.flush();
    }
}

pub(super) fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}
