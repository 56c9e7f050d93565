//! The logins of `tern-bench storm`: devices start logging in at an even
//! pace over a window; each one, once logged in, asks for its conversation
//! list since version 0 with 12-byte previews and is done when the list is
//! complete. What each one cost is counted on its own session: datagrams
//! and bytes both ways from its first login datagram, list pages (round
//! trips after login), time from the first datagram to the complete list;
//! and its list item for the group is checked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tern_core::auth::TokenKeys;
use tern_core::client::ClientEvent;
use tern_core::seal::PublicKey;
use tern_core::wire::ConvRef;

use super::fleet::WireStats;
use super::group_setup::device_config;
use super::mux::Mux;
use super::util::{fmt_latency, histogram, process_cpu_now};
use super::{BenchError, Result};

/// One device of the storm and what its list must say about the group.
#[derive(Debug, Clone, Copy)]
pub struct StormDevice {
    /// User.
    pub user: u64,
    /// Device.
    pub device: u32,
    /// The group's newest record.
    pub expect_last: u64,
    /// Messages from others since the user joined.
    pub expect_unread: u64,
}

/// What the logins cost.
#[derive(Debug)]
pub struct LoginsReport {
    /// Devices.
    pub devices: usize,
    /// Devices whose list completed.
    pub done: usize,
    /// Devices whose list was wrong about the group (or lacked it).
    pub wrong: usize,
    /// The first few wrong items, described.
    pub wrong_examples: Vec<String>,
    /// Bytes (both ways) per device, first login datagram to list complete, sorted.
    pub bytes: Vec<u64>,
    /// Bytes after login until the list was complete, sorted.
    pub list_bytes: Vec<u64>,
    /// Datagrams each device sent until logged in (login round trips), sorted.
    pub login_rts: Vec<u64>,
    /// Most list pages (round trips after login) of one device.
    pub max_list_rts: u64,
    /// Devices whose list took more than 2 pages.
    pub over_2_rts: usize,
    /// Devices over 16 KB.
    pub over_16k: usize,
    /// First login datagram to list complete, microseconds.
    pub latency: Histogram<u64>,
    /// First login datagram to logged in, microseconds.
    pub login_latency: Histogram<u64>,
    /// From the first device's first datagram to the last device's.
    pub spread: Duration,
    /// From the first datagram to the last list.
    pub elapsed: Duration,
    /// Daemon RSS, highest sample (every 100 ms).
    pub peak_rss: u64,
    /// Sessions that were lost and logged in again.
    pub relogins: u64,
    /// Datagrams the load generator could not place.
    pub strays: u64,
    /// CPU the daemon used from the first login to the last list.
    pub daemon_cpu: Duration,
    /// CPU this process (the load generator) used meanwhile.
    pub load_cpu: Duration,
}

impl LoginsReport {
    /// Bytes per login at quantile `q` (1.0: the most).
    pub fn bytes_q(&self, q: f64) -> u64 {
        quantile(&self.bytes, q)
    }

    /// Prints the report under `title`.
    pub fn print(&self, title: &str) {
        println!("  {title}");
        println!(
            "    {} of {} lists complete in {:.2?} (first datagrams spread over {:.2?}); {} wrong group items; {} sessions lost and logged in again; {} stray datagrams",
            self.done, self.devices, self.elapsed, self.spread, self.wrong, self.relogins, self.strays
        );
        for w in &self.wrong_examples {
            println!("      wrong: {w}");
        }
        println!(
            "    per login: login datagrams sent p50 {} max {}; list round trips after login max {} ({} devices over 2)",
            quantile(&self.login_rts, 0.5),
            quantile(&self.login_rts, 1.0),
            self.max_list_rts,
            self.over_2_rts
        );
        println!(
            "    bytes both ways, first login datagram to list complete: p50 {} p99 {} max {} ({} devices over 16 KB); after login: p50 {} max {}",
            self.bytes_q(0.5),
            self.bytes_q(0.99),
            self.bytes_q(1.0),
            self.over_16k,
            quantile(&self.list_bytes, 0.5),
            quantile(&self.list_bytes, 1.0)
        );
        println!("    login to list complete: {}", fmt_latency(&self.latency));
        println!("    login alone: {}", fmt_latency(&self.login_latency));
        let wall = self.elapsed.as_secs_f64().max(1e-9);
        println!(
            "    CPU meanwhile: daemon {:.0}% of a core ({:.0} us per login), load generator {:.0}%",
            100.0 * self.daemon_cpu.as_secs_f64() / wall,
            self.daemon_cpu.as_secs_f64() * 1e6 / self.devices.max(1) as f64,
            100.0 * self.load_cpu.as_secs_f64() / wall
        );
    }
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let k = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

/// Peak resident set of process `pid` (VmHWM), in bytes.
pub fn vm_hwm(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

struct State {
    login_wire: Option<WireStats>,
    done: bool,
}

/// Logs `devices` in at an even pace over `window` and fetches each one's
/// list; checks its item for `conv`. Fails if lists are still incomplete
/// `max_time` after the window.
#[allow(clippy::too_many_arguments)]
pub fn run_logins(
    addr: SocketAddr,
    keys: &TokenKeys,
    seal: Option<PublicKey>,
    conv: ConvRef,
    devices: Vec<StormDevice>,
    window: Duration,
    sockets: usize,
    max_time: Duration,
    pid: u32,
) -> Result<LoginsReport> {
    let n = devices.len();
    let mut mux = Mux::new(addr, sockets)?;
    for d in &devices {
        mux.add(device_config(keys, seal, d.user, d.device));
    }
    let mut st: Vec<State> = (0..n)
        .map(|_| State {
            login_wire: None,
            done: false,
        })
        .collect();
    let mut r = LoginsReport {
        devices: n,
        done: 0,
        wrong: 0,
        wrong_examples: Vec::new(),
        bytes: Vec::with_capacity(n),
        list_bytes: Vec::with_capacity(n),
        login_rts: Vec::with_capacity(n),
        max_list_rts: 0,
        over_2_rts: 0,
        over_16k: 0,
        latency: histogram(),
        login_latency: histogram(),
        spread: Duration::ZERO,
        elapsed: Duration::ZERO,
        peak_rss: 0,
        relogins: 0,
        strays: 0,
        daemon_cpu: Duration::ZERO,
        load_cpu: Duration::ZERO,
    };
    let (dcpu0, lcpu0) = (crate::process::proc_cpu(pid), process_cpu_now());
    let t0 = Instant::now();
    let end = t0 + window + max_time;
    let mut next = 0usize;
    let mut events = Vec::new();
    let mut sampled = t0;
    let mut last_list = t0;
    while r.done < n {
        let now_i = Instant::now();
        if now_i > end {
            return Err(BenchError::Failed(format!(
                "only {} of {n} lists complete {max_time:?} after the {window:?} window ({} devices never got their login turn)",
                r.done,
                mux.waiting()
            )));
        }
        while next < n && now_i >= t0 + window.mul_f64(next as f64 / n as f64) {
            mux.login(next);
            next += 1;
        }
        if now_i.duration_since(sampled) >= Duration::from_millis(100) {
            sampled = now_i;
            r.peak_rss = r.peak_rss.max(crate::process::proc_rss(pid).unwrap_or(0));
        }
        mux.turn(Duration::from_millis(2), &mut events)?;
        for (i, ev) in events.drain(..) {
            match ev {
                ClientEvent::LoggedIn { .. } if st[i].login_wire.is_none() => {
                    let w = mux.wire(i);
                    st[i].login_wire = Some(w);
                    r.login_rts.push(w.datagrams_out);
                    if let Some(at) = mux.first_sent(i) {
                        r.login_latency
                            .saturating_record(at.elapsed().as_micros() as u64);
                    }
                    let now = mux.now();
                    if let Some(c) = mux.conn(i) {
                        c.request_list(now, 0, 12);
                    }
                }
                ClientEvent::ConvList(l) if !st[i].done => {
                    st[i].done = true;
                    r.done += 1;
                    last_list = Instant::now();
                    if let Some(at) = mux.first_sent(i) {
                        r.latency.saturating_record(at.elapsed().as_micros() as u64);
                    }
                    let w = mux.wire(i);
                    let lw = st[i].login_wire.unwrap_or_default();
                    let total = w.bytes_in + w.bytes_out;
                    r.bytes.push(total);
                    r.list_bytes
                        .push(total - (lw.bytes_in + lw.bytes_out).min(total));
                    r.over_16k += usize::from(total > 16 * 1024);
                    r.max_list_rts = r.max_list_rts.max(u64::from(l.pages));
                    r.over_2_rts += usize::from(l.pages > 2);
                    let d = &devices[i];
                    let item = l.items.iter().find(|it| it.conv == conv);
                    let ok = item.is_some_and(|it| {
                        it.last_seq == d.expect_last && it.unread == d.expect_unread
                    });
                    if !ok {
                        r.wrong += 1;
                        if r.wrong_examples.len() < 5 {
                            r.wrong_examples.push(match item {
                                Some(it) => format!(
                                    "user {} device {}: last_seq {} unread {} (expected {} and {})",
                                    d.user,
                                    d.device,
                                    it.last_seq,
                                    it.unread,
                                    d.expect_last,
                                    d.expect_unread
                                ),
                                None => format!(
                                    "user {} device {}: no item for the group in {} items",
                                    d.user,
                                    d.device,
                                    l.items.len()
                                ),
                            });
                        }
                    }
                }
                ClientEvent::LoginRefused { code } => {
                    return Err(BenchError::Failed(format!(
                        "login of user {} refused (error code {code})",
                        devices[i].user
                    )))
                }
                _ => {}
            }
        }
    }
    let firsts: Vec<Instant> = (0..n).filter_map(|i| mux.first_sent(i)).collect();
    if let (Some(a), Some(b)) = (firsts.iter().min(), firsts.iter().max()) {
        r.spread = b.duration_since(*a);
        r.elapsed = last_list.duration_since(*a);
    }
    r.daemon_cpu = crate::process::proc_cpu(pid).saturating_sub(dcpu0);
    r.load_cpu = process_cpu_now().saturating_sub(lcpu0);
    r.relogins = mux.relogins;
    r.strays = mux.strays;
    r.peak_rss = r.peak_rss.max(crate::process::proc_rss(pid).unwrap_or(0));
    mux.logout_all()?;
    r.bytes.sort_unstable();
    r.list_bytes.sort_unstable();
    r.login_rts.sort_unstable();
    Ok(r)
}
