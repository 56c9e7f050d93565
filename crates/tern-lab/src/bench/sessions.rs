//! `tern-bench sessions`: memory per logged-in idle session. The daemon runs
//! as a separate process (the real `ternd` next to `tern`) so the resident
//! set measured is the daemon's alone. Sessions are opened by crafting LOGIN
//! packets directly over a handful of UDP sockets: the daemon finds sessions
//! by id, not by address, so many sessions may share one socket.
//!
//! ([`super::logins`]).
//!
//! The baseline is a minimal session server ([`super::session_sink`], a
//! separate process too). What the daemon spends beyond it is its overhead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern_core::auth::TokenKeys;

pub use super::logins::{login_many, LoginReport, LoginSockets};
use super::seal::Sealing;
use super::sealed_logins::login_many_sealed;
pub use super::session_sink::session_sink;
use super::util::{machine_line, rss_bytes, si, ScratchDir};
use super::{BenchError, Result};
use crate::process::{OnDrop, Stderr};
use crate::ternd::{locate_ternd, TerndConfig};
use tern::config::Config;

/// Options of `tern-bench sessions`.
#[derive(Debug, Clone)]
pub struct SessionsOpts {
    /// Sessions to open (after the warm-up).
    pub sessions: usize,
    /// UDP sockets the sessions share.
    pub sockets: usize,
    /// LOGINs outstanding at once.
    pub window: usize,
    /// Devices per user (1: every session is a different user).
    pub devices_per_user: usize,
    /// Time limit of each login phase.
    pub max_time: Duration,
    /// The `ternd` binary (default: next to this executable).
    pub ternd: Option<PathBuf>,
    /// Folder for the daemon's data.
    pub dir: Option<PathBuf>,
    /// Keep the data folder.
    pub keep: bool,
    /// Sealed sessions (the daemon's default) or clear ones.
    pub seal: Sealing,
}

/// RSS figures of one server under the session load.
#[derive(Debug, Clone, Copy)]
pub struct RssReport {
    /// Right after start.
    pub idle: u64,
    /// After the warm-up sessions.
    pub warm: u64,
    /// After every session.
    pub full: u64,
    /// Warm-up sessions.
    pub warmup: usize,
    /// Measured sessions.
    pub sessions: usize,
    /// The measured login phase.
    pub login: LoginReport,
    /// RETRY frames (address validation) received in all.
    pub retries: u64,
}

impl RssReport {
    /// Bytes per measured session.
    pub fn per_session(&self) -> f64 {
        self.full.saturating_sub(self.warm) as f64 / self.sessions.max(1) as f64
    }
}

/// Opens the sessions on the server at `addr` (process `pid`), measuring
/// its resident set before, after the warm-up and after all. With
/// `seal_key`, the sessions are sealed, one handshake outstanding per
/// socket, so `opts.window` sockets; without, clear LOGINs over
/// `opts.sockets` sockets.
fn measure(
    addr: SocketAddr,
    pid: u32,
    keys: &TokenKeys,
    seal_key: Option<&tern_core::seal::PublicKey>,
    opts: &SessionsOpts,
) -> Result<RssReport> {
    let sockets = if seal_key.is_some() {
        opts.window
    } else {
        opts.sockets
    };
    let mut socks = LoginSockets::new(addr, sockets)?;
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_bytes(pid)?;
    let warmup = (opts.sessions / 100).clamp(1, 1000);
    let per_user = opts.devices_per_user;
    let phase = |socks: &mut LoginSockets, first: u64, n: usize| match seal_key {
        Some(k) => login_many_sealed(socks, keys, k, first, per_user, n, opts.max_time, None),
        None => login_many(
            socks,
            keys,
            first,
            per_user,
            n,
            opts.window,
            opts.max_time,
            None,
        ),
    };
    phase(&mut socks, 1, warmup)?;
    std::thread::sleep(Duration::from_millis(300));
    let warm = rss_bytes(pid)?;
    // The warm-up used users 1 ..= warmup / devices_per_user + 1.
    let login = phase(
        &mut socks,
        2 + (warmup / opts.devices_per_user.max(1)) as u64,
        opts.sessions,
    )?;
    // Let the daemon commit the device records and go idle.
    std::thread::sleep(Duration::from_millis(500));
    let full = rss_bytes(pid)?;
    Ok(RssReport {
        idle,
        warm,
        full,
        warmup,
        sessions: opts.sessions,
        login,
        retries: socks.retries,
    })
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / (1024.0 * 1024.0))
}

fn print_rss(label: &str, r: &RssReport) {
    println!(
        "  {label}: RSS {} idle, {} after {} warm-up sessions, {} after {} more -> {:.0} bytes/session; {} logins/s ({} LOGIN retransmits, {} RETRY cookies, {:.2?})",
        mb(r.idle),
        mb(r.warm),
        r.warmup,
        mb(r.full),
        r.sessions,
        r.per_session(),
        si(r.login.opened as f64 / r.login.elapsed.as_secs_f64().max(1e-9)),
        r.login.retransmits,
        r.retries,
        r.login.elapsed,
    );
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &SessionsOpts) -> Result<()> {
    let ternd =
        locate_ternd(opts.ternd.as_deref()).map_err(|e| BenchError::Failed(e.to_string()))?;
    let scratch = ScratchDir::new(opts.dir.as_deref(), "sessions", opts.keep)?;
    let data = scratch.path().join("ternd");
    let mut cfg = Config::default();
    cfg.server.data_dir = data.clone();
    // Creates the secret, which the daemon then reads.
    let keys = tern::server::load_keys(&cfg)?;

    println!("tern-bench sessions: {}", machine_line());
    println!(
        "  {} idle sessions ({} per user) over {} UDP sockets, {} LOGINs outstanding; daemon {} (separate process)",
        opts.sessions,
        opts.devices_per_user.max(1),
        opts.sockets,
        opts.window,
        ternd.display()
    );
    println!(
        "  ternd: {}; baseline: clear LOGINs (it does not seal){}",
        opts.seal.describe(),
        match opts.seal {
            Sealing::Sealed => format!(
                "; ternd's sessions are Noise handshakes over {} sockets, one outstanding on each, then one sealed HEARTBEAT",
                opts.window
            ),
            Sealing::Clear => String::new(),
        }
    );

    let mut server = TerndConfig::new(&ternd, &data)
        // QUIC as a user runs it: on, next to raw UDP.
        .quic_as_configured()
        .stderr(Stderr::Inherit)
        .env("RUST_LOG", "warn")
        // All sessions come from one IP here: lift the per-source pre-login
        // rate limit (5,000/s by default), which is not what is measured.
        .env("TERN_LIMITS_PRELOGIN_RATE", "10000000")
        .env("TERN_SEAL_POLICY", opts.seal.policy_env())
        .on_drop(OnDrop::Terminate(Duration::from_secs(10)))
        .start()
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let pid = server.pid().expect("just started");
    let seal_key = match opts.seal {
        Sealing::Sealed => Some(server.seal_key().ok_or_else(|| {
            BenchError::Failed("ternd printed no seal key with sealing required".into())
        })?),
        Sealing::Clear => None,
    };
    let tern = measure(server.addr(), pid, &keys, seal_key.as_ref(), opts)?;
    let _ = server.terminate(Duration::from_secs(10));
    print_rss(&format!("ternd (pid {pid})"), &tern);

    let (mut sink, sink_addr) = super::session_sink::spawn_session_sink(&cfg.secret_path())?;
    let base = measure(sink_addr, sink.pid(), &keys, None, opts)?;
    let _ = sink.terminate(Duration::from_secs(10));
    print_rss("baseline minimal session table", &base);

    let per = tern.per_session();
    println!(
        "  ternd: {per:.0} bytes per idle session (target <= 1024 at {}, issue 14: {}); baseline {:.0} bytes; ratio ternd / baseline {:.1}",
        opts.sessions,
        if per <= 1024.0 { "met" } else { "missed" },
        base.per_session(),
        per / base.per_session().max(1.0)
    );
    if tern.login.elapsed > Duration::from_secs(40) {
        println!("  warning: logins took over 40 s; the first sessions may have neared the 45 s idle timeout");
    }
    Ok(())
}
