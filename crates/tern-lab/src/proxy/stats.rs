//! What the proxy did: counters, as text (the exit summary) and as JSON.

use std::fmt;

use tern_sim::impairment::Counters;

/// What the proxy did. `up` and `down` add up the models' counters of every
/// client seen, including evicted ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client → server model counters.
    pub up: Counters,
    /// Server → client model counters.
    pub down: Counters,
    /// Datagrams written to the server.
    pub sent_up: u64,
    /// Datagrams written to clients.
    pub sent_down: u64,
    /// Distinct client mappings created.
    pub clients_seen: u64,
    /// Client mappings alive now.
    pub clients_active: usize,
    /// Client mappings removed for idleness.
    pub clients_evicted: u64,
    /// Datagrams refused because `max_clients` was reached.
    pub clients_rejected: u64,
    /// Upstream socket changes (per client).
    pub rebinds: u64,
    /// Datagrams dropped because the delay queue was full.
    pub dropped_overflow: u64,
    /// Server datagrams for a client mapping that no longer exists.
    pub dropped_stale: u64,
    /// Datagrams still waiting in the delay queue (discarded at exit).
    pub pending: usize,
    /// Socket send failures (e.g. ICMP port unreachable reported back).
    pub send_errors: u64,
    /// Socket receive failures.
    pub recv_errors: u64,
    /// Upstream sockets that could not be opened.
    pub upstream_errors: u64,
    /// Events skipped because the log writer fell behind.
    pub log_events_dropped: u64,
}

fn counters_json(c: &Counters) -> serde_json::Value {
    serde_json::json!({
        "sent": c.sent,
        "dropped": c.dropped(),
        "dropped_random": c.dropped_random,
        "dropped_burst": c.dropped_burst,
        "dropped_blackout": c.dropped_blackout,
        "dropped_queue": c.dropped_queue,
        "duplicated": c.duplicated,
        "reordered": c.reordered,
        "corrupted": c.corrupted,
    })
}

impl ProxyStats {
    /// The stats as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "up": counters_json(&self.up),
            "down": counters_json(&self.down),
            "sent_up": self.sent_up,
            "sent_down": self.sent_down,
            "clients_seen": self.clients_seen,
            "clients_active": self.clients_active,
            "clients_evicted": self.clients_evicted,
            "clients_rejected": self.clients_rejected,
            "rebinds": self.rebinds,
            "dropped_overflow": self.dropped_overflow,
            "dropped_stale": self.dropped_stale,
            "pending": self.pending,
            "send_errors": self.send_errors,
            "recv_errors": self.recv_errors,
            "upstream_errors": self.upstream_errors,
            "log_events_dropped": self.log_events_dropped,
        })
    }
}

impl fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "up:   {} -> forwarded {}", self.up, self.sent_up)?;
        writeln!(f, "down: {} -> forwarded {}", self.down, self.sent_down)?;
        write!(
            f,
            "clients: seen={} active={} evicted={} rejected={} rebinds={}; overflow={} stale={} pending={} errors: send={} recv={} upstream={}",
            self.clients_seen,
            self.clients_active,
            self.clients_evicted,
            self.clients_rejected,
            self.rebinds,
            self.dropped_overflow,
            self.dropped_stale,
            self.pending,
            self.send_errors,
            self.recv_errors,
            self.upstream_errors
        )?;
        if self.log_events_dropped > 0 {
            write!(f, " log_events_dropped={}", self.log_events_dropped)?;
        }
        Ok(())
    }
}
