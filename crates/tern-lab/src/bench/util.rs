//! Shared pieces of the benchmarks: scratch folders, an in-process daemon,
//! per-thread CPU accounting, RSS, histograms and number formatting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tern_core::auth::{Claims, TokenKeys};

use super::seal::Sealing;
use super::{BenchError, Result};
use tern::client::SealKey;
use tern::config::Config;
use tern::server::Snapshot;

/// A scratch folder, removed on drop unless kept.
pub struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    /// Creates a fresh folder `tern-bench-<what>-<pid>-<nanos>` under `base`
    /// (the system temp folder when `None`). Benchmarks that fsync must run
    /// on a real disk: check what `base` is mounted on.
    pub fn new(base: Option<&Path>, what: &str, keep: bool) -> Result<ScratchDir> {
        let base = base
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = base.join(format!(
            "tern-bench-{what}-{}-{nanos:09}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .map_err(BenchError::io(format!("creating {}", path.display())))?;
        Ok(ScratchDir { path, keep })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept scratch folder {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The kernel's id of the calling thread.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// CPU time the calling thread has used.
pub fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of the whole process so far (every thread, exited ones included).
pub fn process_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of every live thread of this process, by thread id: (name, cpu).
pub fn threads_cpu() -> HashMap<i32, (String, Duration)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let base = e.path();
        let name = std::fs::read_to_string(base.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        // schedstat: run time in ns, wait time in ns, timeslices.
        let cpu = std::fs::read_to_string(base.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map(Duration::from_nanos)
            .unwrap_or_default();
        out.insert(tid, (name, cpu));
    }
    out
}

/// CPU used between two [`threads_cpu`] snapshots, summed by a grouping of
/// thread names; threads born in between count from zero.
pub fn cpu_by_group(
    before: &HashMap<i32, (String, Duration)>,
    after: &HashMap<i32, (String, Duration)>,
    group: impl Fn(i32, &str) -> &'static str,
) -> Vec<(&'static str, Duration)> {
    let mut sums: Vec<(&'static str, Duration)> = Vec::new();
    for (tid, (name, cpu)) in after {
        let prev = before.get(tid).map_or(Duration::ZERO, |(_, c)| *c);
        let d = cpu.saturating_sub(prev);
        let g = group(*tid, name);
        match sums.iter_mut().find(|(n, _)| *n == g) {
            Some((_, s)) => *s += d,
            None => sums.push((g, d)),
        }
    }
    sums.sort_by_key(|s| std::cmp::Reverse(s.1));
    sums
}

/// CPU used between two [`threads_cpu`] snapshots by the daemon loop
/// thread `loop_tid`, and by the load generator's runtime threads
/// (`load-rt`).
pub fn loop_and_load_cpu(
    before: &HashMap<i32, (String, Duration)>,
    after: &HashMap<i32, (String, Duration)>,
    loop_tid: i32,
) -> (Duration, Duration) {
    let mut daemon = Duration::ZERO;
    let mut load = Duration::ZERO;
    for (tid, (name, cpu)) in after {
        let d = cpu.saturating_sub(before.get(tid).map_or(Duration::ZERO, |(_, c)| *c));
        if *tid == loop_tid {
            daemon += d;
        } else if name.starts_with("load-rt") {
            load += d;
        }
    }
    (daemon, load)
}

/// Resident set size of process `pid`, in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    crate::process::proc_rss(pid)
        .ok_or_else(|| BenchError::Failed(format!("no VmRSS in /proc/{pid}/status")))
}

/// A token signed with `keys`, valid for a day.
pub fn token(keys: &TokenKeys, user: u64, device: u32) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    keys.sign(Claims {
        user,
        device,
        expires: now + 24 * 3600,
    })
}

/// Where the load goes: a daemon started here, or one given by address.
pub struct Target {
    /// UDP address of the daemon.
    pub addr: SocketAddr,
    /// Keys to sign tokens with.
    pub keys: TokenKeys,
    /// First user id this run may use (random for an external daemon, so
    /// runs do not collide with earlier data).
    pub user_base: u64,
    /// The seal key clients pin: `Some` when they seal their sessions.
    pub seal_key: Option<SealKey>,
    inproc: Option<InProcServer>,
}

impl Target {
    /// A daemon in this process, storing under `dir`, configured for
    /// `sealing` (then `tweak`); its clients seal when `sealing` says so.
    pub fn in_process(
        dir: &Path,
        sealing: Sealing,
        tweak: impl FnOnce(&mut Config),
    ) -> Result<Target> {
        let server = InProcServer::start(dir, |c| {
            sealing.configure(c);
            tweak(c);
        })?;
        let seal_key = match sealing {
            Sealing::Sealed => Some(
                server
                    .seal_key
                    .ok_or_else(|| BenchError::Failed("the daemon has no seal key".into()))?,
            ),
            Sealing::Clear => None,
        };
        Ok(Target {
            addr: server.udp,
            keys: server.keys.clone(),
            user_base: 1,
            seal_key,
            inproc: Some(server),
        })
    }

    /// An external daemon at `addr` whose data folder (for its token secret
    /// and, when `sealing` is sealed, its seal key) is `data_dir`.
    pub fn external(addr: SocketAddr, data_dir: &Path, sealing: Sealing) -> Result<Target> {
        let mut cfg = Config::default();
        cfg.server.data_dir = data_dir.to_path_buf();
        let keys = tern::server::load_keys(&cfg)?;
        let seal_key = match sealing {
            // Only read: loading a missing key would create one the daemon
            // does not have.
            Sealing::Sealed if !cfg.seal_key_path().exists() => {
                return Err(BenchError::Failed(format!(
                    "no seal key at {} (is the daemon's sealing off? then use --seal clear)",
                    cfg.seal_key_path().display()
                )))
            }
            Sealing::Sealed => tern::server::load_seal_key(&cfg)?.map(|k| k.public()),
            Sealing::Clear => None,
        };
        Ok(Target {
            addr,
            keys,
            user_base: (rand::random::<u32>() as u64 + 1) << 20,
            seal_key,
            inproc: None,
        })
    }

    /// The in-process daemon, if any.
    pub fn server(&self) -> Option<&InProcServer> {
        self.inproc.as_ref()
    }

    /// Stops the in-process daemon (draining it) and returns its final counters.
    pub fn stop(self) -> Result<Option<Snapshot>> {
        match self.inproc {
            Some(s) => s.stop().map(Some),
            None => Ok(None),
        }
    }
}

/// A daemon running on its own thread (a current-thread tokio runtime, as
/// the daemon's loop is one task anyway), so its CPU can be told apart.
pub use super::daemon::Daemon as InProcServer;

/// Name of the daemon loop thread (for CPU accounting).
pub const LOOP_THREAD: &str = "ternd-loop";

/// Groups this process's threads for CPU reports.
pub fn thread_group(loop_tid: i32) -> impl Fn(i32, &str) -> &'static str {
    move |tid, name| {
        if tid == loop_tid {
            "daemon loop"
        } else if name.starts_with("tern-group-com") {
            "group commit"
        } else if name.starts_with("rocksdb") {
            "rocksdb background"
        } else if name.starts_with("load-") {
            "load generator"
        } else if name.starts_with("base-") {
            "baseline"
        } else {
            "other"
        }
    }
}

/// Formats a CPU breakdown as percentages of one core over `wall`.
pub fn fmt_cpu(groups: &[(&'static str, Duration)], wall: Duration) -> String {
    let w = wall.as_secs_f64().max(1e-9);
    groups
        .iter()
        .filter(|(_, d)| d.as_secs_f64() / w >= 0.005)
        .map(|(g, d)| format!("{g} {:.0}%", 100.0 * d.as_secs_f64() / w))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A latency histogram in microseconds, 1 us to 60 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// "p50 X p99 Y p99.9 Z max W" in milliseconds.
pub fn fmt_latency(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let ms = |v: u64| v as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// 12345.6 -> "12.3k", 1234567 -> "1.23M".
pub fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Items per second.
pub fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// One line about the machine and the moment, for the record.
pub fn machine_line() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{} UTC, {cpus} CPUs ({model}), Linux {kernel}, load average {load}",
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs))
    )
}

/// Waits until `f` is true or `timeout` passes, polling every `step`.
pub fn wait_until(timeout: Duration, step: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// Waits up to `wait` for any of `fds` to become ready (their `revents`
/// cleared first, then set); returns how many are. An interrupted wait
/// counts as none ready.
pub fn ppoll(fds: &mut [libc::pollfd], wait: Duration) -> Result<usize> {
    for fd in fds.iter_mut() {
        fd.revents = 0;
    }
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the
    // given length, and `ts` outlives the call.
    let n = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(BenchError::Io {
                what: "ppoll".into(),
                source: e,
            });
        }
        return Ok(0);
    }
    Ok(n as usize)
}
