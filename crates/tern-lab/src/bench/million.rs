//! `tern-bench million`: one daemon holding a million logged-in idle
//! sessions with their heartbeats flowing (issue 14, item 4). Sessions log
//! in in waves, each wave handed to a [`Keeper`] that sends every session
//! one HEARTBEAT per interval from then on, so no session idles out while
//! the later waves log in. Once all are in, one more interval lets the
//! cadence settle, then a steady window measures the daemon's CPU for the
//! heartbeats alone, and its resident set.
//!
//! The baseline is the minimal session server of `tern-bench sessions`
//! ([`super::session_sink`]: a hash map of sessions answering LOGIN and
//! HEARTBEAT), under the same logins and heartbeats in the same run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tern_core::auth::TokenKeys;

use super::keepalive::Keeper;
use super::logins::{login_many, LoginSockets, Opened};
use super::seal::Sealing;
use super::sealed_logins::login_many_sealed;
use super::util::{machine_line, rss_bytes, si, ScratchDir};
use super::{BenchError, Result};
use crate::process::{proc_cpu, OnDrop, Stderr};
use crate::ternd::{locate_ternd, TerndConfig};
use tern::config::Config;

/// Options of `tern-bench million`.
#[derive(Debug, Clone)]
pub struct MillionOpts {
    /// Sessions to open and keep.
    pub sessions: usize,
    /// Sessions per login wave.
    pub wave: usize,
    /// Handshakes (sealed) or LOGINs (clear) outstanding at once in a wave.
    pub window: usize,
    /// Sockets the keeper sends heartbeats from.
    pub keeper_sockets: usize,
    /// One HEARTBEAT per session per this (the daemon announces 15 s).
    pub interval: Duration,
    /// The steady window, heartbeats only, measured.
    pub steady: Duration,
    /// The `ternd` binary (default: next to this executable).
    pub ternd: Option<PathBuf>,
    /// Folder for the daemon's data.
    pub dir: Option<PathBuf>,
    /// Keep the data folder.
    pub keep: bool,
    /// Sealed sessions (the daemon's default) or clear ones.
    pub seal: Sealing,
}

/// What one server did under the load.
struct Report {
    rss_idle: u64,
    rss_full: u64,
    logins: Duration,
    login_cpu: Duration,
    heartbeats_per_s: f64,
    steady_cpu: Duration,
    steady: Duration,
    acked: u64,
    sent: u64,
    errors: u64,
}

impl Report {
    fn per_session(&self, n: usize) -> f64 {
        self.rss_full.saturating_sub(self.rss_idle) as f64 / n.max(1) as f64
    }

    fn cpu_per_heartbeat_us(&self) -> f64 {
        self.steady_cpu.as_secs_f64() * 1e6
            / (self.heartbeats_per_s * self.steady.as_secs_f64()).max(1.0)
    }
}

fn mb(b: u64) -> String {
    format!("{:.0} MB", b as f64 / (1024.0 * 1024.0))
}

fn cpu(pid: u32) -> Result<Duration> {
    Ok(proc_cpu(pid))
}

fn measure(
    label: &str,
    addr: SocketAddr,
    pid: u32,
    keys: &TokenKeys,
    seal_key: Option<&tern_core::seal::PublicKey>,
    opts: &MillionOpts,
) -> Result<Report> {
    let keeper = Keeper::start(addr, opts.keeper_sockets, opts.interval)?;
    std::thread::sleep(Duration::from_millis(300));
    let rss_idle = rss_bytes(pid)?;
    let (start, cpu0) = (Instant::now(), cpu(pid)?);
    let mut done = 0usize;
    while done < opts.sessions {
        let n = opts.wave.min(opts.sessions - done);
        let first = 1 + done as u64;
        let mut opened: Vec<Opened> = Vec::with_capacity(n);
        let max_time = Duration::from_secs(600);
        match seal_key {
            Some(k) => {
                let mut ls = LoginSockets::new(addr, opts.window)?;
                login_many_sealed(&mut ls, keys, k, first, 1, n, max_time, Some(&mut opened))?;
            }
            None => {
                let mut ls = LoginSockets::new(addr, 16)?;
                login_many(
                    &mut ls,
                    keys,
                    first,
                    1,
                    n,
                    opts.window,
                    max_time,
                    Some(&mut opened),
                )?;
            }
        }
        keeper.add(opened);
        done += n;
        let c = &keeper.counts;
        eprintln!(
            "  {label}: {done} sessions after {:.1?}, RSS {}; keeper sent {} heartbeats, {} answered, {} errors",
            start.elapsed(),
            mb(rss_bytes(pid)?),
            c.sent.load(std::sync::atomic::Ordering::Relaxed),
            c.acked.load(std::sync::atomic::Ordering::Relaxed),
            c.errors.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    let logins = start.elapsed();
    let login_cpu = cpu(pid)?.saturating_sub(cpu0);
    // One whole interval so that every session is in the cadence.
    std::thread::sleep(opts.interval);
    let counts = |k: &Keeper| {
        use std::sync::atomic::Ordering::Relaxed;
        (
            k.counts.sent.load(Relaxed),
            k.counts.acked.load(Relaxed),
            k.counts.errors.load(Relaxed),
        )
    };
    let (c1, at1, (s1, a1, e1)) = (cpu(pid)?, Instant::now(), counts(&keeper));
    std::thread::sleep(opts.steady);
    let (c2, steady, (s2, a2, e2)) = (cpu(pid)?, at1.elapsed(), counts(&keeper));
    let rss_full = rss_bytes(pid)?;
    keeper.stop()?;
    Ok(Report {
        rss_idle,
        rss_full,
        logins,
        login_cpu,
        heartbeats_per_s: (s2 - s1) as f64 / steady.as_secs_f64(),
        steady_cpu: c2.saturating_sub(c1),
        steady,
        acked: a2 - a1,
        sent: s2 - s1,
        errors: e2 - e1,
    })
}

fn print(label: &str, r: &Report, n: usize) {
    println!(
        "  {label}: {n} sessions logged in in {:.1?} ({} logins/s, {:.0} µs of server CPU per login, heartbeats of the earlier waves included); RSS {} idle, {} with every session -> {:.0} bytes/session",
        r.logins,
        si(n as f64 / r.logins.as_secs_f64().max(1e-9)),
        r.login_cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        mb(r.rss_idle),
        mb(r.rss_full),
        r.per_session(n),
    );
    println!(
        "  {label}, steady {:.1?}: {} heartbeats/s, {} answered ({:.2} %), {} errors; server CPU {:.1} % of a core, {:.2} µs per heartbeat",
        r.steady,
        si(r.heartbeats_per_s),
        r.acked,
        100.0 * r.acked as f64 / r.sent.max(1) as f64,
        r.errors,
        100.0 * r.steady_cpu.as_secs_f64() / r.steady.as_secs_f64(),
        r.cpu_per_heartbeat_us(),
    );
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &MillionOpts) -> Result<()> {
    let ternd =
        locate_ternd(opts.ternd.as_deref()).map_err(|e| BenchError::Failed(e.to_string()))?;
    let scratch = ScratchDir::new(opts.dir.as_deref(), "million", opts.keep)?;
    let data = scratch.path().join("ternd");
    let mut cfg = Config::default();
    cfg.server.data_dir = data.clone();
    let keys = tern::server::load_keys(&cfg)?;

    println!("tern-bench million: {}", machine_line());
    println!(
        "  {} idle sessions (1 per user), logged in in waves of {} ({} {} outstanding), then one HEARTBEAT each per {:?} from {} keeper sockets; steady window {:?}; daemon {} (separate process)",
        opts.sessions,
        opts.wave,
        opts.window,
        match opts.seal {
            Sealing::Sealed => "handshakes",
            Sealing::Clear => "LOGINs",
        },
        opts.interval,
        opts.keeper_sockets,
        opts.steady,
        ternd.display()
    );
    println!(
        "  ternd: {}, [limits] max_sessions raised to {}; baseline: the minimal session table (clear, in the same run)",
        opts.seal.describe(),
        opts.sessions + 1000
    );
    let mut server = TerndConfig::new(&ternd, &data)
        // QUIC as a user runs it: on, next to raw UDP.
        .quic_as_configured()
        .stderr(Stderr::Inherit)
        .env("RUST_LOG", "warn")
        // All sessions come from one IP here: lift the per-source pre-login
        // rate limit (5,000/s by default), which is not what is measured.
        .env("TERN_LIMITS_PRELOGIN_RATE", "10000000")
        .env(
            "TERN_LIMITS_MAX_SESSIONS",
            (opts.sessions + 1000).to_string(),
        )
        .env("TERN_SEAL_POLICY", opts.seal.policy_env())
        .on_drop(OnDrop::Terminate(Duration::from_secs(30)))
        .start()
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let pid = server.pid().expect("just started");
    let seal_key = match opts.seal {
        Sealing::Sealed => Some(server.seal_key().ok_or_else(|| {
            BenchError::Failed("ternd printed no seal key with sealing required".into())
        })?),
        Sealing::Clear => None,
    };
    let tern = measure("ternd", server.addr(), pid, &keys, seal_key.as_ref(), opts)?;
    let _ = server.terminate(Duration::from_secs(30));

    let (mut sink, sink_addr) = super::session_sink::spawn_session_sink(&cfg.secret_path())?;
    let base = measure("baseline", sink_addr, sink.pid(), &keys, None, opts)?;
    let _ = sink.terminate(Duration::from_secs(10));

    print(
        &format!("ternd ({})", opts.seal.label()),
        &tern,
        opts.sessions,
    );
    print(
        "baseline minimal session table (clear)",
        &base,
        opts.sessions,
    );
    let per = tern.per_session(opts.sessions);
    println!(
        "  ternd: {per:.0} bytes per idle session (target <= 1024: {}), {:.1}x the baseline's {:.0}; heartbeat CPU {:.2} µs, {:.1}x the baseline's {:.2} µs; every heartbeat answered: {}",
        if per <= 1024.0 { "met" } else { "missed" },
        per / base.per_session(opts.sessions).max(1.0),
        base.per_session(opts.sessions),
        tern.cpu_per_heartbeat_us(),
        tern.cpu_per_heartbeat_us() / base.cpu_per_heartbeat_us().max(1e-9),
        base.cpu_per_heartbeat_us(),
        if tern.errors == 0 && tern.acked * 100 >= tern.sent * 99 { "yes" } else { "no" },
    );
    Ok(())
}
