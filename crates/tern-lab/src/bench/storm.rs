//! `tern-bench storm`: seed 004's check-in storm. A group of 30,000
//! members, every member offline while 20,000 messages are posted into it
//! (read fan-out: each message is stored once), then every member device
//! logs in within 60 s and fetches its conversation list until complete.
//!
//! Per login: round trips and bytes both ways from the first login
//! datagram until the list is complete (goal ≤ 2 round trips after login,
//! ≤ 16 KB), login-to-list time p50/p99 during the storm, the daemon's
//! peak RSS, and each device's list item for the group checked: `last_seq`
//! the group's newest record, `unread` every message from others since the
//! device's user joined. A wrong count fails the run.
//!
//! The daemon is the real `ternd` (a child process, default configuration:
//! sealing required, address validation on, RocksDB on disk under
//! `--dir`). Devices are sans-IO sessions sharing a few sockets ([`Mux`]).
//! Baseline in the same run, same daemon: the same logins, at the same
//! rate, by the members of a 500-member group (write fan-out).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::group_setup::{create_group, device_config, group_ref, login_one, post, submit_all};
use super::mux::Mux;
use super::storm_logins::{run_logins, LoginsReport, StormDevice};
use super::util::{machine_line, rate, si, ScratchDir};
use super::{BenchError, Result};
use crate::process::{OnDrop, Stderr};
use crate::ternd::{locate_ternd, TerndConfig};
use tern::config::Config;
use tern_core::auth::TokenKeys;
use tern_core::seal::PublicKey;

/// Options of `tern-bench storm`.
#[derive(Debug, Clone)]
pub struct StormOpts {
    /// Members of the large group, the owner included.
    pub members: usize,
    /// Messages posted into it while every member is offline.
    pub messages: u64,
    /// Every member device logs in within this time.
    pub window: Duration,
    /// Members of the baseline group (write fan-out).
    pub baseline_members: usize,
    /// Messages posted into the baseline group.
    pub baseline_messages: u64,
    /// UDP sockets the devices share.
    pub sockets: usize,
    /// Payload bytes per message.
    pub payload: usize,
    /// Time limit of each setup phase, and of the stragglers after a storm.
    pub max_time: Duration,
    /// The ternd binary (default: next to this one).
    pub ternd: Option<PathBuf>,
    /// Folder for the daemon's data.
    pub dir: Option<PathBuf>,
    /// Keep the data folder.
    pub keep: bool,
}

/// A group built and filled, ready for the storm.
struct Filled {
    group: u64,
    /// Its newest record: created, one added per member, the messages.
    head: u64,
    owner: u64,
    members: Vec<u64>,
    messages: u64,
}

/// Creates a group of `owner` + `members` and posts `messages` into it,
/// printing how long each part took.
#[allow(clippy::too_many_arguments)]
fn fill(
    addr: std::net::SocketAddr,
    keys: &TokenKeys,
    seal: Option<PublicKey>,
    owner: u64,
    members: Vec<u64>,
    messages: u64,
    opts: &StormOpts,
    label: &str,
) -> Result<Filled> {
    let mut mux = Mux::new(addr, 1)?;
    let o = mux.add(device_config(keys, seal, owner, 1));
    login_one(&mut mux, o, opts.max_time)?;
    let t = Instant::now();
    let group = create_group(&mut mux, o, &members, opts.max_time)?;
    let created = t.elapsed();
    let t = Instant::now();
    let posts = (0..messages).map(|k| post(group, k, opts.payload));
    submit_all(&mut mux, o, posts, 64, opts.max_time, "posting", |_, _| {})?;
    let posted = t.elapsed();
    mux.logout_all()?;
    println!(
        "  {label}: group of {} created in {created:.2?} ({} GROUP_OPs); {messages} messages of {} bytes posted by the owner in {posted:.2?} ({} msg/s), every member offline",
        members.len() + 1,
        members.len().div_ceil(super::group_setup::OP_USERS),
        opts.payload,
        si(rate(messages, posted)),
    );
    Ok(Filled {
        group,
        head: 1 + members.len() as u64 + messages,
        owner,
        members,
        messages,
    })
}

/// The storm's devices: every member's device 1 and the owner's device 2
/// (its device 1 posted the messages); each should see the group's newest
/// record, and as unread every message from others.
fn devices(f: &Filled) -> Vec<StormDevice> {
    let mut d: Vec<StormDevice> = f
        .members
        .iter()
        .map(|&u| StormDevice {
            user: u,
            device: 1,
            expect_last: f.head,
            expect_unread: f.messages,
        })
        .collect();
    d.push(StormDevice {
        user: f.owner,
        device: 2,
        expect_last: f.head,
        expect_unread: 0,
    });
    d
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &StormOpts) -> Result<()> {
    let ternd =
        locate_ternd(opts.ternd.as_deref()).map_err(|e| BenchError::Failed(e.to_string()))?;
    let scratch = ScratchDir::new(opts.dir.as_deref(), "storm", opts.keep)?;
    let data = scratch.path().join("ternd");
    let mut cfg = Config::default();
    cfg.server.data_dir = data.clone();
    let keys = tern::server::load_keys(&cfg)?;
    println!("tern-bench storm: {}", machine_line());
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
    println!(
        "  daemon {} (pid {pid}), default configuration ({}, address validation on), data under {}; {} sockets shared by the devices",
        ternd.display(),
        if seal.is_some() { "sealed sessions" } else { "no seal key printed: clear sessions" },
        data.display(),
        opts.sockets,
    );
    let addr = server.addr();
    let base = 1u64;
    let big = fill(
        addr,
        &keys,
        seal,
        base,
        (1..opts.members as u64).map(|k| base + k).collect(),
        opts.messages,
        opts,
        "storm group",
    )?;
    let bbase = 10_000_000u64;
    let small = fill(
        addr,
        &keys,
        seal,
        bbase,
        (1..opts.baseline_members as u64)
            .map(|k| bbase + k)
            .collect(),
        opts.baseline_messages,
        opts,
        "baseline group",
    )?;
    let rss_before = crate::process::proc_rss(pid).unwrap_or(0);
    // The baseline logs in at the storm's rate.
    let per_sec = opts.members as f64 / opts.window.as_secs_f64().max(1e-3);
    let bwindow = Duration::from_secs_f64(opts.baseline_members as f64 / per_sec);
    let b = run_logins(
        addr,
        &keys,
        seal,
        group_ref(small.group),
        devices(&small),
        bwindow,
        opts.sockets,
        opts.max_time,
        pid,
    )?;
    b.print(&format!(
        "baseline: {} devices of a {}-member group (write fan-out) with {} messages, logging in within {bwindow:.1?}",
        opts.baseline_members, opts.baseline_members, small.messages
    ));
    let s = run_logins(
        addr,
        &keys,
        seal,
        group_ref(big.group),
        devices(&big),
        opts.window,
        opts.sockets,
        opts.max_time,
        pid,
    )?;
    s.print(&format!(
        "storm: {} devices of a {}-member group (read fan-out) with {} messages, logging in within {:.1?}",
        opts.members, opts.members, big.messages, opts.window
    ));
    let hwm = super::storm_logins::vm_hwm(pid);
    println!(
        "  daemon RSS: {:.1} MB before the storms, peak {:.1} MB sampled during the storm, VmHWM {:.1} MB over the whole run",
        mib(rss_before),
        mib(s.peak_rss),
        mib(hwm)
    );
    print_ratios(&s, &b);
    let _ = server.terminate(Duration::from_secs(20));
    if s.wrong > 0 || b.wrong > 0 {
        return Err(BenchError::Failed(format!(
            "wrong list counts: {} devices in the storm, {} in the baseline",
            s.wrong, b.wrong
        )));
    }
    Ok(())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn print_ratios(s: &LoginsReport, b: &LoginsReport) {
    let r = |x: f64, y: f64| x / y.max(1e-9);
    println!(
        "  storm / baseline: bytes per login p50 {:.2}, max {:.2}; list round trips max {} vs {}; login-to-list p50 {:.2}, p99 {:.2}",
        r(s.bytes_q(0.5) as f64, b.bytes_q(0.5) as f64),
        r(s.bytes_q(1.0) as f64, b.bytes_q(1.0) as f64),
        s.max_list_rts,
        b.max_list_rts,
        r(s.latency.value_at_quantile(0.5) as f64, b.latency.value_at_quantile(0.5) as f64),
        r(s.latency.value_at_quantile(0.99) as f64, b.latency.value_at_quantile(0.99) as f64),
    );
    let met = |ok: bool| if ok { "met" } else { "missed" };
    println!(
        "  goals in the storm: list <= 2 round trips after login: {} (max {}); <= 16 KB from the first login datagram to the list: {} (max {} bytes, {} devices over)",
        met(s.max_list_rts <= 2),
        s.max_list_rts,
        met(s.bytes_q(1.0) <= 16 * 1024),
        s.bytes_q(1.0),
        s.over_16k,
    );
}
