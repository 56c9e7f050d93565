//! `tern-bench flood`: legitimate delivery latency while a flood of junk hits
//! the daemon's UDP port, against the same legitimate load without the
//! flood, in the same run.
//!
//! - **Legitimate load:** sender/receiver pairs through the client library
//!   over raw UDP from 127.0.0.1, at a fixed total rate; latency is submit →
//!   arrival at the receiving application. The same sessions serve every
//!   phase.
//! - **Flood:** one or more threads in this process, each sending from many
//!   source addresses on loopback (127.0.0.2 and up, one socket each, so
//!   per-source limits see many sources, as with a spoofed flood), paced to a
//!   target rate with `sendmmsg`. Kinds (from the hostile-datagram
//!   catalogue, [`tern_sim::hostile`]): random bytes of mixed sizes;
//!   well-formed packets (valid CRC) with random session ids; LOGINs without
//!   a cookie (random tokens, mixed padding); and all three mixed.
//! - **Phases:** no flood, each kind, mixed, no flood again. The daemon's
//!   counters are read (settled) around each phase, and the kernel's
//!   system-wide UDP receive-buffer drops from `/proc/net/snmp`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::clients::{fixed_rate, load_runtime, Pairs};
use super::columns::{RAW_UDP, SEALED_UDP};
use super::daemon::{data_base, socket_drops, udp_rcvbuf_errors, Daemon, POKE_DATAGRAMS};
use super::flooder::{Flood, FloodKind, FloodStats};
use super::util::{loop_and_load_cpu, machine_line, si, threads_cpu, ScratchDir};
use super::{BenchError, Result};
use tern::server::Snapshot;

/// Options of `tern-bench flood`.
#[derive(Debug, Clone)]
pub struct FloodOpts {
    /// Flood datagrams per second to aim for.
    pub flood_rate: u64,
    /// Length of each phase.
    pub duration: Duration,
    /// Legitimate sender/receiver pairs.
    pub pairs: usize,
    /// Legitimate messages per second in all.
    pub rate: f64,
    /// Legitimate payload bytes.
    pub payload: usize,
    /// Flood sender threads.
    pub flood_threads: usize,
    /// Source addresses per flood thread (127.0.0.2 onwards).
    pub sources: usize,
    /// Legitimate clients seal their sessions (daemon `[seal] policy =
    /// "required"`, its default) instead of clear raw UDP (`"optional"`).
    pub sealed: bool,
    /// Folder for the daemon's data.
    pub dir: Option<PathBuf>,
    /// Keep it.
    pub keep: bool,
}

struct Phase {
    name: String,
    flood: Option<FloodStats>,
    latency: Histogram<u64>,
    sent: u64,
    delivered: u64,
    delta: Snapshot,
    rcvbuf_drops: u64,
    daemon_drops: u64,
    cpu_loop: f64,
    cpu_load: f64,
    incomplete: bool,
}

fn delta(a: &Snapshot, b: &Snapshot) -> Snapshot {
    let (x, y) = (&a.broker, &b.broker);
    let mut d = b.clone();
    let s = &mut d.broker;
    s.datagrams_in = y
        .datagrams_in
        .saturating_sub(x.datagrams_in + POKE_DATAGRAMS);
    s.datagrams_out = y.datagrams_out.saturating_sub(x.datagrams_out);
    s.malformed = y.malformed.saturating_sub(x.malformed + POKE_DATAGRAMS);
    s.unknown_session = y.unknown_session.saturating_sub(x.unknown_session);
    s.rate_limited = y.rate_limited.saturating_sub(x.rate_limited);
    s.retries_sent = y.retries_sent.saturating_sub(x.retries_sent);
    s.bad_cookies = y.bad_cookies.saturating_sub(x.bad_cookies);
    s.login_refused = y.login_refused.saturating_sub(x.login_refused);
    s.logins = y.logins.saturating_sub(x.logins);
    s.stored = y.stored.saturating_sub(x.stored);
    d
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &FloodOpts) -> Result<()> {
    println!("tern-bench flood: {}", machine_line());
    println!(
        "  legitimate: {} pairs over raw UDP ({}) from 127.0.0.1, {} msg/s in all, {} B payloads; flood: target {} datagrams/s from {} threads x {} source addresses (127.0.0.2+), phases of {:?}",
        opts.pairs,
        if opts.sealed { "sealed" } else { "clear" },
        opts.rate,
        opts.payload,
        si(opts.flood_rate as f64),
        opts.flood_threads.max(1),
        opts.sources.max(1),
        opts.duration
    );
    let (base_dir, where_) = data_base(opts.dir.as_deref());
    let scratch = ScratchDir::new(base_dir.as_deref(), "flood", opts.keep)?;
    let sealed = opts.sealed;
    let daemon = Daemon::start(scratch.path(), |c| {
        c.seal.policy = if sealed {
            tern::config::SealPolicyName::Required
        } else {
            tern::config::SealPolicyName::Optional
        };
    })?;
    let column = if sealed { SEALED_UDP } else { RAW_UDP };
    println!("  daemon: in-process, default config (address validation on, prelogin_rate 5000/s per source, session_rate 50000/s), seal policy {}; {where_}",
        if sealed { "required" } else { "optional" });
    let rt = load_runtime()?;
    let mut pairs = Some(rt.block_on(Pairs::connect(&daemon, &column, 1, opts.pairs))?);
    let mut plan: Vec<Option<FloodKind>> = vec![
        None,
        Some(FloodKind::Garbage),
        Some(FloodKind::RandomSessions),
        Some(FloodKind::Logins),
        Some(FloodKind::Mixed),
        None,
    ];
    if sealed {
        plan.insert(4, Some(FloodKind::Handshakes));
    }
    let mut phases = Vec::new();
    let mut before = daemon.settled_snapshot();
    for (i, kind) in plan.iter().enumerate() {
        let drops0 = udp_rcvbuf_errors();
        let ddrops0 = socket_drops(daemon.udp);
        let cpu0 = threads_cpu();
        let flood = match kind {
            Some(k) => Some(Flood::start(
                *k,
                daemon.udp,
                opts.flood_rate,
                opts.flood_threads,
                opts.sources,
                1000 + i as u64,
            )?),
            None => None,
        };
        let t0 = Instant::now();
        let p = pairs.take().expect("pairs");
        let res = rt.block_on(fixed_rate(
            p,
            opts.rate,
            opts.duration,
            opts.payload,
            Duration::from_secs(10),
        ));
        let fstats = flood.map(Flood::stop);
        let wall = t0.elapsed();
        let cpu1 = threads_cpu();
        let drops = udp_rcvbuf_errors().saturating_sub(drops0);
        let ddrops = socket_drops(daemon.udp).saturating_sub(ddrops0);
        let (r, p) = res?;
        pairs = Some(p);
        let after = daemon.settled_snapshot();
        let (cl, cg) = loop_and_load_cpu(&cpu0, &cpu1, daemon.loop_tid);
        let w = wall.as_secs_f64().max(1e-9);
        let name = match kind {
            None if i == 0 => "no flood (before)".to_string(),
            None => "no flood (after)".to_string(),
            Some(k) => format!("flood: {}", k.name()),
        };
        let ph = Phase {
            name,
            flood: fstats,
            latency: r.delivery_latency.clone(),
            sent: r.submitted,
            delivered: r.delivered,
            delta: delta(&before, &after),
            rcvbuf_drops: drops,
            daemon_drops: ddrops,
            cpu_loop: 100.0 * cl.as_secs_f64() / w,
            cpu_load: 100.0 * cg.as_secs_f64() / w,
            incomplete: r.incomplete || r.disconnects > 0,
        };
        print_phase(&ph);
        phases.push(ph);
        before = after;
    }
    if let Some(p) = pairs.take() {
        rt.block_on(p.close());
    }
    drop(rt);
    daemon.stop()?;

    let base_before = ms(&phases[0].latency, 0.99);
    let base_after = ms(&phases[phases.len() - 1].latency, 0.99);
    // The baseline is the mean of the two no-flood phases (before and after).
    let base = (base_before + base_after) / 2.0;
    println!();
    println!(
        "  {:<42} {:>9} {:>9} {:>9} {:>13} {:>13} {:>9}",
        "phase", "p50 ms", "p99 ms", "p99.9 ms", "flood sent/s", "daemon drops", "p99 / base"
    );
    let mut worst: f64 = 0.0;
    for p in &phases {
        let ratio = ms(&p.latency, 0.99) / base.max(1e-9);
        if p.flood.is_some() {
            worst = worst.max(ratio);
        }
        println!(
            "  {:<42} {:>9.2} {:>9.2} {:>9.2} {:>13} {:>13} {:>9.2}",
            p.name,
            ms(&p.latency, 0.5),
            ms(&p.latency, 0.99),
            ms(&p.latency, 0.999),
            p.flood.map_or("-".into(), |f| si(
                f.sent as f64 / f.elapsed.as_secs_f64().max(1e-9)
            )),
            p.daemon_drops,
            ratio
        );
    }
    println!(
        "  legit p99 with flood / without (mean of before and after, {base:.2} ms): worst {worst:.2} (target <= 2: {}); no-flood p99 after/before {:.2}",
        if worst <= 2.0 { "met" } else { "MISSED" },
        base_after / base_before.max(1e-9)
    );
    if phases.iter().any(|p| p.incomplete) {
        return Err(BenchError::Failed(
            "legitimate traffic was incomplete or lost sessions in a phase (see above)".into(),
        ));
    }
    Ok(())
}

fn print_phase(p: &Phase) {
    let b = &p.delta.broker;
    println!("  -- {} --", p.name);
    if let Some(f) = p.flood {
        let secs = f.elapsed.as_secs_f64().max(1e-9);
        println!(
            "    flood: {} datagrams ({} B) in {:.2?} = {} datagrams/s achieved, {:.1} MB/s; flood threads cpu {:.0}% of a core",
            f.sent,
            f.bytes,
            f.elapsed,
            si(f.sent as f64 / secs),
            f.bytes as f64 / secs / 1e6,
            100.0 * f.cpu.as_secs_f64() / secs
        );
    }
    println!(
        "    legit: {} sent, {} delivered; delivery p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms{}",
        p.sent,
        p.delivered,
        ms(&p.latency, 0.5),
        ms(&p.latency, 0.99),
        ms(&p.latency, 0.999),
        p.latency.max() as f64 / 1000.0,
        if p.incomplete { " INCOMPLETE" } else { "" }
    );
    println!(
        "    daemon: {} datagrams in, {} out; malformed {}, unknown session {}, rate limited {}, RETRY cookies {}, bad cookies {}, logins refused {}",
        b.datagrams_in,
        b.datagrams_out,
        b.malformed,
        b.unknown_session,
        b.rate_limited,
        b.retries_sent,
        b.bad_cookies,
        b.login_refused,
    );
    println!(
        "    kernel: {} datagrams dropped at the daemon's socket (receive buffer full); UDP receive-buffer drops system-wide {} (includes the daemon's answers to the flood sockets, which never read)",
        p.daemon_drops, p.rcvbuf_drops
    );
    println!(
        "    cpu: daemon loop {:.0}%, legit load generator {:.0}% of a core",
        p.cpu_loop, p.cpu_load
    );
}
