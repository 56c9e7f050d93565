//! The in-process daemon every `tern-bench` benchmark runs against (also known as
//! [`super::util::InProcServer`]): the daemon on its own thread, with what a
//! client needs to reach each transport (UDP address, QUIC address and
//! certificate fingerprint, seal key), and a way to wake the broker loop so
//! that its counters are published at a known moment.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use tern_core::auth::TokenKeys;

use super::util::{gettid, LOOP_THREAD};
use super::{BenchError, Result};
use tern::config::Config;
use tern::server::{Metrics, Server, Snapshot};

/// The environment overrides (`TERN_<SECTION>_<KEY>`) the benchmarks'
/// daemon takes, for before-and-after comparisons; every other setting is
/// the default or the benchmark's own.
const COMPARISON_OVERRIDES: [&str; 3] = [
    "TERN_SERVER_COMMITS_IN_FLIGHT",
    "TERN_QUIC_LISTEN",
    "TERN_LIMITS_KERNEL_FILTER",
];

/// A daemon on its own thread (current-thread runtime), on 127.0.0.1:0.
pub struct Daemon {
    /// Raw UDP address.
    pub udp: SocketAddr,
    /// QUIC address, when `[quic] listen` was set by the tweak.
    pub quic: Option<SocketAddr>,
    /// SHA-256 fingerprint of the QUIC certificate (hex), with QUIC.
    pub fingerprint: Option<String>,
    /// The seal key sealed raw-UDP clients pin (none with `[seal] policy = "off"`).
    pub seal_key: Option<tern::client::SealKey>,
    /// Token keys of its data folder.
    pub keys: TokenKeys,
    /// Kernel thread id of the broker loop.
    pub loop_tid: i32,
    metrics: Metrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::result::Result<(), tern::server::ServerError>>>,
}

struct Ready {
    udp: SocketAddr,
    quic: Option<SocketAddr>,
    fingerprint: Option<String>,
    seal_key: Option<tern::client::SealKey>,
    metrics: Metrics,
    tid: i32,
}

impl Daemon {
    /// Starts a daemon with its data under `dir`, in the default
    /// configuration (sealed raw UDP, and QUIC); `tweak` adjusts the config
    /// (for instance `cfg.seal.policy = SealPolicyName::Off`).
    pub fn start(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Result<Daemon> {
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().expect("literal");
        cfg.server.data_dir = dir.to_path_buf();
        // The seal policy stays the daemon's default (`required`) unless
        // the tweak changes it: benches measure what a user runs
        // (issue 14, item 7).
        // QUIC stays at the daemon's default too (on, next to raw UDP; with
        // port 0, on a port of its own): a user's daemon serves both, and
        // the QUIC limit on the packet size then applies to every peer
        // (proto-spec/quic.md, "Sizes").
        tweak(&mut cfg);
        // The settings a before-and-after comparison may change without a
        // rebuild (benchmarks otherwise run the default configuration),
        // read by the daemon's own environment overrides.
        cfg.apply_env(|var| {
            let v = COMPARISON_OVERRIDES
                .contains(&var)
                .then(|| std::env::var(var).ok())
                .flatten()?;
            eprintln!("(not the default: {var}={v})");
            Some(v)
        })
        .map_err(|e| BenchError::Failed(e.to_string()))?;
        cfg.validate()
            .map_err(|e| BenchError::Failed(format!("config: {e}")))?;
        let keys = tern::server::load_keys(&cfg)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::result::Result<Ready, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(LOOP_THREAD.into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("runtime: {e}")));
                        return Ok(());
                    }
                };
                rt.block_on(async move {
                    let server = match Server::bind(cfg).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return Ok(());
                        }
                    };
                    let _ = ready_tx.send(Ok(Ready {
                        udp: server.local_addr(),
                        quic: server.quic_addr(),
                        fingerprint: server.quic_fingerprint(),
                        seal_key: server.seal_key(),
                        metrics: server.metrics(),
                        tid: gettid(),
                    }));
                    server
                        .run(async move {
                            let _ = stop_rx.await;
                        })
                        .await
                })
            })
            .map_err(BenchError::io("spawning the daemon thread"))?;
        let r = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| BenchError::Failed("the daemon did not start within 30 s".into()))?
            .map_err(BenchError::Failed)?;
        Ok(Daemon {
            udp: r.udp,
            quic: r.quic,
            fingerprint: r.fingerprint,
            seal_key: r.seal_key,
            keys,
            loop_tid: r.tid,
            metrics: r.metrics,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Counters as of the loop's last publication (about once a second,
    /// and only when the loop wakes up).
    pub fn snapshot(&self) -> Snapshot {
        self.metrics.snapshot()
    }

    /// Counters that include everything received so far: waits past the
    /// publication period, then wakes the loop with one 1-byte datagram of
    /// version 0 (counted as one datagram in and one malformed; it is too
    /// short to be answered), and waits for it to publish. Callers subtract
    /// [`POKE_DATAGRAMS`] per call when they report deltas.
    pub fn settled_snapshot(&self) -> Snapshot {
        std::thread::sleep(Duration::from_millis(1100));
        if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
            let _ = s.send_to(&[0u8], self.udp);
        }
        std::thread::sleep(Duration::from_millis(100));
        self.metrics.snapshot()
    }

    /// Stops the daemon (draining it) and returns its final counters.
    pub fn stop(mut self) -> Result<Snapshot> {
        self.shutdown()?;
        Ok(self.metrics.snapshot())
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(r) => r?,
                Err(_) => return Err(BenchError::Failed("the daemon thread panicked".into())),
            }
        }
        Ok(())
    }
}

/// Datagrams (in, and malformed) that one [`Daemon::settled_snapshot`] adds.
pub const POKE_DATAGRAMS: u64 = 1;

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// System-wide UDP receive-buffer drops (`Udp: RcvbufErrors`).
pub fn udp_rcvbuf_errors() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Datagrams the kernel dropped for a full receive buffer on the IPv4 UDP
/// socket bound to `addr` (the `drops` column of `/proc/net/udp`).
pub fn socket_drops(addr: SocketAddr) -> u64 {
    let SocketAddr::V4(a) = addr else {
        return 0;
    };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(a.ip().octets()),
        a.port()
    );
    let Ok(text) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&want.as_str()))
                .then(|| f.last().and_then(|d| d.parse::<u64>().ok()))
                .flatten()
        })
        .sum()
}

/// The folder for a benchmark's daemon data: `dir` if given, else
/// `/dev/shm` when present. These benchmarks compare transports and
/// attacks, not storage: on the shared machines an fsync on the real disk
/// sometimes stalls for hundreds of milliseconds, which would swamp the
/// tail latencies being compared. The second value describes the choice.
pub fn data_base(dir: Option<&Path>) -> (Option<std::path::PathBuf>, String) {
    match dir {
        Some(d) => (Some(d.to_path_buf()), format!("data under {}", d.display())),
        None if Path::new("/dev/shm").is_dir() => (
            Some("/dev/shm".into()),
            "data on tmpfs (/dev/shm: fsync nearly free, so disk stalls do not swamp the tails; --dir DIR for a disk)".into(),
        ),
        None => (None, "data in the temp folder".into()),
    }
}
