//! `tern-bench transports`: the cost of transport security, raw UDP
//! (plaintext) against QUIC (TLS 1.3) in the same run, through the same
//! client library and the same daemon code.
//!
//! Each column ([`super::columns::Column`]) gets its own in-process daemon,
//! configured as that transport needs. Two measurements per column:
//!
//! 1. **Throughput** (like `tern-bench relay`, online receivers, both
//!    application ACKs): sender/receiver pairs, a window of messages in
//!    flight per sender; a message counts once its sender has the stored ACK
//!    and its receiver has the message.
//! 2. **Latency at a moderate fixed rate**: submit → arrival at the
//!    receiving application, p50/p99/p99.9.
//!
//! Rounds alternate the column order (A B, B A, …) so that drift on the
//! shared machine does not favour one column. Adding a transport is one
//! more entry in [`columns`].

use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::clients::{fixed_rate, load_runtime, throughput, LoadReport, Pairs};
use super::columns::{Column, QUIC, RAW_UDP, SEALED_UDP};
use super::daemon::{data_base, socket_drops, udp_rcvbuf_errors, Daemon};
use super::util::{histogram, loop_and_load_cpu, machine_line, rate, si, threads_cpu, ScratchDir};
use super::Result;

/// Options of `tern-bench transports`.
#[derive(Debug, Clone)]
pub struct TransportsOpts {
    /// Sender/receiver pairs.
    pub pairs: usize,
    /// Messages in flight per sender (throughput runs).
    pub window: usize,
    /// Messages per throughput run (split over the pairs).
    pub messages: u64,
    /// Payload bytes (at least 16).
    pub payload: usize,
    /// Total messages per second of the latency runs.
    pub rate: f64,
    /// Length of each latency run.
    pub duration: Duration,
    /// Rounds (each runs every column once, in alternating order).
    pub rounds: usize,
    /// Time limit of each throughput run.
    pub max_time: Duration,
    /// Folder for the daemons' data (default: the temp folder).
    pub dir: Option<PathBuf>,
    /// Keep the data folders.
    pub keep: bool,
}

/// The columns, in print order.
pub fn columns() -> Vec<Column> {
    vec![RAW_UDP, SEALED_UDP, QUIC]
}

#[derive(Default)]
struct ColumnResult {
    rates: Vec<f64>,
    throughput_latency: Option<Histogram<u64>>,
    delivery: Option<Histogram<u64>>,
    stored: Option<Histogram<u64>>,
    loop_us_per_msg: Vec<f64>,
    load_us_per_msg: Vec<f64>,
    disconnects: u64,
    incomplete: bool,
    rcvbuf_drops: u64,
    daemon_drops: u64,
}

impl ColumnResult {
    /// What every run adds: drops, lost sessions, incompleteness.
    fn count(&mut self, r: &LoadReport, daemon_drops: u64, rcvbuf_drops: u64) {
        self.daemon_drops += daemon_drops;
        self.rcvbuf_drops += rcvbuf_drops;
        self.disconnects += r.disconnects;
        self.incomplete |= r.incomplete;
    }
}

/// (round, column) in run order: every column once per round, in order on
/// even rounds and reversed on odd ones.
fn schedule(rounds: usize, columns: usize) -> Vec<(usize, usize)> {
    (0..rounds)
        .flat_map(|round| {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..columns).collect()
            } else {
                (0..columns).rev().collect()
            };
            order.into_iter().map(move |ci| (round, ci))
        })
        .collect()
}

/// UDP receive-buffer drop counters at the start of a run.
struct Drops {
    daemon: u64,
    system: u64,
}

impl Drops {
    fn start(d: &Daemon, c: &Column) -> Drops {
        Drops {
            daemon: socket_drops(c.socket(d)),
            system: udp_rcvbuf_errors(),
        }
    }

    /// Drops since the start: (at the daemon's socket, system-wide).
    fn since(&self, d: &Daemon, c: &Column) -> (u64, u64) {
        (
            socket_drops(c.socket(d)).saturating_sub(self.daemon),
            udp_rcvbuf_errors().saturating_sub(self.system),
        )
    }
}

fn add(into: &mut Option<Histogram<u64>>, h: &Histogram<u64>) {
    let t = into.get_or_insert_with(histogram);
    let _ = t.add(h);
}

fn q(h: &Option<Histogram<u64>>, quantile: f64) -> String {
    match h {
        Some(h) if !h.is_empty() => {
            format!("{:.2} ms", h.value_at_quantile(quantile) as f64 / 1000.0)
        }
        _ => "-".into(),
    }
}

/// CPU (us per completed message) of the column's daemon loop and of the
/// load generator's runtime between two snapshots.
fn cpu_per_msg(
    before: &std::collections::HashMap<i32, (String, Duration)>,
    after: &std::collections::HashMap<i32, (String, Duration)>,
    loop_tid: i32,
    messages: u64,
) -> (f64, f64) {
    let (daemon, load) = loop_and_load_cpu(before, after, loop_tid);
    let m = messages.max(1) as f64;
    (daemon.as_secs_f64() * 1e6 / m, load.as_secs_f64() * 1e6 / m)
}

fn line(kind: &str, col: &Column, r: &LoadReport, extra: &str) {
    println!(
        "  {kind:<10} {:<22} {} msg/s ({}/{} stored, {} delivered, {} receipts, {:.2?}{}); delivery p50 {} p99 {}{extra}",
        col.name,
        si(rate(r.completed(), r.elapsed)),
        r.stored,
        r.submitted,
        r.delivered,
        r.receipts,
        r.elapsed,
        if r.incomplete { ", INCOMPLETE" } else { "" },
        q(&Some(r.delivery_latency.clone()), 0.5),
        q(&Some(r.delivery_latency.clone()), 0.99),
    );
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &TransportsOpts) -> Result<()> {
    let cols = columns();
    let pairs = opts.pairs.max(1);
    let per_sender = (opts.messages / pairs as u64).max(1);
    println!("tern-bench transports: {}", machine_line());
    println!(
        "  {pairs} sender/receiver pairs through the client library (tern::client::Client), one daemon per column in this process, {} rounds (column order alternates)",
        opts.rounds.max(1)
    );
    println!(
        "  throughput: {} messages of {} bytes per run, {} in flight per sender, limit {:?}; latency: {} msg/s in all for {:?}",
        per_sender * pairs as u64,
        opts.payload,
        opts.window,
        opts.max_time,
        opts.rate,
        opts.duration
    );
    let (base_dir, where_) = data_base(opts.dir.as_deref());
    println!("  daemons: default config plus what each transport needs; {where_}");
    let mut scratch = Vec::new();
    let mut daemons = Vec::new();
    for (i, c) in cols.iter().enumerate() {
        let s = ScratchDir::new(base_dir.as_deref(), &format!("transports-{i}"), opts.keep)?;
        daemons.push(Daemon::start(s.path(), c.daemon)?);
        scratch.push(s);
    }
    let rt = load_runtime()?;
    let mut results: Vec<ColumnResult> = cols.iter().map(|_| ColumnResult::default()).collect();
    let mut base = 1u64;
    let rounds = opts.rounds.max(1);
    for (round, ci) in schedule(rounds, cols.len()) {
        let (c, d) = (&cols[ci], &daemons[ci]);
        let p = rt.block_on(Pairs::connect(d, c, base, pairs))?;
        base += 2 * pairs as u64 + 16;
        let before = threads_cpu();
        let drops = Drops::start(d, c);
        let (r, p) = rt.block_on(throughput(
            p,
            per_sender,
            opts.window,
            opts.payload,
            opts.max_time,
        ))?;
        let after = threads_cpu();
        let (dd, drops) = drops.since(d, c);
        rt.block_on(p.close());
        let (dl, lg) = cpu_per_msg(&before, &after, d.loop_tid, r.completed());
        let res = &mut results[ci];
        res.count(&r, dd, drops);
        res.rates.push(rate(r.completed(), r.elapsed));
        add(&mut res.throughput_latency, &r.stored_latency);
        res.loop_us_per_msg.push(dl);
        res.load_us_per_msg.push(lg);
        line(
            &format!("run {}", round + 1),
            c,
            &r,
            &format!("; cpu per message: daemon loop {dl:.1} us, load generator {lg:.1} us; UDP receive-buffer drops: daemon socket {dd}, system-wide {drops}"),
        );
    }
    for (round, ci) in schedule(rounds, cols.len()) {
        let (c, d) = (&cols[ci], &daemons[ci]);
        let p = rt.block_on(Pairs::connect(d, c, base, pairs))?;
        base += 2 * pairs as u64 + 16;
        let drops = Drops::start(d, c);
        let (r, p) = rt.block_on(fixed_rate(
            p,
            opts.rate,
            opts.duration,
            opts.payload,
            Duration::from_secs(10),
        ))?;
        let (dd, drops) = drops.since(d, c);
        rt.block_on(p.close());
        let res = &mut results[ci];
        res.count(&r, dd, drops);
        add(&mut res.delivery, &r.delivery_latency);
        add(&mut res.stored, &r.stored_latency);
        line(
            &format!("latency {}", round + 1),
            c,
            &r,
            &format!("; UDP receive-buffer drops: daemon socket {dd}, system-wide {drops}"),
        );
    }
    drop(rt);
    for (c, d) in cols.iter().zip(daemons) {
        let s = d.stop()?;
        let b = &s.broker;
        println!(
            "  daemon {:<22} {} datagrams in, {} out, {} entries stored, {} fsyncs, {} uplink duplicates (retransmits it already had)",
            c.name, b.datagrams_in, b.datagrams_out, b.stored, s.commits.fsyncs, b.uplink_duplicates
        );
    }
    drop(scratch);

    // The table.
    let w = 22;
    let mut header = format!("  {:<34}", "");
    for c in &cols {
        header.push_str(&format!("{:>w$}", c.name));
    }
    println!();
    println!("{header}");
    let row = |label: &str, f: &dyn Fn(&ColumnResult) -> String| {
        let mut s = format!("  {label:<34}");
        for r in &results {
            s.push_str(&format!("{:>w$}", f(r)));
        }
        println!("{s}");
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let base_rate = mean(&results[0].rates);
    row("messages/s (mean of runs)", &|r| si(mean(&r.rates)));
    row("messages/s (each run)", &|r| {
        r.rates
            .iter()
            .map(|x| si(*x))
            .collect::<Vec<_>>()
            .join(" / ")
    });
    row("ratio to raw UDP", &|r| {
        format!("{:.2}", mean(&r.rates) / base_rate.max(1e-9))
    });
    row("stored ACK p50 under load", &|r| {
        q(&r.throughput_latency, 0.5)
    });
    row("stored ACK p99 under load", &|r| {
        q(&r.throughput_latency, 0.99)
    });
    row("daemon loop cpu per msg", &|r| {
        format!("{:.1} us", mean(&r.loop_us_per_msg))
    });
    row("load generator cpu per msg", &|r| {
        format!("{:.1} us", mean(&r.load_us_per_msg))
    });
    let lat = format!("delivery @ {} msg/s", si(opts.rate));
    row(&format!("{lat} p50"), &|r| q(&r.delivery, 0.5));
    row(&format!("{lat} p99"), &|r| q(&r.delivery, 0.99));
    row(&format!("{lat} p99.9"), &|r| q(&r.delivery, 0.999));
    row("stored ACK @ fixed rate p99", &|r| q(&r.stored, 0.99));
    row("UDP rcvbuf drops, daemon socket", &|r| {
        r.daemon_drops.to_string()
    });
    row("UDP rcvbuf drops, system-wide", &|r| {
        r.rcvbuf_drops.to_string()
    });
    row("sessions lost / incomplete", &|r| {
        format!(
            "{} / {}",
            r.disconnects,
            if r.incomplete { "yes" } else { "no" }
        )
    });
    let p99 = |r: &ColumnResult| {
        r.delivery
            .as_ref()
            .filter(|h| !h.is_empty())
            .map_or(0.0, |h| h.value_at_quantile(0.99) as f64)
    };
    let b99 = p99(&results[0]);
    row("delivery p99 ratio to raw UDP", &|r| {
        format!("{:.2}", p99(r) / b99.max(1.0))
    });
    if results.iter().any(|r| r.incomplete || r.disconnects > 0) {
        return Err(super::BenchError::Failed(
            "a run was incomplete or lost sessions (see above)".into(),
        ));
    }
    Ok(())
}
