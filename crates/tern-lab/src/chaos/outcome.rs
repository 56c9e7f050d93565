//! What a chaos run reports: what it did, and the checker's verdict, in
//! one summary line.

use std::path::PathBuf;
use std::time::Duration;

use super::checker::Report;
use super::Params;
use crate::proxy::ProxyStats;

/// What a run did, besides the checker's verdict.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Messages submitted to the client library.
    pub submitted: u64,
    /// Of which `send` resolved `Ok`.
    pub acked: u64,
    /// Sends whose outcome the run stopped waiting for after 10 s: neither
    /// counted as ACKed nor as failed (they may still be stored).
    pub unresolved: u64,
    /// Sends in flight when their device was dropped abruptly.
    pub abandoned: u64,
    /// Sends that resolved with an error (e.g. the client was closed).
    pub failed: u64,
    /// READ receipts sent and acknowledged.
    pub reads: u64,
    /// Read positions set (`mark_read`) and acknowledged.
    pub marks: u64,
    /// Posts into the run's group the server acknowledged.
    pub group_posts: u64,
    /// History pages the devices' views took (roaming and settling).
    pub history_pages: u64,
    /// Brand-new devices that joined late and roamed.
    pub late_devices: u32,
    /// Settling rounds of conversation views after the heal phase.
    pub settle_rounds: u32,
    /// The devices of every user reported the same views in the last round.
    pub settled: bool,
    /// SIGKILLs of the daemon.
    pub kills: u32,
    /// Proxy rebinds (all clients moved each time).
    pub rebinds: u32,
    /// Offline spells (graceful close).
    pub offline_close: u64,
    /// Offline spells (abrupt drop, sends possibly in flight).
    pub offline_drop: u64,
    /// Client-side port changes.
    pub client_rebinds: u64,
    /// Logins seen by devices (first ones included).
    pub logins: u64,
    /// Traffic phase length.
    pub traffic: Duration,
    /// Time from the end of traffic until every ACKed message had reached
    /// every device of its receiver; `None`: the heal deadline passed first.
    pub healed_in: Option<Duration>,
    /// Whole run.
    pub total: Duration,
    /// The proxy's final counters.
    pub proxy: ProxyStats,
}

/// A finished run: statistics and the checker's report.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The parameters.
    pub params: Params,
    /// The run directory (journals, daemon data and log, client state).
    pub dir: PathBuf,
    /// What the run did.
    pub stats: RunStats,
    /// The independent check of the journals.
    pub report: Report,
}

impl RunOutcome {
    /// The one-line summary: verdict, counts, and what the run did.
    pub fn summary_line(&self) -> String {
        let p = &self.params;
        let s = &self.stats;
        format!(
            "tern-chaos: {} | seed={} users={} devices/user={} convs/user={} submitted={} kills={} rebinds={} offline={}+{} client_rebinds={} logins={} marks={} group_posts={} late={} history_pages={} settle_rounds={}{} unresolved={} abandoned={} loss_up={} loss_down={} dup={} traffic={:.1}s healed_in={} total={:.1}s dir={}",
            self.report,
            p.seed,
            p.users,
            p.devices,
            p.convs,
            s.submitted,
            s.kills,
            s.rebinds,
            s.offline_close,
            s.offline_drop,
            s.client_rebinds,
            s.logins,
            s.marks,
            s.group_posts,
            s.late_devices,
            s.history_pages,
            s.settle_rounds,
            if s.settled { "" } else { "(unsettled)" },
            s.unresolved,
            s.abandoned,
            s.proxy.up.dropped(),
            s.proxy.down.dropped(),
            s.proxy.up.duplicated + s.proxy.down.duplicated,
            s.traffic.as_secs_f64(),
            s.healed_in
                .map_or("never".to_string(), |d| format!("{:.1}s", d.as_secs_f64())),
            s.total.as_secs_f64(),
            self.dir.display()
        )
    }
}
