//! Chaos run with an independent invariant checker (`tern-chaos`).
//!
//! [`scenario::run`] starts the real `ternd` ([`crate::ternd`]), puts the
//! impairment proxy ([`crate::proxy::Proxy`]) in front of it on its own
//! thread, and drives many users and devices of the real client library
//! through it: several conversations each, several devices of a user
//! sending into the same conversation, 20 % loss, duplication, reordering,
//! jitter, proxy rebinds, devices going offline (gracefully or abruptly,
//! with sends in flight) and coming back with their durable state, and the
//! daemon SIGKILLed and restarted on the same data folder and port.
//! Devices post into direct conversations and move read positions; a
//! brand-new device joins late and pages every history (roaming); after
//! healing, every device journals its conversation list and histories
//! until a user's devices agree (settling).
//! Everything the applications saw is written to append-only journals
//! ([`journal`], [`conv_journal`]); afterwards [`checker::check_dir`] reads
//! only those journals and counts lost ACKed messages, duplicates, order
//! violations, wrong receipts, and devices that disagree on a history, the
//! list or their sync timeline.
//!
//! Inside: the phases of a run (`scenario`, `settle`), one device's life
//! (`device`, `batch`, `device_journal`, `device_conv`), the injected faults
//! (`faults`), what the tasks share (`shared`), the result (`outcome`); the
//! checker (`checker`, `receipts`, `conv_check`, `conv_rules`, `report`).
//!
//! `docs/chaos.md` is the guide.

mod batch;
pub mod checker;
mod conv_check;
pub mod conv_journal;
mod conv_rules;
mod device;
mod device_conv;
mod device_journal;
mod faults;
pub mod journal;
mod outcome;
mod proxy_thread;
mod receipts;
mod report;
pub mod scenario;
mod settle;
mod shared;

use std::time::Duration;

pub use checker::{check_dir, Kind, Report};
pub use outcome::{RunOutcome, RunStats};
pub use scenario::run;

/// `to` of a message posted into the run's group (in the send journal):
/// no user has id 0.
pub const GROUP_TO: u64 = 0;

/// Default impairment of each direction.
pub const DEFAULT_IMPAIRMENT: &str = "loss=0.2,dup=0.05,reorder=0.02,jitter=10ms,delay=20ms";

/// Everything a chaos run is set up with. Start from [`Params::short`] or
/// [`Params::long`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    /// Users (ids 1..=users).
    pub users: u64,
    /// Devices per user (ids 1..=devices).
    pub devices: u32,
    /// Conversations each user starts (it takes part in about twice as many).
    pub convs: u32,
    /// Messages submitted in total, spread over all devices.
    pub messages: u64,
    /// SIGKILLs of the daemon, spread over the traffic phase.
    pub kills: u32,
    /// Length the traffic is paced over.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Longest wait, after traffic, for every ACKed message to arrive.
    #[serde(with = "humantime_serde")]
    pub heal: Duration,
    /// Seed of every random choice (proxy models, schedules, traffic).
    pub seed: u64,
    /// Client → server impairment spec.
    pub up: String,
    /// Server → client impairment spec.
    pub down: String,
    /// Move every client to a new proxy upstream port this often.
    #[serde(with = "humantime_serde")]
    pub rebind_every: Option<Duration>,
    /// Devices go offline and come back during traffic.
    pub offline: bool,
    /// Length of an online spell: uniform in this range.
    #[serde(with = "humantime_serde")]
    pub online_min: Duration,
    /// Upper bound of an online spell.
    #[serde(with = "humantime_serde")]
    pub online_max: Duration,
    /// Length of an offline spell: uniform in this range.
    #[serde(with = "humantime_serde")]
    pub offline_min: Duration,
    /// Upper bound of an offline spell.
    #[serde(with = "humantime_serde")]
    pub offline_max: Duration,
    /// Operations in flight per device (one batch).
    pub window: usize,
    /// Probability that a received message is answered with a READ receipt.
    pub read_prob: f64,
    /// Probability per batch that a device moves to a new local port.
    pub client_rebind_prob: f64,
    /// Probability that a received message moves the user's read position
    /// to it (`mark_read`, from that device; the others follow).
    pub mark_read_prob: f64,
    /// A brand-new device of user 1 joins at this fraction of the traffic
    /// phase and pages every conversation's whole history (history
    /// roaming); `None`: no late device.
    pub late_device_at: Option<f64>,
    /// Daemon heartbeat (`TERN_TIMERS_HEARTBEAT`).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Daemon idle timeout (`TERN_TIMERS_IDLE_TIMEOUT`).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Share of the messages posted into one group of every user (created by
    /// user 1's first device when traffic starts); 0: no group.
    pub group_share: f64,
    /// The daemon's write fan-out threshold
    /// (`TERN_LIMITS_GROUP_WRITE_FANOUT_MAX`): below the user count, the
    /// group is in read fan-out, so members offline get no entries and
    /// catch up at login.
    pub group_write_fanout_max: usize,
    /// Membership changes in the group during traffic: the last user is not
    /// a member at first and is added at 30 % of the traffic; user 2 is
    /// removed at 60 %.
    pub group_churn: bool,
    /// The daemon's `RUST_LOG` (its log is `DIR/ternd.log`).
    pub ternd_log: String,
    /// Write the proxy's per-datagram event log to `DIR/proxy.jsonl`.
    pub proxy_log: bool,
}

impl Params {
    /// About two minutes with a debug build on two cores: 6 users × 2
    /// devices and a late third device of user 1, 2,500 messages over 50 s,
    /// 3 SIGKILLs.
    pub fn short() -> Params {
        Params {
            users: 6,
            devices: 2,
            convs: 2,
            messages: 2_500,
            kills: 3,
            duration: Duration::from_secs(50),
            heal: Duration::from_secs(60),
            seed: 1,
            up: DEFAULT_IMPAIRMENT.into(),
            down: DEFAULT_IMPAIRMENT.into(),
            rebind_every: Some(Duration::from_secs(5)),
            offline: true,
            online_min: Duration::from_secs(6),
            online_max: Duration::from_secs(20),
            offline_min: Duration::from_secs(1),
            offline_max: Duration::from_secs(6),
            window: 8,
            read_prob: 0.05,
            client_rebind_prob: 0.01,
            mark_read_prob: 0.1,
            late_device_at: Some(0.6),
            heartbeat: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(20),
            group_share: 0.25,
            group_write_fanout_max: 3,
            group_churn: true,
            ternd_log: "warn".into(),
            proxy_log: false,
        }
    }

    /// The soak run (release build): 30 users × 3 devices, 110,000
    /// messages over 5 minutes (so that more than 100,000 are ACKed), 5
    /// SIGKILLs.
    pub fn long() -> Params {
        Params {
            users: 30,
            devices: 3,
            convs: 3,
            messages: 110_000,
            kills: 5,
            duration: Duration::from_secs(300),
            heal: Duration::from_secs(180),
            window: 24,
            online_min: Duration::from_secs(10),
            online_max: Duration::from_secs(60),
            offline_min: Duration::from_secs(2),
            offline_max: Duration::from_secs(20),
            rebind_every: Some(Duration::from_secs(10)),
            ..Params::short()
        }
    }

    /// Checks the ranges; errors name the parameter.
    pub fn validate(&self) -> Result<(), String> {
        if self.users < 2 {
            return Err("--users: at least 2".into());
        }
        if self.devices == 0 {
            return Err("--devices: at least 1".into());
        }
        if self.convs == 0 || u64::from(self.convs) >= self.users {
            return Err(format!(
                "--convs: between 1 and users - 1 ({})",
                self.users - 1
            ));
        }
        if self.window == 0 || self.window > 128 {
            return Err("--window: between 1 and 128".into());
        }
        if self.duration.is_zero() {
            return Err("--duration: above 0".into());
        }
        if self.online_min > self.online_max || self.offline_min > self.offline_max {
            return Err("online/offline ranges: min above max".into());
        }
        if !(0.0..=1.0).contains(&self.read_prob)
            || !(0.0..=1.0).contains(&self.client_rebind_prob)
            || !(0.0..=1.0).contains(&self.mark_read_prob)
            || !(0.0..=1.0).contains(&self.group_share)
            || self
                .late_device_at
                .is_some_and(|f| !(0.0..=1.0).contains(&f))
        {
            return Err("probabilities must be in 0..=1".into());
        }
        if self.group_share > 0.0 && self.group_churn && self.users < 4 {
            return Err("--group-churn needs at least 4 users".into());
        }
        if self.group_share > 0.0 && self.users > 33 {
            return Err("--group-share: the run's group holds every user, at most 33".into());
        }
        crate::Impairment::parse(&self.up).map_err(|e| format!("up impairment: {e}"))?;
        crate::Impairment::parse(&self.down).map_err(|e| format!("down impairment: {e}"))?;
        Ok(())
    }

    /// The conversations: user `u` starts `convs` of them, with users
    /// `u+1, u+2, …` (wrapping), conversation id `u * 1000 + k`.
    pub fn conversations(&self) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        for u in 1..=self.users {
            for k in 1..=u64::from(self.convs) {
                let peer = (u - 1 + k) % self.users + 1;
                out.push((u * 1000 + k, u, peer));
            }
        }
        out
    }
}
