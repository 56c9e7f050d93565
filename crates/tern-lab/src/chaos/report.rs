//! The checker's verdict: violation counts by category, kept examples, and
//! the one-line summary.

use std::collections::BTreeMap;
use std::fmt;

/// Violation categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// ACKed message missing at a device of its receiver.
    Lost,
    /// Entry or message handed twice.
    Duplicate,
    /// Out of order.
    Order,
    /// Wrong receipt.
    BadReceipt,
    /// Skipped inbox entries.
    Gap,
    /// Impossible data.
    Bogus,
    /// Devices of one user (or the two users of a conversation) disagree
    /// on a history or the conversation list.
    Diverged,
    /// A history or list contradicts what was sent, ACKed, handed or read.
    History,
}

impl Kind {
    /// All categories, in report order.
    pub const ALL: [Kind; 8] = [
        Kind::Lost,
        Kind::Duplicate,
        Kind::Order,
        Kind::BadReceipt,
        Kind::Gap,
        Kind::Bogus,
        Kind::Diverged,
        Kind::History,
    ];

    /// Short name used in the summary line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lost => "lost",
            Kind::Duplicate => "duplicates",
            Kind::Order => "order",
            Kind::BadReceipt => "bad_receipts",
            Kind::Gap => "gaps",
            Kind::Bogus => "bogus",
            Kind::Diverged => "diverged",
            Kind::History => "history",
        }
    }
}

/// How many examples of each category a report keeps.
pub const EXAMPLES_PER_KIND: usize = 25;

/// The checker's verdict.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Devices checked.
    pub devices: usize,
    /// Messages submitted (`submit` lines).
    pub submitted: u64,
    /// Messages acknowledged (`ack` lines).
    pub acked: u64,
    /// Message entries handed to applications (all devices, duplicates included).
    pub deliveries: u64,
    /// Messages delivered somewhere although their `send` never resolved
    /// `Ok` (the sender went away first): allowed, informational.
    pub unacked_delivered: u64,
    /// Distinct receipt entries checked (DELIVERED + READ).
    pub receipts: u64,
    /// Of which READ.
    pub read_receipts: u64,
    /// Devices whose final conversation views were checked.
    pub views: u64,
    /// Records in the checked histories (one device per user).
    pub history_records: u64,
    /// Records late devices paged when they joined (history roaming).
    pub roam_records: u64,
    /// Violation counts.
    pub counts: BTreeMap<Kind, u64>,
    /// Up to [`EXAMPLES_PER_KIND`] descriptions per category.
    pub examples: BTreeMap<Kind, Vec<String>>,
}

impl Report {
    pub(super) fn violation(&mut self, kind: Kind, what: impl FnOnce() -> String) {
        *self.counts.entry(kind).or_default() += 1;
        let ex = self.examples.entry(kind).or_default();
        if ex.len() < EXAMPLES_PER_KIND {
            ex.push(what());
        }
    }

    /// Violations of one category.
    pub fn count(&self, kind: Kind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Violations of all categories.
    pub fn total_violations(&self) -> u64 {
        self.counts.values().sum()
    }

    /// No violation at all.
    pub fn passed(&self) -> bool {
        self.total_violations() == 0
    }

    /// Every kept example, one per line, prefixed by its category.
    pub fn example_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for k in Kind::ALL {
            for e in self.examples.get(&k).into_iter().flatten() {
                out.push(format!("{}: {e}", k.name()));
            }
        }
        out
    }
}

impl fmt::Display for Report {
    /// The one-line summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acked={} delivered={} receipts={} devices={} views={} records={} roamed={}",
            if self.passed() { "PASS" } else { "FAIL" },
            self.acked,
            self.deliveries,
            self.receipts,
            self.devices,
            self.views,
            self.history_records,
            self.roam_records
        )?;
        for k in Kind::ALL {
            write!(f, " {}={}", k.name(), self.count(k))?;
        }
        Ok(())
    }
}
