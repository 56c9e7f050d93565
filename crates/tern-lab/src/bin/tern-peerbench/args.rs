//! The options of `tern-peerbench run`, and the workload sizes and network
//! they come to.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::lab::Lab;

/// Where the benchmark runs, and the daemon it starts: shared by `run`
/// and `connect`.
#[derive(clap::Args, Debug, Clone)]
pub struct LabArgs {
    /// Namespace lab prefix (scripts/netns-lab.sh): servers run in
    /// PREFIX-s, this process must run in PREFIX-c, the wire is PREFIX-c0.
    /// Without it everything runs on loopback and only 0% loss is possible.
    #[arg(long)]
    pub netns: Option<String>,
    /// The lab script, to change the loss.
    #[arg(long, default_value = "scripts/netns-lab.sh")]
    pub lab_script: PathBuf,
    /// Server address (default 10.77.0.1 with --netns, else 127.0.0.1).
    #[arg(long)]
    pub server_ip: Option<IpAddr>,
    /// ternd binary (default: next to this executable).
    #[arg(long)]
    pub ternd: Option<PathBuf>,
}

impl LabArgs {
    /// The lab these options name.
    pub fn lab(&self) -> Result<Lab> {
        Lab::new(self.netns.as_deref(), &self.lab_script, self.server_ip)
    }

    /// The ternd binary to start.
    pub fn ternd(&self) -> PathBuf {
        self.ternd
            .clone()
            .unwrap_or_else(|| tern_lab::process::next_to_exe("ternd"))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub lab_args: LabArgs,
    /// tern-proxy binary (default: next to this executable).
    #[arg(long)]
    pub proxy: Option<PathBuf>,
    /// mosquitto binary.
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    pub mosquitto: PathBuf,
    /// Where to write results.json and the CSVs.
    #[arg(long, default_value = "docs/charts/data")]
    pub out: PathBuf,
    /// Where to draw the charts (none: no charts).
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// Sender/receiver pairs of the throughput workloads.
    #[arg(long, default_value_t = 16)]
    pub pairs: usize,
    /// Messages in flight per sender (Tern window, MQTT inflight, broker max_inflight_messages).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Messages of the online throughput workload.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Messages of the offline workload.
    #[arg(long, default_value_t = 100_000)]
    pub offline_messages: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Loss levels (each way) of the latency workload.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.2")]
    pub losses: Vec<f64>,
    /// Messages per latency run.
    #[arg(long, default_value_t = 3000)]
    pub latency_messages: u64,
    /// Gap between latency messages.
    #[arg(long, default_value = "5ms")]
    pub latency_interval: humantime::Duration,
    /// How long after the last scheduled message a latency run waits.
    #[arg(long, default_value = "20s")]
    pub latency_grace: humantime::Duration,
    /// Round trip added, for both peers, by an NFQUEUE delay in each
    /// namespace (a second latency series; 0: none).
    #[arg(long, default_value_t = 100)]
    pub delay_rtt_ms: u64,
    /// Round trip added for an extra Tern-only series through tern-proxy
    /// (UDP only, so Mosquitto cannot get it; 0: none).
    #[arg(long, default_value_t = 0)]
    pub proxy_rtt_ms: u64,
    /// Time limit of each throughput phase.
    #[arg(long, default_value = "60s")]
    pub max_time: humantime::Duration,
    /// Skip the raw UDP / raw RocksDB baselines.
    #[arg(long)]
    pub skip_baselines: bool,
    /// Skip the throughput workloads.
    #[arg(long)]
    pub skip_throughput: bool,
    /// Skip the latency workloads.
    #[arg(long)]
    pub skip_latency: bool,
    /// Skip the latency series without added delay (run only the
    /// `--delay-rtt-ms` one).
    #[arg(long)]
    pub skip_no_delay: bool,
    /// Small counts, for a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Tern over clear raw UDP (seal policy off, clients clear) instead of
    /// the default configuration (sealing required, clients sealed), to
    /// compare with the figures taken before issue 14, item 7.
    #[arg(long)]
    pub clear: bool,
    /// Fail (exit 1) unless every Tern message arrived exactly once and in
    /// order, every Mosquitto message arrived at 0% loss, and no
    /// throughput phase hit its time limit: the harness as a test.
    #[arg(long)]
    pub check: bool,
}

/// The sizes of the workloads.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Sender/receiver pairs.
    pub pairs: usize,
    /// In flight per sender.
    pub window: usize,
    /// Online messages.
    pub messages: u64,
    /// Offline messages.
    pub offline_messages: u64,
    /// Payload bytes.
    pub payload: usize,
    /// Messages per latency run.
    pub latency_messages: u64,
    /// Gap between latency messages.
    pub latency_interval: Duration,
    /// Wait after the last latency message.
    pub latency_grace: Duration,
    /// Throughput phase limit.
    pub max_time: Duration,
}

impl RunArgs {
    /// `--quick`: small counts, for a smoke test.
    pub fn apply_quick(&mut self) {
        if self.quick {
            self.messages = self.messages.min(20_000);
            self.offline_messages = self.offline_messages.min(20_000);
            self.latency_messages = self.latency_messages.min(500);
            self.latency_grace = Duration::from_secs(10).into();
            self.max_time = Duration::from_secs(30).into();
        }
    }

    /// The network: the namespace lab of `--netns PREFIX` (servers in
    /// PREFIX-s, this process in PREFIX-c, the wire PREFIX-c0), or loopback.
    pub fn lab(&self) -> Result<Lab> {
        self.lab_args.lab()
    }

    /// The workload sizes (at least one pair, one in flight, 16-byte payloads).
    pub fn shape(&self) -> Shape {
        Shape {
            pairs: self.pairs.max(1),
            window: self.window.max(1),
            messages: self.messages,
            offline_messages: self.offline_messages,
            payload: self.payload.max(16),
            latency_messages: self.latency_messages.max(1),
            latency_interval: self.latency_interval.into(),
            latency_grace: self.latency_grace.into(),
            max_time: self.max_time.into(),
        }
    }
}
