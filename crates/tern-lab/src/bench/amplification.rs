//! `tern-bench amplification`: how many bytes the daemon sends back to a
//! source it has not validated, per byte received from it, for every kind of
//! datagram such a source can send (LOGINs without or with bad cookies,
//! garbage, bad versions, bad checksums, unknown session ids, HEARTBEATs and
//! other frames before login: the probes of the hostile-datagram catalogue,
//! [`tern_sim::hostile::prelogin_probes`]). A spoofed source must not be able to use the
//! daemon as an amplifier: every factor must be at most 1.
//!
//! Real sockets on 127.0.0.1: an in-process daemon on port 0 with the
//! default configuration (address validation on, sealed raw UDP required), and a fresh client socket
//! (a new, unvalidated address) per kind of probe. Every reply is counted,
//! and the total is checked against the daemon's own count of datagrams it
//! sent, so that no reply is missed.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::wire::{Frame, Packet};
use tern_sim::hostile::{self, prelogin_probes};

use super::daemon::Daemon;
use super::util::{machine_line, token, ScratchDir};
use super::{BenchError, Result};
use tern::server::Snapshot;

/// Options of `tern-bench amplification`.
#[derive(Debug, Clone)]
pub struct AmplificationOpts {
    /// Copies of each probe (random parts differ between copies).
    pub copies: usize,
    /// Folder for the daemon's data (default: the temp folder).
    pub dir: Option<PathBuf>,
    /// Keep it.
    pub keep: bool,
}

/// What one kind of probe got back.
#[derive(Debug, Clone)]
pub struct KindResult {
    /// What was sent.
    pub name: String,
    /// Datagrams sent.
    pub probes: u64,
    /// UDP payload bytes sent.
    pub bytes_in: u64,
    /// Datagrams received back.
    pub replies: u64,
    /// UDP payload bytes received back.
    pub bytes_out: u64,
    /// The largest ratio for a single probe (each copy is sent from its own
    /// socket, so replies are attributed to the probe that caused them).
    pub worst_single: f64,
}

impl KindResult {
    /// Bytes sent back per byte received.
    pub fn factor(&self) -> f64 {
        self.bytes_out as f64 / self.bytes_in.max(1) as f64
    }
}

/// The whole measurement.
#[derive(Debug, Clone)]
pub struct AmplificationReport {
    /// One entry per kind of probe.
    pub kinds: Vec<KindResult>,
    /// Replies received on all probe sockets (setup included).
    pub replies_received: u64,
    /// Datagrams the daemon says it sent (its final counters).
    pub daemon_sent: u64,
    /// Daemon counters at the end.
    pub snapshot: Snapshot,
}

impl AmplificationReport {
    /// The largest per-kind factor, and the largest single-probe ratio.
    pub fn max_factor(&self) -> f64 {
        self.kinds
            .iter()
            .map(|k| k.factor().max(k.worst_single))
            .fold(0.0, f64::max)
    }

    /// Bytes out / bytes in over every probe.
    pub fn overall_factor(&self) -> f64 {
        let i: u64 = self.kinds.iter().map(|k| k.bytes_in).sum();
        let o: u64 = self.kinds.iter().map(|k| k.bytes_out).sum();
        o as f64 / i.max(1) as f64
    }
}

fn probe_socket() -> Result<UdpSocket> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(BenchError::io("binding a probe socket"))?;
    s.set_nonblocking(true)
        .map_err(BenchError::io("setting a probe socket non-blocking"))?;
    Ok(s)
}

/// Reads every socket until `idle` passes with nothing new (at most
/// `limit`); returns (datagrams, bytes) per socket.
fn collect(socks: &[UdpSocket], idle: Duration, limit: Duration) -> Vec<(u64, u64)> {
    let mut got = vec![(0u64, 0u64); socks.len()];
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    let mut last = Instant::now();
    while last.elapsed() < idle && start.elapsed() < limit {
        let mut any = false;
        for (i, s) in socks.iter().enumerate() {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                got[i].0 += 1;
                got[i].1 += n as u64;
                any = true;
            }
        }
        if any {
            last = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    got
}

/// Starts a daemon (default config) under `dir`, sends every kind of probe
/// `copies` times, each copy from its own fresh socket, and counts what
/// comes back. No timing figure is involved: replies are waited for until
/// 500 ms pass without one, and the total is compared with the daemon's own
/// count.
pub fn measure(dir: &Path, copies: usize) -> Result<AmplificationReport> {
    let copies = copies.max(1);
    // The daemon's own default: sealed raw UDP required (the bench
    // helpers' daemon otherwise lets clear clients in).
    let daemon = Daemon::start(dir, |c| {
        c.seal.policy = tern::config::SealPolicyName::Required;
    })?;
    let server = daemon.udp;
    let tok = token(&daemon.keys, 1, 1);

    // A real cookie, for the "cookie of another address" probes (a
    // HANDSHAKE: with sealing required, a clear LOGIN gets no RETRY).
    let setup = probe_socket()?;
    let hello = hostile::padded(
        0,
        1,
        vec![Frame::Handshake(Bytes::from(vec![0u8; 96]))],
        256,
    );
    setup
        .send_to(&hello, server)
        .map_err(BenchError::io("sending the setup HANDSHAKE"))?;
    let mut stolen = None;
    let mut setup_replies = 0u64;
    let mut buf = vec![0u8; 4096];
    let end = Instant::now() + Duration::from_secs(10);
    while stolen.is_none() && Instant::now() < end {
        match setup.recv_from(&mut buf) {
            Ok((n, _)) => {
                setup_replies += 1;
                if let Ok(p) = Packet::decode(Bytes::copy_from_slice(&buf[..n])) {
                    for f in p.frames {
                        if let Frame::Retry(c) = f {
                            stolen = Some(c);
                        }
                    }
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let stolen =
        stolen.ok_or_else(|| BenchError::Failed("no RETRY to the setup HANDSHAKE".into()))?;

    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(4);
    let kinds = prelogin_probes(&tok, &stolen);
    let mut socks = Vec::new();
    let mut sent = Vec::new();
    for (ki, k) in kinds.iter().enumerate() {
        for c in 0..copies {
            let d = k.datagram(&mut rng, c);
            let s = probe_socket()?;
            s.send_to(&d, server)
                .map_err(BenchError::io("sending a probe"))?;
            sent.push((ki, d.len() as u64));
            socks.push(s);
        }
    }
    let got = collect(&socks, Duration::from_millis(500), Duration::from_secs(20));
    let mut results: Vec<KindResult> = kinds
        .iter()
        .map(|k| KindResult {
            name: k.name.clone(),
            probes: 0,
            bytes_in: 0,
            replies: 0,
            bytes_out: 0,
            worst_single: 0.0,
        })
        .collect();
    for ((ki, len), (n, bytes)) in sent.iter().zip(&got) {
        let r = &mut results[*ki];
        r.probes += 1;
        r.bytes_in += len;
        r.replies += n;
        r.bytes_out += bytes;
        r.worst_single = r.worst_single.max(*bytes as f64 / (*len).max(1) as f64);
    }
    // Late replies to the setup socket count too.
    let late = collect(
        std::slice::from_ref(&setup),
        Duration::from_millis(50),
        Duration::from_secs(1),
    );
    let replies_received = setup_replies + late[0].0 + got.iter().map(|g| g.0).sum::<u64>();
    let snapshot = daemon.stop()?;
    Ok(AmplificationReport {
        kinds: results,
        replies_received,
        daemon_sent: snapshot.broker.datagrams_out,
        snapshot,
    })
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &AmplificationOpts) -> Result<AmplificationReport> {
    println!("tern-bench amplification: {}", machine_line());
    println!(
        "  in-process daemon on 127.0.0.1:0, default config (address validation on, seal policy required); {} copies of each probe, each from a fresh socket (an unvalidated address)",
        opts.copies.max(1)
    );
    let scratch = ScratchDir::new(opts.dir.as_deref(), "amplification", opts.keep)?;
    let r = measure(scratch.path(), opts.copies)?;
    println!(
        "  {:<50} {:>6} {:>9} {:>7} {:>9} {:>7} {:>7}",
        "probe (UDP payload bytes)", "sent", "bytes in", "replies", "bytes out", "factor", "worst"
    );
    for k in &r.kinds {
        println!(
            "  {:<50} {:>6} {:>9} {:>7} {:>9} {:>7.3} {:>7.3}",
            k.name,
            k.probes,
            k.bytes_in,
            k.replies,
            k.bytes_out,
            k.factor(),
            k.worst_single
        );
    }
    let (pi, bi, ro, bo) = r.kinds.iter().fold((0, 0, 0, 0), |a, k| {
        (
            a.0 + k.probes,
            a.1 + k.bytes_in,
            a.2 + k.replies,
            a.3 + k.bytes_out,
        )
    });
    println!(
        "  {:<50} {:>6} {:>9} {:>7} {:>9} {:>7.3}",
        "all probes",
        pi,
        bi,
        ro,
        bo,
        r.overall_factor()
    );
    println!(
        "  with IPv4+UDP headers (28 B per datagram): overall {:.3}",
        (bo + 28 * ro) as f64 / (bi + 28 * pi).max(1) as f64
    );
    let b = &r.snapshot.broker;
    println!(
        "  daemon: {} datagrams in, {} out; malformed {}, unknown session {}, rate limited {}, RETRY cookies {}, bad cookies {}, logins {}",
        b.datagrams_in, b.datagrams_out, b.malformed, b.unknown_session, b.rate_limited, b.retries_sent, b.bad_cookies, b.logins
    );
    println!(
        "  replies received {} of {} the daemon sent (1 to the setup HANDSHAKE that fetched the cookie)",
        r.replies_received, r.daemon_sent
    );
    let worst = r.kinds.iter().max_by(|a, b| {
        a.factor()
            .max(a.worst_single)
            .total_cmp(&b.factor().max(b.worst_single))
    });
    println!(
        "  max amplification factor {:.3}{} (target <= 1.0: {})",
        r.max_factor(),
        worst.map_or(String::new(), |k| format!(" ({})", k.name)),
        if r.max_factor() <= 1.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    if r.replies_received != r.daemon_sent {
        println!("  WARNING: not every reply the daemon sent was received; factors may be low");
    }
    Ok(r)
}
