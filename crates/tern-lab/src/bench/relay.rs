//! `tern-bench relay`: online relay throughput, end to end with both ACKs
//! (the sender's stored ACK and the receiver's delivery), many sender and
//! receiver pairs, against a naive raw-UDP relay measured in the same run
//! ([`super::raw_relay`]).
//!
//! Tern runs in the daemon's default configuration (sealed sessions,
//! address validation on); `--seal clear` measures clear raw UDP instead,
//! and `--seal both` measures sealed, clear and sealed again between the
//! same baselines, so the two can be compared in one run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::flow::{run_flow_with_cpu, FlowReport, FlowSpec};
use super::raw_relay::{print_raw, raw_relay};
use super::seal::{SealMode, Sealing};
use super::util::{fmt_cpu, fmt_latency, machine_line, rate, si, ScratchDir, Target};
use super::{BenchError, Result};
use tern::server::Snapshot;

/// Options of `tern-bench relay`.
#[derive(Debug, Clone)]
pub struct RelayOpts {
    /// Sender/receiver pairs.
    pub pairs: usize,
    /// Messages in flight per sender.
    pub window: usize,
    /// Messages in all (split over the pairs).
    pub messages: u64,
    /// Payload bytes.
    pub payload: usize,
    /// Time limit of each measured run.
    pub max_time: Duration,
    /// Messages in flight in the raw-UDP baseline (0: as many as tern has,
    /// pairs × window).
    pub baseline_window: usize,
    /// An external daemon (address, data folder for its token secret)
    /// instead of one in this process.
    pub server: Option<(SocketAddr, PathBuf)>,
    /// Folder for the in-process daemon's data (default: the temp folder).
    pub dir: Option<PathBuf>,
    /// Keep the data folder.
    pub keep: bool,
    /// Sealed (the default), clear, or both alternated.
    pub seal: SealMode,
}

/// One measured tern run.
struct TernRun {
    sealing: Sealing,
    report: FlowReport,
    groups: Vec<(&'static str, Duration)>,
    snapshot: Option<Snapshot>,
}

impl TernRun {
    fn rate(&self) -> f64 {
        rate(
            self.report.stored.min(self.report.delivered),
            self.report.elapsed,
        )
    }
}

/// The order of tern runs: with both, sealed before and after clear, so
/// drift on the shared machine shows in the sealed pair.
fn schedule(mode: SealMode) -> Vec<Sealing> {
    match mode {
        SealMode::Both => vec![Sealing::Sealed, Sealing::Clear, Sealing::Sealed],
        m => m.modes().to_vec(),
    }
}

fn tern_run(opts: &RelayOpts, sealing: Sealing, pairs: usize, per_sender: u64) -> Result<TernRun> {
    let scratch;
    let target = match &opts.server {
        Some((addr, data)) => Target::external(*addr, data, sealing)?,
        None => {
            scratch = ScratchDir::new(opts.dir.as_deref(), "relay", opts.keep)?;
            Target::in_process(scratch.path(), sealing, |_| {})?
        }
    };
    let spec = FlowSpec {
        window: opts.window,
        payload: opts.payload,
        max_time: opts.max_time,
        ..FlowSpec::pairs(target.user_base, pairs, per_sender, true)
    };
    let (report, groups) = run_flow_with_cpu(&target, spec)?;
    let snapshot = target.stop()?;
    Ok(TernRun {
        sealing,
        report,
        groups,
        snapshot,
    })
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &RelayOpts) -> Result<()> {
    let pairs = opts.pairs.max(1);
    let per_sender = (opts.messages / pairs as u64).max(1);
    let messages = per_sender * pairs as u64;
    println!("tern-bench relay: {}", machine_line());
    println!(
        "  {pairs} sender/receiver pairs, {} in flight per sender, {messages} messages of {} bytes, limit {:?}",
        opts.window, opts.payload, opts.max_time
    );
    let runs = schedule(opts.seal);
    if opts.server.is_some() && opts.seal == SealMode::Both {
        return Err(BenchError::Failed(
            "--seal both needs the in-process daemon: an external one keeps its own seal policy (use --seal sealed or --seal clear)".into(),
        ));
    }
    for s in [Sealing::Sealed, Sealing::Clear] {
        if runs.contains(&s) {
            match opts.server {
                Some(_) => println!(
                    "  tern {}: external daemon (its own config), clients {}",
                    s.label(),
                    s.label()
                ),
                None => println!("  tern {}: {}", s.label(), s.describe()),
            }
        }
    }

    // The baseline as in the reference figures (64 in flight), then with as
    // many in flight as tern gets, before and after tern, so drift on the
    // shared machine shows.
    let matched = if opts.baseline_window == 0 {
        pairs * opts.window
    } else {
        opts.baseline_window
    };
    let size = opts.payload + 16;
    let base0 = raw_relay(messages, 64, size, opts.max_time)?;
    print_raw(
        &format!("baseline raw-UDP relay, 64 in flight ({size}-byte datagrams, 4 datagrams/msg)"),
        &base0,
    );
    let base1 = raw_relay(messages, matched, size, opts.max_time)?;
    print_raw(
        &format!("baseline raw-UDP relay, {matched} in flight, run 1"),
        &base1,
    );
    let mut terns = Vec::new();
    for s in runs {
        terns.push(tern_run(opts, s, pairs, per_sender)?);
    }
    let base2 = raw_relay(messages, matched, size, opts.max_time)?;
    print_raw(
        &format!("baseline raw-UDP relay, {matched} in flight, run 2"),
        &base2,
    );
    let base_rate = (base1.rate() + base2.rate()) / 2.0;
    for t in &terns {
        print_tern(t, matched, base_rate, base0.rate())?;
    }
    let mean = |s: Sealing| {
        let r: Vec<f64> = terns
            .iter()
            .filter(|t| t.sealing == s)
            .map(TernRun::rate)
            .collect();
        (!r.is_empty()).then(|| r.iter().sum::<f64>() / r.len() as f64)
    };
    if let (Some(sealed), Some(clear)) = (mean(Sealing::Sealed), mean(Sealing::Clear)) {
        println!(
            "  summary: sealed {} msg/s (mean of its runs) = {:.2}x the raw-UDP relay (target >= 2: {}); clear {} msg/s = {:.2}x; sealed / clear {:.2}",
            si(sealed),
            sealed / base_rate.max(1e-9),
            if sealed >= 2.0 * base_rate { "met" } else { "missed" },
            si(clear),
            clear / base_rate.max(1e-9),
            sealed / clear.max(1e-9),
        );
    }
    Ok(())
}

fn print_tern(t: &TernRun, matched: usize, base_rate: f64, base0_rate: f64) -> Result<()> {
    let report = &t.report;
    let label = t.sealing.label();
    let done = report.stored.min(report.delivered);
    let tern_rate = t.rate();
    println!(
        "  tern {label}: {} msg/s end to end ({} stored ACKs, {}/{} delivered, {} receipts to senders, in {:.2?}{}); stored-ACK rate alone {} msg/s",
        si(tern_rate),
        report.stored,
        report.delivered,
        report.expected_deliveries,
        report.receipts,
        report.elapsed,
        if report.timed_out { ", TIME LIMIT HIT" } else { "" },
        si(rate(report.stored, report.stored_elapsed)),
    );
    println!(
        "  ratio tern {label} / baseline with {matched} in flight (mean of runs 1 and 2, {} msg/s): {:.2}; tern {label} / baseline with 64 in flight: {:.2}",
        si(base_rate),
        tern_rate / base_rate.max(1e-9),
        tern_rate / base0_rate.max(1e-9)
    );
    println!(
        "  tern {label} latency, submit to stored ACK: {}",
        fmt_latency(&report.stored_latency)
    );
    println!(
        "  tern {label} latency, submit to delivery:   {}",
        fmt_latency(&report.delivery_latency)
    );
    let sw = report.sender_wire;
    let rw = report.receiver_wire;
    let per = |v: u64| v as f64 / done.max(1) as f64;
    println!(
        "  tern {label} datagrams per message: senders out {:.2} in {:.2}, receivers in {:.2} out {:.2} (total {:.2}; baseline 4); bytes per message {:.0}",
        per(sw.datagrams_out),
        per(sw.datagrams_in),
        per(rw.datagrams_in),
        per(rw.datagrams_out),
        per(sw.datagrams_out + sw.datagrams_in + rw.datagrams_in + rw.datagrams_out),
        per(sw.bytes_out + sw.bytes_in + rw.bytes_in + rw.bytes_out),
    );
    if let Some(s) = &t.snapshot {
        let c = s.commits;
        println!(
            "  daemon ({label}): {} datagrams in, {} out, {} entries stored (messages + receipts), {} fsyncs ({:.1} entries/fsync), {} uplink duplicates, {} sessions lost",
            s.broker.datagrams_in,
            s.broker.datagrams_out,
            s.broker.stored,
            c.fsyncs,
            s.broker.stored as f64 / c.fsyncs.max(1) as f64,
            s.broker.uplink_duplicates,
            report.disconnects,
        );
        let w = report.elapsed.as_secs_f64().max(1e-9);
        println!(
            "  cpu ({label}, % of one core over the run): {}; load generator senders {:.0}%, receivers {:.0}%",
            fmt_cpu(&t.groups, report.elapsed),
            100.0 * report.sender_cpu.as_secs_f64() / w,
            100.0 * report.receiver_cpu.as_secs_f64() / w,
        );
    }
    if report.disconnects > 0 || report.timed_out {
        return Err(BenchError::Failed(format!(
            "{label} run incomplete: {} disconnects, time limit hit: {}",
            report.disconnects, report.timed_out
        )));
    }
    Ok(())
}
