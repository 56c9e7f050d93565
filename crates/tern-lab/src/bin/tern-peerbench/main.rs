//! `tern-peerbench`: Tern against a real peer, Mosquitto (MQTT QoS 1,
//! persistent sessions), in the same run and on the same network: online
//! throughput, durable offline throughput and drain, delivery latency under
//! kernel-level random loss (network namespaces + iptables, see
//! `scripts/netns-lab.sh`), and bytes on the wire per delivered message.
//! Every figure is printed next to Mosquitto's as a ratio; raw results go
//! to JSON/CSV and `render` draws SVG charts from them.
//!
//! Normally run by `scripts/bench-peers.sh`, inside the client namespace;
//! the servers are started in the server namespace with `ip netns exec`.

mod charts;
mod delay;
mod lab;
mod mqtt_load;
mod results;
mod servers;
mod tern_load;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use lab::Lab;
use results::{BaselineResult, LatencyResult, RunResults, ThroughputResult};
use servers::{Mosquitto, MosquittoSettings, TernProxy, Ternd};
use tern_lab::process::{next_to_exe, ChildProcess, OnDrop, Stderr};

#[derive(Parser)]
#[command(
    name = "tern-peerbench",
    about = "Tern vs Mosquitto under kernel-level loss"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every workload against both peers and save the results.
    Run(Box<RunArgs>),
    /// Hold every packet of an NFQUEUE for a fixed time (run one in each
    /// namespace; see docs/lab-netns.md).
    Delay {
        /// NFQUEUE number.
        #[arg(long, default_value_t = 7)]
        queue: u16,
        /// One-way delay, ms.
        #[arg(long, default_value_t = 50)]
        ms: u64,
        /// Stop after this long (default: run until killed).
        #[arg(long)]
        duration: Option<humantime::Duration>,
    },
    /// Draw the charts from saved results.
    Render {
        /// Folder with results.json and the latency CSVs.
        #[arg(long, default_value = "docs/charts/data")]
        data: PathBuf,
        /// Folder for the SVG files.
        #[arg(long, default_value = "docs/charts")]
        out: PathBuf,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Namespace lab prefix (scripts/netns-lab.sh): servers run in
    /// PREFIX-s, this process must run in PREFIX-c, the wire is PREFIX-c0.
    /// Without it everything runs on loopback and only 0% loss is possible.
    #[arg(long)]
    netns: Option<String>,
    /// The lab script, to change the loss.
    #[arg(long, default_value = "scripts/netns-lab.sh")]
    lab_script: PathBuf,
    /// Server address (default 10.77.0.1 with --netns, else 127.0.0.1).
    #[arg(long)]
    server_ip: Option<IpAddr>,
    /// ternd binary (default: next to this executable).
    #[arg(long)]
    ternd: Option<PathBuf>,
    /// tern-proxy binary (default: next to this executable).
    #[arg(long)]
    proxy: Option<PathBuf>,
    /// mosquitto binary.
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto: PathBuf,
    /// Where to write results.json and the CSVs.
    #[arg(long, default_value = "docs/charts/data")]
    out: PathBuf,
    /// Where to draw the charts (none: no charts).
    #[arg(long)]
    charts: Option<PathBuf>,
    /// Sender/receiver pairs of the throughput workloads.
    #[arg(long, default_value_t = 16)]
    pairs: usize,
    /// Messages in flight per sender (Tern window, MQTT inflight, broker max_inflight_messages).
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Messages of the online throughput workload.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Messages of the offline workload.
    #[arg(long, default_value_t = 100_000)]
    offline_messages: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Loss levels (each way) of the latency workload.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.2")]
    losses: Vec<f64>,
    /// Messages per latency run.
    #[arg(long, default_value_t = 3000)]
    latency_messages: u64,
    /// Gap between latency messages.
    #[arg(long, default_value = "5ms")]
    latency_interval: humantime::Duration,
    /// How long after the last scheduled message a latency run waits.
    #[arg(long, default_value = "20s")]
    latency_grace: humantime::Duration,
    /// Round trip added, for both peers, by an NFQUEUE delay in each
    /// namespace (a second latency series; 0: none).
    #[arg(long, default_value_t = 100)]
    delay_rtt_ms: u64,
    /// Round trip added for an extra Tern-only series through tern-proxy
    /// (UDP only, so Mosquitto cannot get it; 0: none).
    #[arg(long, default_value_t = 0)]
    proxy_rtt_ms: u64,
    /// Time limit of each throughput phase.
    #[arg(long, default_value = "60s")]
    max_time: humantime::Duration,
    /// Skip the raw UDP / raw RocksDB baselines.
    #[arg(long)]
    skip_baselines: bool,
    /// Skip the throughput workloads.
    #[arg(long)]
    skip_throughput: bool,
    /// Skip the latency workloads.
    #[arg(long)]
    skip_latency: bool,
    /// Small counts, for a smoke test.
    #[arg(long)]
    quick: bool,
    /// Fail (exit 1) unless every Tern message arrived exactly once and in
    /// order, every Mosquitto message arrived at 0% loss, and no
    /// throughput phase hit its time limit: the harness as a test.
    #[arg(long)]
    check: bool,
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(a) => run(*a),
        Cmd::Delay {
            queue,
            ms,
            duration,
        } => delay::run(queue, Duration::from_millis(ms), duration.map(Into::into)),
        Cmd::Render { data, out } => {
            let (res, samples) = load(&data)?;
            let files = charts::render(&res, &samples, &out)?;
            for f in files {
                println!("wrote {}", out.join(f).display());
            }
            Ok(())
        }
    }
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Prints a line and keeps it for the record.
struct Out(String);

impl Out {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        let _ = writeln!(self.0, "{}", s.as_ref());
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn tp_line(t: &ThroughputResult) -> String {
    format!(
        "  {:<9} {:<13} {:>8} msg/s  ({} of {} in {:.2}s{}); p50 {:.2} ms p99 {:.2} ms; wire {:.0} B/msg ({:.2} frames/msg); cpu server {:.0}% ({:.1} us/msg), load generator {:.0}%",
        t.peer,
        t.workload,
        fmt_rate(t.rate),
        t.completed,
        t.messages,
        t.elapsed_s,
        if t.timed_out { ", TIME LIMIT" } else { "" },
        t.p50_ms,
        t.p99_ms,
        t.bytes_per_msg(),
        t.wire.packets() as f64 / t.completed.max(1) as f64,
        t.server_cpu_pct,
        t.server_us_per_msg(),
        t.client_cpu_pct
    )
}

fn lat_line(r: &LatencyResult) -> String {
    format!(
        "  {:<12} loss {:>4.0}%: p50 {:>8.2} p90 {:>8.2} p99 {:>8.2} p99.9 {:>8.2} max {:>8.2} ms; delivered {}/{} (dup {}, out of order {}, reconnects {}); wire {:.0} B/msg, {:.2} frames/msg; server cpu {} ms",
        r.peer,
        r.loss * 100.0,
        r.p50_ms,
        r.p90_ms,
        r.p99_ms,
        r.p999_ms,
        r.max_ms,
        r.delivered,
        r.sent,
        r.duplicates,
        r.out_of_order,
        r.reconnects,
        r.bytes_per_msg(),
        r.packets_per_msg(),
        r.server_cpu_ms
    )
}

fn run(mut a: RunArgs) -> Result<()> {
    if a.quick {
        a.messages = a.messages.min(20_000);
        a.offline_messages = a.offline_messages.min(20_000);
        a.latency_messages = a.latency_messages.min(500);
        a.latency_grace = Duration::from_secs(10).into();
        a.max_time = Duration::from_secs(30).into();
    }
    let lab = match &a.netns {
        Some(prefix) => Lab {
            server_ns: Some(format!("{prefix}-s")),
            script: Some(a.lab_script.clone()),
            server_ip: a
                .server_ip
                .unwrap_or_else(|| "10.77.0.1".parse().expect("literal")),
            iface: format!("{prefix}-c0"),
            delay_queue: Default::default(),
        },
        None => Lab {
            server_ns: None,
            script: None,
            server_ip: a
                .server_ip
                .unwrap_or_else(|| "127.0.0.1".parse().expect("literal")),
            iface: "lo".into(),
            delay_queue: Default::default(),
        },
    };
    if lab.server_ns.is_some() && !Path::new(&format!("/sys/class/net/{}", lab.iface)).exists() {
        bail!(
            "interface {} not found: run this inside the client namespace (scripts/netns-lab.sh exec client -- ...)",
            lab.iface
        );
    }
    let losses: Vec<f64> = if lab.can_lose() {
        a.losses.clone()
    } else {
        eprintln!("no namespace lab: latency at 0% loss only");
        vec![0.0]
    };
    let shape = Shape {
        pairs: a.pairs.max(1),
        window: a.window.max(1),
        messages: a.messages,
        offline_messages: a.offline_messages,
        payload: a.payload.max(16),
        latency_messages: a.latency_messages.max(1),
        latency_interval: a.latency_interval.into(),
        latency_grace: a.latency_grace.into(),
        max_time: a.max_time.into(),
    };
    let ternd_bin = a.ternd.clone().unwrap_or_else(|| next_to_exe("ternd"));
    let proxy_bin = a.proxy.clone().unwrap_or_else(|| next_to_exe("tern-proxy"));
    for (what, p) in [("ternd", &ternd_bin), ("mosquitto", &a.mosquitto)] {
        if !p.exists() {
            bail!("{what} not found at {}", p.display());
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let msettings = MosquittoSettings {
        max_inflight: shape.window.min(u16::MAX as usize) as u16,
    };
    let t0 = Instant::now();
    let mut out = Out(String::new());
    let machine = tern_lab::bench::util::machine_line();
    let commit = commit();
    out.line(format!("tern-peerbench: {machine}"));
    out.line(format!("  commit {commit}; network: {}", match &lab.server_ns {
        Some(ns) => format!("namespaces {ns} <-> this one over veth {} (MTU 1500, offloads off), loss by iptables on input both ways", lab.iface),
        None => "loopback (no loss)".into(),
    }));
    out.line(format!(
        "  throughput: {} pairs, {} in flight per sender, {} online + {} offline messages of {} bytes; latency: 1 sender -> 1 receiver, {} messages every {:?} at loss {:?}",
        shape.pairs, shape.window, shape.messages, shape.offline_messages, shape.payload,
        shape.latency_messages, shape.latency_interval, losses
    ));
    lab.set_loss(0.0)?;
    let mut res = RunResults {
        machine: machine.clone(),
        commit: commit.clone(),
        options: format!("{a:?}"),
        network: if lab.server_ns.is_some() {
            "netns".into()
        } else {
            "loopback".into()
        },
        throughput: Vec::new(),
        latency: Vec::new(),
        baselines: Vec::new(),
    };

    if !a.skip_baselines {
        out.line("== Same-run baselines (this process, loopback of the client namespace)");
        let r = tern_lab::bench::relay::raw_relay(
            shape.messages,
            64,
            shape.payload + 16,
            Duration::from_secs(30),
        )
        .map_err(|e| anyhow::anyhow!("raw relay: {e}"))?;
        out.line(format!(
            "  raw UDP relay (client -> relay -> sink -> relay -> client, 64 in flight, no storage): {} msg/s",
            fmt_rate(r.rate())
        ));
        res.baselines.push(BaselineResult {
            name: "raw UDP relay, 64 in flight".into(),
            rate: r.rate(),
            note: format!("{} messages, {} retransmits", r.completed, r.retransmits),
        });
        let dir = lab::scratch("rocks")?;
        let rr = tern_lab::bench::store::raw_rocks(
            &dir.path().join("db"),
            shape.offline_messages,
            1024,
            91,
            shape.pairs as u64,
        )
        .map_err(|e| anyhow::anyhow!("raw rocksdb: {e}"))?;
        out.line(format!(
            "  raw RocksDB, synced WriteBatches of 1024 x 91-byte values: {} entries/s",
            fmt_rate(rr.rate())
        ));
        res.baselines.push(BaselineResult {
            name: "raw RocksDB, sync batches of 1024".into(),
            rate: rr.rate(),
            note: format!("{} entries in {:.2?}", rr.entries, rr.elapsed),
        });
    }

    if !a.skip_throughput {
        out.line("== Throughput (0% loss)");
        {
            let d = Ternd::start(&lab, &ternd_bin)?;
            let t = tern_load::online(&lab, &d, &shape)?;
            out.line(tp_line(&t));
            res.throughput.push(t);
        }
        {
            let m = Mosquitto::start(&lab, &a.mosquitto, &msettings)?;
            let t = rt.block_on(mqtt_load::online(&lab, &m.proc, m.addr, &shape))?;
            out.line(tp_line(&t));
            res.throughput.push(t);
        }
        {
            let d = Ternd::start(&lab, &ternd_bin)?;
            let (s, dr) = tern_load::offline(&lab, &d, &shape)?;
            out.line(tp_line(&s));
            out.line(tp_line(&dr));
            res.throughput.push(s);
            res.throughput.push(dr);
        }
        {
            let m = Mosquitto::start(&lab, &a.mosquitto, &msettings)?;
            let (s, dr) = rt.block_on(mqtt_load::offline(&lab, &m.proc, m.addr, &shape))?;
            {
                out.line("  mosquitto.conf (generated):");
                for l in m.config.lines().filter(|l| !l.starts_with('#')) {
                    out.line(format!("    {l}"));
                }
            }
            let rss = m.proc.rss();
            out.line(tp_line(&s));
            out.line(tp_line(&dr));
            let db = m.persist_dir().join("mosquitto.db");
            out.line(format!(
                "  mosquitto after the drain: RSS {:.1} MB; {} (persistence writes only every autosave_interval = 1800 s and at exit)",
                rss as f64 / 1e6,
                if db.exists() { "mosquitto.db exists" } else { "no mosquitto.db on disk yet" }
            ));
            res.throughput.push(s);
            res.throughput.push(dr);
        }
    }

    let series: Vec<(u64, &str, &str)> = if a.skip_latency {
        Vec::new()
    } else if a.delay_rtt_ms > 0 && lab.can_lose() {
        vec![
            (0, "tern", "mosquitto"),
            (a.delay_rtt_ms, "tern-rtt", "mosquitto-rtt"),
        ]
    } else {
        vec![(0, "tern", "mosquitto")]
    };
    for (si, &(rtt, tern_name, mosq_name)) in series.iter().enumerate() {
        let mut delayers = Vec::new();
        let mut delay_scratch = None;
        if rtt > 0 {
            let me = std::env::current_exe()?;
            let one_way = (rtt / 2).to_string();
            let scratch = lab::scratch("delay")?;
            for (side, mut cmd) in [
                ("server", lab.server_command(&me)),
                ("client", std::process::Command::new(&me)),
            ] {
                cmd.args(["delay", "--queue", "7", "--ms", &one_way]);
                let log = Stderr::File(scratch.path().join(format!("delay-{side}.log")));
                let mut p = ChildProcess::spawn(cmd, &format!("delay ({side})"), log)?
                    .on_drop(OnDrop::Terminate(Duration::from_secs(10)));
                p.wait_for("start delaying", Duration::from_secs(10), |l| {
                    l.starts_with("delaying").then_some(())
                })?;
                delayers.push(p);
            }
            lab.delay_queue
                .store(8, std::sync::atomic::Ordering::Relaxed);
            lab.set_loss(0.0)?;
            delay_scratch = Some(scratch);
        }
        out.line(format!(
            "== Delivery latency under random loss, {} ({} messages, one every {:?}, 1 sender -> 1 online receiver)",
            if rtt > 0 {
                format!("+{rtt} ms RTT for both peers (NFQUEUE delay of {} ms on input in each namespace)", rtt / 2)
            } else {
                "no added delay".to_string()
            },
            shape.latency_messages,
            shape.latency_interval
        ));
        for (li, &loss) in losses.iter().enumerate() {
            let users = (
                100 * si as u64 + 10 + li as u64,
                100 * si as u64 + 20 + li as u64,
            );
            {
                let d = Ternd::start(&lab, &ternd_bin)?;
                let r = tern_load::latency(&lab, &d, d.addr, loss, tern_name, rtt, &shape, users);
                let _ = lab.set_loss(0.0);
                let r = r?;
                out.line(lat_line(&r));
                res.latency.push(r);
            }
            {
                let m = Mosquitto::start(&lab, &a.mosquitto, &msettings)?;
                let r = rt.block_on(mqtt_load::latency(
                    &lab,
                    &m.proc,
                    m.addr,
                    loss,
                    &shape,
                    &format!("{si}-{li}"),
                ));
                let _ = lab.set_loss(0.0);
                let mut r = r?;
                r.peer = mosq_name.into();
                r.added_rtt_ms = rtt;
                out.line(lat_line(&r));
                res.latency.push(r);
            }
            if si == 0 && a.proxy_rtt_ms > 0 && proxy_bin.exists() {
                let d = Ternd::start(&lab, &ternd_bin)?;
                let spec = format!("delay={}us", a.proxy_rtt_ms * 500);
                let p = TernProxy::start(&lab, &proxy_bin, d.addr, &spec)?;
                let r = tern_load::latency(
                    &lab,
                    &d,
                    p.addr,
                    loss,
                    "tern-proxy",
                    a.proxy_rtt_ms,
                    &shape,
                    (30 + li as u64, 40 + li as u64),
                );
                let _ = lab.set_loss(0.0);
                let r = r?;
                out.line(lat_line(&r));
                res.latency.push(r);
            }
        }
        if rtt > 0 {
            lab.delay_queue
                .store(0, std::sync::atomic::Ordering::Relaxed);
            lab.set_loss(0.0)?;
            drop(delayers);
        }
        drop(delay_scratch);
    }

    summary(&mut out, &res);
    out.line(format!("run took {:.0?}", t0.elapsed()));
    let problems = check(&res);
    save(&a.out, &res, &out.0)?;
    println!("results in {}", a.out.display());
    if let Some(dir) = &a.charts {
        let samples: Vec<(String, f64, Vec<u64>)> = res
            .latency
            .iter()
            .map(|r| (r.peer.clone(), r.loss, r.samples.clone()))
            .collect();
        for f in charts::render(&res, &samples, dir)? {
            println!("wrote {}", dir.join(f).display());
        }
    }
    if a.check {
        if problems.is_empty() {
            println!("check: passed (every message delivered; Tern exactly once and in order)");
        } else {
            for p in &problems {
                eprintln!("check: {p}");
            }
            bail!("check failed: {} problem(s)", problems.len());
        }
    }
    Ok(())
}

/// What `--check` refuses.
fn check(res: &RunResults) -> Vec<String> {
    let mut p = Vec::new();
    for t in &res.throughput {
        if t.timed_out || t.completed < t.messages {
            p.push(format!(
                "{} {}: {} of {} completed{}",
                t.peer,
                t.workload,
                t.completed,
                t.messages,
                if t.timed_out { " (time limit)" } else { "" }
            ));
        }
    }
    for r in &res.latency {
        // Under loss a late Mosquitto message is a measurement (TCP backoff
        // can outlast the grace period), not a broken harness.
        let must_deliver = r.peer.starts_with("tern") || r.loss == 0.0;
        if must_deliver && r.delivered < r.sent {
            p.push(format!(
                "{} at {:.0}% loss: {} of {} delivered",
                r.peer,
                r.loss * 100.0,
                r.delivered,
                r.sent
            ));
        }
        if r.peer.starts_with("tern") && (r.duplicates > 0 || r.out_of_order > 0) {
            p.push(format!(
                "{} at {:.0}% loss: {} duplicates, {} out of order",
                r.peer,
                r.loss * 100.0,
                r.duplicates,
                r.out_of_order
            ));
        }
    }
    p
}

fn find<'a>(res: &'a RunResults, peer: &str, w: &str) -> Option<&'a ThroughputResult> {
    res.throughput
        .iter()
        .find(|t| t.peer == peer && t.workload == w)
}

fn summary(out: &mut Out, res: &RunResults) {
    out.line("== Summary (ratios are Tern / Mosquitto, same run)");
    out.line("  | workload | Tern | Mosquitto | ratio | target |");
    out.line("  |---|---|---|---|---|");
    for (w, name, target) in [
        ("online", "online throughput, msg/s", Some(5.0)),
        ("offline-store", "offline store, msg/s (ACK)", None),
        ("offline-drain", "offline drain, msg/s", None),
    ] {
        if let (Some(t), Some(m)) = (find(res, "tern", w), find(res, "mosquitto", w)) {
            let ratio = t.rate / m.rate.max(1e-9);
            out.line(format!(
                "  | {name} | {} | {} | {:.2} | {} |",
                fmt_rate(t.rate),
                fmt_rate(m.rate),
                ratio,
                match target {
                    Some(x) => format!(">= {x}: {}", if ratio >= x { "met" } else { "missed" }),
                    None => "-".into(),
                }
            ));
        }
    }
    for (w, name) in [
        ("online", "online server CPU us/msg"),
        ("offline-store", "offline store server CPU us/msg"),
        ("offline-drain", "offline drain server CPU us/msg"),
    ] {
        if let (Some(t), Some(m)) = (find(res, "tern", w), find(res, "mosquitto", w)) {
            out.line(format!(
                "  | {name} | {:.1} | {:.1} | {:.2} | - |",
                t.server_us_per_msg(),
                m.server_us_per_msg(),
                t.server_us_per_msg() / m.server_us_per_msg().max(1e-9)
            ));
        }
    }
    for (w, name) in [
        ("online", "online wire bytes/msg"),
        ("offline-store", "offline store wire bytes/msg"),
    ] {
        if let (Some(t), Some(m)) = (find(res, "tern", w), find(res, "mosquitto", w)) {
            out.line(format!(
                "  | {name} | {:.0} | {:.0} | {:.2} | - |",
                t.bytes_per_msg(),
                m.bytes_per_msg(),
                t.bytes_per_msg() / m.bytes_per_msg().max(1e-9)
            ));
        }
    }
    let mut losses: Vec<f64> = res.latency.iter().map(|r| r.loss).collect();
    losses.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    losses.dedup();
    for (tp, mp) in [("tern", "mosquitto"), ("tern-rtt", "mosquitto-rtt")] {
        for &l in &losses {
            let t = res.latency.iter().find(|r| r.peer == tp && r.loss == l);
            let m = res.latency.iter().find(|r| r.peer == mp && r.loss == l);
            if let (Some(t), Some(m)) = (t, m) {
                let what = if t.added_rtt_ms > 0 {
                    format!(", +{} ms RTT", t.added_rtt_ms)
                } else {
                    String::new()
                };
                for (q, tv, mv) in [
                    ("p50", t.p50_ms, m.p50_ms),
                    ("p99", t.p99_ms, m.p99_ms),
                    ("p99.9", t.p999_ms, m.p999_ms),
                ] {
                    let target = if q == "p99" && (l - 0.10).abs() < 1e-9 {
                        let r = tv / mv;
                        format!("<= 0.5: {}", if r <= 0.5 { "met" } else { "missed" })
                    } else {
                        "-".into()
                    };
                    out.line(format!(
                    "  | {q} latency at {:.0}% loss{what}, ms | {tv:.2} | {mv:.2} | {:.3} | {target} |",
                    l * 100.0,
                    tv / mv
                ));
                }
                out.line(format!(
                    "  | wire bytes/msg at {:.0}% loss{what} (paced) | {:.0} | {:.0} | {:.2} | - |",
                    l * 100.0,
                    t.bytes_per_msg(),
                    m.bytes_per_msg(),
                    t.bytes_per_msg() / m.bytes_per_msg().max(1e-9)
                ));
                out.line(format!(
                    "  | undelivered at {:.0}% loss{what} | {} | {} | - | - |",
                    l * 100.0,
                    t.sent - t.delivered,
                    m.sent - m.delivered
                ));
            }
        }
    }
    for b in &res.baselines {
        out.line(format!(
            "  | baseline: {} | {} | - | - | - |",
            b.name,
            fmt_rate(b.rate)
        ));
    }
    if let Some(t) = find(res, "tern", "online") {
        if let Some(b) = res.baselines.iter().find(|b| b.name.starts_with("raw UDP")) {
            out.line(format!(
                "  | Tern online / raw UDP relay | {:.2} | | | |",
                t.rate / b.rate.max(1e-9)
            ));
        }
    }
    if let Some(t) = find(res, "tern", "offline-store") {
        if let Some(b) = res
            .baselines
            .iter()
            .find(|b| b.name.starts_with("raw RocksDB"))
        {
            out.line(format!(
                "  | Tern offline store / raw RocksDB | {:.2} | | | |",
                t.rate / b.rate.max(1e-9)
            ));
        }
    }
}

fn save(dir: &Path, res: &RunResults, printed: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Per-run sample files of an earlier run would be stale: remove them.
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if (name.starts_with("latency-") || name.starts_with("timeline-")) && name.ends_with(".csv")
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(res)?)?;
    std::fs::write(dir.join("output.txt"), printed)?;
    let mut tp = String::from("peer,workload,messages,completed,elapsed_s,rate,p50_ms,p99_ms,wire_bytes,wire_frames,bytes_per_msg,server_cpu_pct,client_cpu_pct,timed_out\n");
    for t in &res.throughput {
        let _ = writeln!(
            tp,
            "{},{},{},{},{:.4},{:.1},{:.3},{:.3},{},{},{:.1},{:.1},{:.1},{}",
            t.peer,
            t.workload,
            t.messages,
            t.completed,
            t.elapsed_s,
            t.rate,
            t.p50_ms,
            t.p99_ms,
            t.wire.bytes(),
            t.wire.packets(),
            t.bytes_per_msg(),
            t.server_cpu_pct,
            t.client_cpu_pct,
            t.timed_out
        );
    }
    std::fs::write(dir.join("throughput.csv"), tp)?;
    let mut lat = String::from("peer,loss,added_rtt_ms,sent,delivered,duplicates,out_of_order,reconnects,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,wire_bytes,wire_frames,bytes_per_msg\n");
    for r in &res.latency {
        let _ = writeln!(
            lat,
            "{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{:.1}",
            r.peer,
            r.loss,
            r.added_rtt_ms,
            r.sent,
            r.delivered,
            r.duplicates,
            r.out_of_order,
            r.reconnects,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            r.wire.bytes(),
            r.wire.packets(),
            r.bytes_per_msg()
        );
        // The CDF: every delivered message's latency, sorted, in microseconds.
        let mut s = String::from("latency_us\n");
        for v in &r.samples {
            let _ = writeln!(s, "{v}");
        }
        std::fs::write(dir.join(sample_file(&r.peer, r.loss)), s)?;
        // The same messages in arrival order, with their scheduled time.
        let mut s = String::from("scheduled_us,latency_us\n");
        for (t, v) in &r.timeline {
            let _ = writeln!(s, "{t},{v}");
        }
        std::fs::write(
            dir.join(sample_file(&r.peer, r.loss).replace("latency-", "timeline-")),
            s,
        )?;
    }
    std::fs::write(dir.join("latency.csv"), lat)?;
    Ok(())
}

fn sample_file(peer: &str, loss: f64) -> String {
    format!(
        "latency-{peer}-loss{:02}.csv",
        (loss * 100.0).round() as u32
    )
}

/// Latency samples of each run: (peer, loss, sorted microseconds).
type Samples = Vec<(String, f64, Vec<u64>)>;

fn load(dir: &Path) -> Result<(RunResults, Samples)> {
    let text = std::fs::read_to_string(dir.join("results.json"))
        .with_context(|| format!("reading {}", dir.join("results.json").display()))?;
    let res: RunResults = serde_json::from_str(&text)?;
    let mut samples = Vec::new();
    for r in &res.latency {
        let p = dir.join(sample_file(&r.peer, r.loss));
        let s = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let v: Vec<u64> = s
            .lines()
            .skip(1)
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        samples.push((r.peer.clone(), r.loss, v));
    }
    Ok((res, samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::WireOut;

    fn lat(peer: &str, loss: f64, samples: Vec<u64>, sent: u64) -> LatencyResult {
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

    #[test]
    fn percentiles_are_nearest_rank() {
        let r = lat(
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

    #[test]
    fn receipts_count_duplicates_and_order() {
        let mut rc = tern_load::Receipts::new(4);
        let p = |i: u64| tern_load::payload(i * 1000, i, 32);
        assert!(rc.arrive(5_000, &p(1)));
        assert!(rc.arrive(6_000, &p(0)));
        assert!(!rc.arrive(7_000, &p(1)));
        assert!(!rc.arrive(7_000, &p(9)), "index out of range is ignored");
        assert!(!rc.arrive(7_000, b"short"));
        assert_eq!(rc.duplicates, 1);
        assert_eq!(rc.out_of_order, 1);
        assert_eq!(rc.samples, vec![4_000, 6_000]);
        assert_eq!(rc.timeline, vec![(1_000, 4_000), (0, 6_000)]);
    }

    #[test]
    fn check_flags_missing_and_duplicate_messages() {
        let mut res = RunResults {
            machine: String::new(),
            commit: String::new(),
            options: String::new(),
            network: "loopback".into(),
            throughput: vec![ThroughputResult {
                peer: "tern".into(),
                workload: "online".into(),
                messages: 10,
                completed: 10,
                elapsed_s: 1.0,
                rate: 10.0,
                p50_ms: 1.0,
                p99_ms: 2.0,
                wire: WireOut::default(),
                server_cpu_pct: 50.0,
                client_cpu_pct: 10.0,
                timed_out: false,
            }],
            latency: vec![
                lat("tern", 0.1, vec![1000; 5], 5),
                lat("mosquitto", 0.0, vec![1000; 4], 5),
                // Late under loss: a measurement, not a failure.
                lat("mosquitto", 0.2, vec![1000; 3], 5),
            ],
            baselines: Vec::new(),
        };
        assert_eq!(check(&res).len(), 1, "{:?}", check(&res));
        res.latency[0].duplicates = 1;
        assert_eq!(check(&res).len(), 2);
        assert!((res.throughput[0].server_us_per_msg() - 50_000.0).abs() < 1e-6);
    }

    #[test]
    fn results_survive_json_and_render() {
        let res = RunResults {
            machine: "m".into(),
            commit: "c".into(),
            options: String::new(),
            network: "loopback".into(),
            throughput: vec![ThroughputResult {
                peer: "mosquitto".into(),
                workload: "offline-drain".into(),
                messages: 10,
                completed: 10,
                elapsed_s: 1.0,
                rate: 10.0,
                p50_ms: f64::NAN,
                p99_ms: f64::NAN,
                wire: WireOut::default(),
                server_cpu_pct: 50.0,
                client_cpu_pct: 10.0,
                timed_out: false,
            }],
            latency: vec![
                lat("tern", 0.0, vec![500, 900, 1200], 3),
                lat("mosquitto", 0.0, vec![800, 1500], 3),
            ],
            baselines: Vec::new(),
        };
        let dir = lab::scratch("test").expect("scratch");
        save(dir.path(), &res, "printed\n").expect("save");
        let (back, samples) = load(dir.path()).expect("load");
        assert!(back.throughput[0].p50_ms.is_nan());
        assert_eq!(samples[0].2, vec![500, 900, 1200]);
        let files = charts::render(&back, &samples, &dir.path().join("charts")).expect("render");
        assert_eq!(files.len(), 3);
        for f in files {
            let svg = std::fs::read_to_string(dir.path().join("charts").join(f)).expect("svg");
            assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        }
    }
}
