//! What a run measured, in a form that is printed, saved (JSON, CSV) and
//! plotted.

use serde::{Deserialize, Deserializer, Serialize};

use crate::arrivals::Arrivals;
use crate::lab::{pct, Usage};

/// JSON has no NaN: serde_json writes it as null; read null back as NaN.
fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Option::<f64>::deserialize(d).map(|o| o.unwrap_or(f64::NAN))
}

/// Wire counters of one phase (the client end of the veth: every frame in
/// both directions, lost ones included, Ethernet header included).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct WireOut {
    /// Frames client to server.
    pub tx_packets: u64,
    /// Bytes client to server.
    pub tx_bytes: u64,
    /// Frames server to client.
    pub rx_packets: u64,
    /// Bytes server to client.
    pub rx_bytes: u64,
}

impl From<crate::lab::Wire> for WireOut {
    fn from(w: crate::lab::Wire) -> Self {
        WireOut {
            tx_packets: w.tx_packets,
            tx_bytes: w.tx_bytes,
            rx_packets: w.rx_packets,
            rx_bytes: w.rx_bytes,
        }
    }
}

impl WireOut {
    /// Both directions.
    pub fn bytes(&self) -> u64 {
        self.tx_bytes + self.rx_bytes
    }
    /// Both directions.
    pub fn packets(&self) -> u64 {
        self.tx_packets + self.rx_packets
    }
}

/// One paced latency run (one peer, one loss level).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyResult {
    /// "tern", "mosquitto" or "tern+rtt100".
    pub peer: String,
    /// Random loss each way.
    pub loss: f64,
    /// Round-trip delay added (ms).
    pub added_rtt_ms: u64,
    /// Messages scheduled.
    pub sent: u64,
    /// Distinct messages delivered within the time limit.
    pub delivered: u64,
    /// Copies delivered more than once.
    pub duplicates: u64,
    /// Delivered out of order (a lower index after a higher one).
    pub out_of_order: u64,
    /// Sender-side session losses / reconnections.
    pub reconnects: u64,
    /// Latency percentiles over delivered messages, ms.
    #[serde(deserialize_with = "de_f64")]
    pub p50_ms: f64,
    /// p90.
    #[serde(deserialize_with = "de_f64")]
    pub p90_ms: f64,
    /// p99.
    #[serde(deserialize_with = "de_f64")]
    pub p99_ms: f64,
    /// p99.9.
    #[serde(deserialize_with = "de_f64")]
    pub p999_ms: f64,
    /// Largest.
    #[serde(deserialize_with = "de_f64")]
    pub max_ms: f64,
    /// Wire during the run.
    pub wire: WireOut,
    /// Server CPU during the run, ms.
    pub server_cpu_ms: u64,
    /// Wall time of the run, s.
    #[serde(deserialize_with = "de_f64")]
    pub elapsed_s: f64,
    /// Latencies of the delivered messages, microseconds, sorted.
    #[serde(skip)]
    pub samples: Vec<u64>,
    /// (scheduled time, latency) in arrival order, microseconds.
    #[serde(skip)]
    pub timeline: Vec<(u64, u64)>,
}

impl LatencyResult {
    /// The result of a paced run of `sent` messages from what arrived;
    /// percentiles filled.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        peer: &str,
        loss: f64,
        added_rtt_ms: u64,
        sent: u64,
        arrivals: Arrivals,
        reconnects: u64,
        usage: Usage,
    ) -> LatencyResult {
        let mut r = LatencyResult {
            peer: peer.into(),
            loss,
            added_rtt_ms,
            sent,
            delivered: arrivals.samples.len() as u64,
            duplicates: arrivals.duplicates,
            out_of_order: arrivals.out_of_order,
            reconnects,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            wire: usage.wire.into(),
            server_cpu_ms: usage.server_cpu.as_millis() as u64,
            elapsed_s: usage.wall.as_secs_f64(),
            samples: arrivals.samples,
            timeline: arrivals.timeline,
        };
        r.finish();
        r
    }

    /// A result with only samples (tests).
    #[cfg(test)]
    pub fn of_samples(peer: &str, loss: f64, samples: Vec<u64>, sent: u64) -> LatencyResult {
        let mut r = LatencyResult {
            peer: peer.into(),
            loss,
            added_rtt_ms: 0,
            sent,
            delivered: samples.len() as u64,
            duplicates: 0,
            out_of_order: 0,
            reconnects: 0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            wire: WireOut::default(),
            server_cpu_ms: 0,
            elapsed_s: 1.0,
            samples,
            timeline: Vec::new(),
        };
        r.finish();
        r
    }

    /// Fills the percentiles from `samples` (sorts them).
    pub fn finish(&mut self) {
        self.samples.sort_unstable();
        let q = |p: f64| quantile_ms(&self.samples, p);
        self.p50_ms = q(0.50);
        self.p90_ms = q(0.90);
        self.p99_ms = q(0.99);
        self.p999_ms = q(0.999);
        self.max_ms = self.samples.last().map_or(f64::NAN, |&v| v as f64 / 1000.0);
    }

    /// Wire bytes per delivered message.
    pub fn bytes_per_msg(&self) -> f64 {
        self.wire.bytes() as f64 / (self.delivered.max(1)) as f64
    }

    /// Frames per delivered message.
    pub fn packets_per_msg(&self) -> f64 {
        self.wire.packets() as f64 / (self.delivered.max(1)) as f64
    }
}

/// One throughput phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThroughputResult {
    /// "tern" or "mosquitto".
    pub peer: String,
    /// "online", "offline-store" or "offline-drain".
    pub workload: String,
    /// Messages asked for.
    pub messages: u64,
    /// Messages completed (online: ACKed and delivered; store: ACKed; drain: delivered).
    pub completed: u64,
    /// Wall time, s.
    #[serde(deserialize_with = "de_f64")]
    pub elapsed_s: f64,
    /// completed / elapsed.
    #[serde(deserialize_with = "de_f64")]
    pub rate: f64,
    /// Latency p50 (online: submit to delivery; store: submit to ACK), ms.
    #[serde(deserialize_with = "de_f64")]
    pub p50_ms: f64,
    /// p99.
    #[serde(deserialize_with = "de_f64")]
    pub p99_ms: f64,
    /// Wire during the phase.
    pub wire: WireOut,
    /// Server CPU over the phase, % of one core.
    #[serde(deserialize_with = "de_f64")]
    pub server_cpu_pct: f64,
    /// Load generator CPU over the phase (this process), % of one core.
    #[serde(deserialize_with = "de_f64")]
    pub client_cpu_pct: f64,
    /// The phase hit its time limit.
    pub timed_out: bool,
}

impl ThroughputResult {
    /// A phase of `peer`'s `workload`: `completed` of `messages` over
    /// `usage`, with latency percentiles (ms, NaN when not measured).
    pub fn new(
        peer: &str,
        workload: &str,
        (messages, completed): (u64, u64),
        (p50_ms, p99_ms): (f64, f64),
        usage: Usage,
        timed_out: bool,
    ) -> ThroughputResult {
        let wall = usage.wall;
        ThroughputResult {
            peer: peer.into(),
            workload: workload.into(),
            messages,
            completed,
            elapsed_s: wall.as_secs_f64(),
            rate: completed as f64 / wall.as_secs_f64().max(1e-9),
            p50_ms,
            p99_ms,
            wire: usage.wire.into(),
            server_cpu_pct: pct(usage.server_cpu, wall),
            client_cpu_pct: pct(usage.client_cpu, wall),
            timed_out,
        }
    }

    /// Wire bytes per completed message.
    pub fn bytes_per_msg(&self) -> f64 {
        self.wire.bytes() as f64 / (self.completed.max(1)) as f64
    }

    /// Server CPU per completed message, microseconds (steadier than the
    /// rate when the machine is shared).
    pub fn server_us_per_msg(&self) -> f64 {
        self.server_cpu_pct / 100.0 * self.elapsed_s * 1e6 / (self.completed.max(1)) as f64
    }
}

/// A baseline measured in the same run (raw UDP relay, raw RocksDB).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineResult {
    /// What it is.
    pub name: String,
    /// Messages (or entries) per second.
    #[serde(deserialize_with = "de_f64")]
    pub rate: f64,
    /// Details.
    pub note: String,
}

/// Nearest-rank quantile `q` of sorted microsecond samples, in ms (NaN
/// without samples).
pub fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1] as f64 / 1000.0
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    /// Machine and moment.
    pub machine: String,
    /// Commit (from `git describe`, if known).
    pub commit: String,
    /// The options, as text.
    pub options: String,
    /// Where it ran ("netns" or "loopback").
    pub network: String,
    /// Throughput phases.
    pub throughput: Vec<ThroughputResult>,
    /// Latency runs.
    pub latency: Vec<LatencyResult>,
    /// Same-run baselines.
    pub baselines: Vec<BaselineResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let r = LatencyResult::of_samples(
            "tern",
            0.0,
            (1..=1000).rev().map(|v| v * 1000).collect(),
            1000,
        );
        for (got, want) in [
            (r.p50_ms, 500.0),
            (r.p90_ms, 900.0),
            (r.p99_ms, 990.0),
            (r.p999_ms, 999.0),
        ] {
            assert!((got - want).abs() <= 1.0, "{got} vs {want}");
        }
        assert_eq!(r.max_ms, 1000.0);
    }
}
