//! `tern-bench live-fanout`: a 1,000-member group with every member device
//! online (sessions sharing sockets, [`Mux`]); a few senders post into it;
//! deliveries per second (entries of another user's message received by a
//! member device) and post-to-delivery latency. Past the write fan-out
//! threshold (500), so a message is stored once and online members get it
//! as a live entry (`proto-spec/groups.md`, "Fan-out").
//!
//! Baseline in the same run, same daemon, same logged-in devices: the
//! one-to-one relay, `tern-bench relay`'s setup (16 sender/receiver pairs,
//! 64 messages in flight per sender), in messages delivered per second.
//! Goal: at least as many group deliveries per second as the relay
//! delivers messages. The daemon is the real `ternd` (child process,
//! default configuration: sealed sessions, RocksDB on disk under `--dir`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tern_core::client::{ClientEvent, Outgoing};
use tern_core::wire::{ConvKind, ConvRef, SyncBody};

use super::group_setup::{create_group, device_config, drive, group_ref, login_one, post};
use super::mux::Mux;
use super::util::{fmt_latency, histogram, machine_line, rate, si, ScratchDir};
use super::{BenchError, Result};
use crate::process::{proc_cpu, OnDrop, Stderr};
use crate::ternd::{locate_ternd, TerndConfig};
use tern::config::Config;

/// Options of `tern-bench live-fanout`.
#[derive(Debug, Clone)]
pub struct LiveFanoutOpts {
    /// Members of the group, all online.
    pub members: usize,
    /// Members that post.
    pub senders: usize,
    /// Posts in each measured run, split over the senders.
    pub messages: u64,
    /// Posts in flight per sender.
    pub window: usize,
    /// Sender/receiver pairs of the one-to-one baseline.
    pub pairs: usize,
    /// Messages in flight per baseline sender.
    pub pair_window: usize,
    /// Messages in each baseline run, split over the pairs.
    pub baseline_messages: u64,
    /// Payload bytes (the first 8 carry the send time).
    pub payload: usize,
    /// UDP sockets the devices share.
    pub sockets: usize,
    /// Runs of each (alternating, baseline first).
    pub rounds: usize,
    /// Time limit of each phase.
    pub max_time: Duration,
    /// The ternd binary (default: next to this one).
    pub ternd: Option<PathBuf>,
    /// Folder for the daemon's data.
    pub dir: Option<PathBuf>,
    /// Keep the data folder.
    pub keep: bool,
}

/// What one measured run did.
struct Run {
    posted: u64,
    delivered: u64,
    expected: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    daemon_cpu: Duration,
}

impl Run {
    fn per_sec(&self) -> f64 {
        rate(self.delivered, self.elapsed)
    }

    fn print(&self, what: &str) {
        println!(
            "  {what}: {} posted, {} of {} deliveries in {:.2?} = {} deliveries/s; daemon CPU {:.1} us per delivery",
            self.posted,
            self.delivered,
            self.expected,
            self.elapsed,
            si(self.per_sec()),
            self.daemon_cpu.as_secs_f64() * 1e6 / self.delivered.max(1) as f64
        );
        println!("    post to delivery: {}", fmt_latency(&self.latency));
    }
}

/// Senders (device index, conversation, posts) keep `window` posts in
/// flight each; an entry counts as a delivery when it is a message of
/// `kind` from another user than the receiving device's. Ends when
/// `expected` deliveries came, or after `max_time`.
#[allow(clippy::too_many_arguments)]
fn measure(
    mux: &mut Mux,
    users: &[u64],
    senders: &[(usize, ConvRef, u64)],
    kind: ConvKind,
    window: usize,
    payload: usize,
    expected: u64,
    max_time: Duration,
    pid: u32,
) -> Result<Run> {
    let mut left: Vec<u64> = senders.iter().map(|s| s.2).collect();
    let mut in_flight = vec![0usize; senders.len()];
    let slot_of: std::collections::HashMap<usize, usize> =
        senders.iter().enumerate().map(|(k, s)| (s.0, k)).collect();
    let mut run = Run {
        posted: 0,
        delivered: 0,
        expected,
        elapsed: Duration::ZERO,
        latency: histogram(),
        daemon_cpu: Duration::ZERO,
    };
    let cpu0 = proc_cpu(pid);
    let t0 = Instant::now();
    let mut last = t0;
    let mut events = Vec::new();
    while run.delivered < expected && t0.elapsed() < max_time {
        for (k, &(dev, conv, _)) in senders.iter().enumerate() {
            while in_flight[k] < window && left[k] > 0 {
                let now = mux.now();
                let mut op = post(0, now.as_micros(), payload);
                if let Outgoing::Post { conv: c, .. } = &mut op {
                    *c = conv;
                }
                let c = mux
                    .conn(dev)
                    .ok_or_else(|| BenchError::Failed("a sender is not logged in".into()))?;
                if c.submit(now, op).is_err() {
                    break;
                }
                in_flight[k] += 1;
                left[k] -= 1;
                run.posted += 1;
            }
        }
        mux.turn(Duration::from_millis(2), &mut events)?;
        let now = mux.now().as_micros();
        for (i, ev) in events.drain(..) {
            match ev {
                ClientEvent::Stored { .. } | ClientEvent::Rejected { .. } => {
                    if let ClientEvent::Rejected { code, .. } = ev {
                        return Err(BenchError::Failed(format!("a post was refused: {code}")));
                    }
                    if let Some(&k) = slot_of.get(&i) {
                        in_flight[k] = in_flight[k].saturating_sub(1);
                    }
                }
                ClientEvent::Entry(e) if e.conv.kind == kind && e.from_user != users[i] => {
                    if let SyncBody::Message { payload, .. } = &e.body {
                        if let Some(b) = payload.get(..8) {
                            let sent = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                            run.latency.saturating_record(now.saturating_sub(sent));
                        }
                        run.delivered += 1;
                        last = Instant::now();
                    }
                }
                _ => {}
            }
        }
    }
    run.elapsed = last.duration_since(t0);
    run.daemon_cpu = proc_cpu(pid).saturating_sub(cpu0);
    Ok(run)
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &LiveFanoutOpts) -> Result<()> {
    let n = opts.members.max(2 * opts.pairs).max(opts.senders + 1);
    let ternd =
        locate_ternd(opts.ternd.as_deref()).map_err(|e| BenchError::Failed(e.to_string()))?;
    let scratch = ScratchDir::new(opts.dir.as_deref(), "live-fanout", opts.keep)?;
    let data = scratch.path().join("ternd");
    let mut cfg = Config::default();
    cfg.server.data_dir = data.clone();
    let keys = tern::server::load_keys(&cfg)?;
    println!("tern-bench live-fanout: {}", machine_line());
    let mut server = TerndConfig::new(&ternd, &data)
        // QUIC as a user runs it: on, next to raw UDP.
        .quic_as_configured()
        .stderr(Stderr::Inherit)
        .env("RUST_LOG", "warn")
        .on_drop(OnDrop::Terminate(Duration::from_secs(10)))
        .start()
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let pid = server.pid().expect("just started");
    let seal = server.seal_key();
    let addr: SocketAddr = server.addr();
    let users: Vec<u64> = (1..=n as u64).collect();
    let mut mux = Mux::new(addr, opts.sockets)?;
    for &u in &users {
        let mut c = device_config(&keys, seal, u, 1);
        c.auto_pull = true; // online devices take everything
        mux.add(c);
    }
    login_one(&mut mux, 0, opts.max_time)?;
    let group = create_group(&mut mux, 0, &users[1..], opts.max_time)?;
    let mut online = 1usize;
    for i in 1..n {
        mux.login(i);
    }
    drive(
        &mut mux,
        opts.max_time,
        "logging every member in",
        |_, _, ev| {
            online += usize::from(matches!(ev, ClientEvent::LoggedIn { .. }));
            Ok(online >= n)
        },
    )?;
    // Let the membership entries of the first members drain.
    let settle = Instant::now() + Duration::from_secs(2);
    let mut events = Vec::new();
    while Instant::now() < settle {
        mux.turn(Duration::from_millis(5), &mut events)?;
        events.clear();
    }
    println!(
        "  daemon {} (pid {pid}), default configuration ({}), data under {}",
        ternd.display(),
        if seal.is_some() {
            "sealed sessions"
        } else {
            "clear sessions"
        },
        data.display()
    );
    println!(
        "  group of {n} members ({}), every member device online over {} shared sockets; {} senders post {} messages of {} bytes per run, {} in flight each",
        if n > 500 { "read fan-out: past the default threshold of 500" } else { "write fan-out: at most the default threshold of 500" },
        opts.sockets, opts.senders, opts.messages, opts.payload, opts.window
    );
    println!(
        "  baseline: one-to-one relay between devices of the same fleet, {} pairs, {} in flight each, {} messages per run",
        opts.pairs, opts.pair_window, opts.baseline_messages
    );
    let g = group_ref(group);
    let per = |total: u64, k: usize, of: usize| {
        total / of as u64 + u64::from((k as u64) < total % of as u64)
    };
    let mut ratios = Vec::new();
    for round in 1..=opts.rounds.max(1) {
        let pairs: Vec<(usize, ConvRef, u64)> = (0..opts.pairs)
            .map(|k| {
                let to = users[opts.pairs + k];
                (
                    k,
                    ConvRef::direct(to),
                    per(opts.baseline_messages, k, opts.pairs),
                )
            })
            .collect();
        let b = measure(
            &mut mux,
            &users,
            &pairs,
            ConvKind::Direct,
            opts.pair_window,
            opts.payload,
            opts.baseline_messages,
            opts.max_time,
            pid,
        )?;
        b.print(&format!("round {round}, baseline one-to-one relay"));
        let senders: Vec<(usize, ConvRef, u64)> = (0..opts.senders)
            .map(|k| (k, g, per(opts.messages, k, opts.senders)))
            .collect();
        let r = measure(
            &mut mux,
            &users,
            &senders,
            ConvKind::Group,
            opts.window,
            opts.payload,
            opts.messages * (n as u64 - 1),
            opts.max_time,
            pid,
        )?;
        r.print(&format!("round {round}, group of {n}"));
        let ratio = r.per_sec() / b.per_sec().max(1e-9);
        ratios.push(ratio);
        println!(
            "  round {round}: group deliveries/s / relay messages/s = {ratio:.2} (goal >= 1: {}); p50 latency {:.2}x, p99 {:.2}x the relay's",
            if ratio >= 1.0 { "met" } else { "missed" },
            r.latency.value_at_quantile(0.5) as f64 / b.latency.value_at_quantile(0.5).max(1) as f64,
            r.latency.value_at_quantile(0.99) as f64 / b.latency.value_at_quantile(0.99).max(1) as f64,
        );
        if r.delivered < r.expected || b.delivered < b.expected {
            println!("  warning: a run ended at its time limit before every delivery");
        }
    }
    println!(
        "  strays {}, sessions lost and logged in again {}",
        mux.strays, mux.relogins
    );
    mux.logout_all()?;
    let _ = server.terminate(Duration::from_secs(20));
    Ok(())
}
