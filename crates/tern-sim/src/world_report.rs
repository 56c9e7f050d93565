//! The end of a run: the checker's verdict over every device, the group
//! and conversation audits, and, when anything failed, each client's state
//! for the report.

use tern_core::time::Time;

use super::World;
use crate::config::SimReport;

impl World<'_> {
    /// Adds the broker's group fan-out counters to the report (before a
    /// crash replaces it, and at the end).
    pub(super) fn count_group_stats(&mut self) {
        let s = self.broker.stats();
        self.report.group_skipped += s.group_entries_skipped;
        self.report.group_caught_up += s.group_states_caught_up;
    }

    pub(super) fn finish(mut self) -> SimReport {
        self.count_group_stats();
        self.report.end = self.now.saturating_since(Time::ZERO);
        let on_time = self.clients.len() - self.late;
        let devices: Vec<(u64, u32)> = self.clients[..on_time]
            .iter()
            .map(|c| (c.user, c.device))
            .collect();
        let read_fanout = self.checker.group.read_fanout;
        let group = std::mem::take(&mut self.checker.group);
        self.checker.verify(&devices, &mut self.report);
        if self.cfg.groups {
            let clients = &self.clients;
            let conv = group.id.map(crate::world_groups::conv);
            let paged = |dev: (u64, u32)| {
                clients
                    .iter()
                    .find(|c| (c.user, c.device) == dev)
                    .zip(conv)
                    .and_then(|(c, conv)| c.audit.history.get(&conv))
                    .map(|h| h.keys().copied().collect())
                    .unwrap_or_default()
            };
            let found = group.verify(&self.store, &devices, paged);
            self.report.violations.extend(found);
            if let Some(owner) = self.clients.iter().find(|c| c.user == 1 && c.device == 1) {
                let found = crate::group_check::verify_counts(&self.store, &owner.audit);
                self.report.violations.extend(found);
            }
        }
        if self.cfg.conversations {
            let audited: Vec<_> = self
                .clients
                .iter()
                .enumerate()
                .map(|(i, c)| crate::audit::Audited {
                    dev: (c.user, c.device),
                    late: i >= on_time,
                    views: c.views(),
                    audit: &c.audit,
                    read_fanout,
                })
                .collect();
            let found = crate::audit::check(&audited);
            self.report.violations.extend(found.into_iter().take(12));
        }
        let expected =
            self.cfg.users * u64::from(self.cfg.devices) * u64::from(self.cfg.messages_per_device);
        if self.report.submitted != expected {
            let closed: Vec<_> = self
                .clients
                .iter()
                .filter(|c| !c.registered)
                .map(|c| (c.user, c.device))
                .collect();
            self.report.violations.push(format!(
                "only {} of {expected} messages were submitted: devices {closed:?} never logged in",
                self.report.submitted
            ));
        }
        if !self.report.violations.is_empty() {
            for c in &self.clients {
                let Some(conn) = c.conn() else {
                    let v = format!("client ({},{}) not running", c.user, c.device);
                    self.report.violations.push(v);
                    continue;
                };
                self.report.violations.push(format!(
                    "client ({},{}) active={} closed={} pending={} uplink={:?} base={:?} failed={:?} downlink={:?} broker={:?}",
                    c.user,
                    c.device,
                    conn.is_active(),
                    conn.is_closed(),
                    conn.pending(),
                    conn.uplink().map(|s| s.stats().clone()),
                    conn.uplink().map(|s| s.base()),
                    conn.uplink().map(|s| s.is_failed()),
                    conn.downlink().stats(),
                    self.broker.stats(),
                ));
            }
        }
        self.report
    }
}
