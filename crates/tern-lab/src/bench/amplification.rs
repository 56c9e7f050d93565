//! `tern-bench amplification`: how many bytes the daemon sends back to a
//! source it has not validated, per byte received from it, for every kind of
//! datagram such a source can send (LOGINs without or with bad cookies,
//! garbage, bad versions, bad checksums, unknown session ids, HEARTBEATs and
//! other frames before login). A spoofed source must not be able to use the
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
use rand::{Rng, RngCore};
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::{Ack, Frame, Header, Login, Packet, PacketBuilder, Send};

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

fn header(session_id: u64, packet_number: u64) -> Header {
    Header {
        session_id,
        packet_number,
    }
}

fn build(h: Header, frames: &[Frame], pad_to: usize) -> Bytes {
    let mut pb = PacketBuilder::new(h, MAX_DATAGRAM);
    for f in frames {
        pb.push(f).expect("probe frame fits");
    }
    if pad_to > 0 {
        pb.pad_to(pad_to);
    }
    pb.finish()
}

fn login(token: &[u8]) -> Frame {
    Frame::Login(Login {
        token: Bytes::copy_from_slice(token),
        epoch: 0,
        checkpoint: 0,
    })
}

fn random_bytes(rng: &mut impl RngCore, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// Recomputes the CRC trailer after editing a datagram's body.
fn reseal(mut v: Vec<u8>) -> Bytes {
    let n = v.len();
    if n >= 4 {
        let crc = crc32_ieee(&v[..n - 4]);
        v[n - 4..].copy_from_slice(&crc.to_be_bytes());
    }
    Bytes::from(v)
}

/// IEEE CRC-32 (the trailer's), bitwise: probes are few.
fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// A datagram shaped like a sealed packet: a header with flags 0x01, then
/// random bytes standing for ciphertext and tag, `len` bytes in all.
fn sealed_junk(r: &mut impl RngCore, session_id: u64, i: usize, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    v.push(1u8);
    v.push(1u8);
    v.extend_from_slice(&session_id.to_be_bytes());
    v.push((1 + i as u8) & 0x3f);
    while v.len() < len {
        v.push(r.gen());
    }
    Bytes::from(v)
}

/// Makes copy `i` of a probe.
type MakeProbe = Box<dyn Fn(&mut rand::rngs::StdRng, usize) -> Bytes>;

/// One kind of probe: a name and a generator of its datagrams (one per copy).
struct Kind {
    name: String,
    make: MakeProbe,
}

fn kinds(token: Vec<u8>, stolen_cookie: Bytes) -> Vec<Kind> {
    let mut k: Vec<Kind> = Vec::new();
    let mut add = |name: String, make: MakeProbe| k.push(Kind { name, make });
    // LOGIN without a cookie: answered by RETRY, capped at the LOGIN's size.
    for pad in [0usize, 120, 300, 600, 1200] {
        let t = token.clone();
        let name = if pad == 0 {
            "LOGIN, no cookie, valid token, unpadded".to_string()
        } else {
            format!("LOGIN, no cookie, padded to {pad} B")
        };
        add(
            name,
            Box::new(move |_, i| build(header(0, 1 + i as u64), &[login(&t)], pad)),
        );
    }
    add(
        "LOGIN, no cookie, 1-byte token (smallest LOGIN)".into(),
        Box::new(|_, i| build(header(0, 1 + i as u64), &[login(&[7])], 0)),
    );
    add(
        "LOGIN, no cookie, random 64-byte token".into(),
        Box::new(|r, i| build(header(0, 1 + i as u64), &[login(&random_bytes(r, 64))], 0)),
    );
    {
        let t = token.clone();
        add(
            "LOGIN + forged cookie (24 random bytes)".into(),
            Box::new(move |r, i| {
                build(
                    header(0, 1 + i as u64),
                    &[Frame::Cookie(Bytes::from(random_bytes(r, 24))), login(&t)],
                    0,
                )
            }),
        );
    }
    {
        let t = token.clone();
        let c = stolen_cookie.clone();
        add(
            "LOGIN + real cookie of another address".into(),
            Box::new(move |_, i| {
                build(
                    header(0, 1 + i as u64),
                    &[Frame::Cookie(c.clone()), login(&t)],
                    0,
                )
            }),
        );
    }
    {
        let t = token.clone();
        add(
            "LOGIN + 64-byte junk cookie".into(),
            Box::new(move |r, i| {
                build(
                    header(0, 1 + i as u64),
                    &[Frame::Cookie(Bytes::from(random_bytes(r, 64))), login(&t)],
                    0,
                )
            }),
        );
    }
    // Sealed raw UDP: HANDSHAKE (Noise NK message 1) instead of a LOGIN.
    for (len, pad) in [(96usize, 0usize), (96, 256), (1, 0), (1000, 0)] {
        let name = match (len, pad) {
            (96, 0) => "HANDSHAKE, no cookie, 96-byte message, unpadded".to_string(),
            (96, _) => format!("HANDSHAKE, no cookie, padded to {pad} B (as sent)"),
            (1, _) => "HANDSHAKE, no cookie, 1-byte message".to_string(),
            _ => format!("HANDSHAKE, no cookie, {len}-byte message"),
        };
        add(
            name,
            Box::new(move |r, i| {
                build(
                    header(0, 1 + i as u64),
                    &[Frame::Handshake(Bytes::from(random_bytes(r, len)))],
                    pad,
                )
            }),
        );
    }
    add(
        "HANDSHAKE + forged cookie".into(),
        Box::new(|r, i| {
            build(
                header(0, 1 + i as u64),
                &[
                    Frame::Cookie(Bytes::from(random_bytes(r, 24))),
                    Frame::Handshake(Bytes::from(random_bytes(r, 96))),
                ],
                256,
            )
        }),
    );
    {
        let c = stolen_cookie.clone();
        add(
            "HANDSHAKE + real cookie of another address".into(),
            Box::new(move |r, i| {
                build(
                    header(0, 1 + i as u64),
                    &[
                        Frame::Cookie(c.clone()),
                        Frame::Handshake(Bytes::from(random_bytes(r, 96))),
                    ],
                    256,
                )
            }),
        );
    }
    for len in [48usize, 200] {
        add(
            format!("sealed packet (flags 1), random session id, {len} B"),
            Box::new(move |r, i| {
                let sid = r.gen_range(1..=u64::MAX);
                sealed_junk(r, sid, i, len)
            }),
        );
    }
    add(
        "sealed packet (flags 1), session 0, 64 B".into(),
        Box::new(|r, i| sealed_junk(r, 0, i, 64)),
    );
    // Garbage.
    for size in [1usize, 4, 11, 16, 40, 100, 400, 1200, 1500, 2000] {
        add(
            format!("garbage, {size} random bytes"),
            Box::new(move |r, _| Bytes::from(random_bytes(r, size))),
        );
    }
    for size in [16usize, 60, 600] {
        add(
            format!("garbage after version byte 1, {size} B"),
            Box::new(move |r, _| {
                let mut v = random_bytes(r, size);
                v[0] = 1;
                Bytes::from(v)
            }),
        );
    }
    // Bad versions and checksums on otherwise valid LOGINs.
    {
        let t = token.clone();
        add(
            "valid LOGIN with version 2..255".into(),
            Box::new(move |r, i| {
                let mut v = build(header(0, 1 + i as u64), &[login(&t)], 0).to_vec();
                v[0] = r.gen_range(2..=255);
                reseal(v)
            }),
        );
    }
    {
        let t = token.clone();
        add(
            "valid LOGIN with version 0 (negotiation)".into(),
            Box::new(move |_, i| {
                let mut v = build(header(0, 1 + i as u64), &[login(&t)], 0).to_vec();
                v[0] = 0;
                reseal(v)
            }),
        );
    }
    {
        let t = token.clone();
        add(
            "LOGIN with a bad CRC".into(),
            Box::new(move |_, i| {
                let mut v = build(header(0, 1 + i as u64), &[login(&t)], 0).to_vec();
                let n = v.len();
                v[n - 1] ^= 0x5a;
                Bytes::from(v)
            }),
        );
    }
    {
        let t = token.clone();
        add(
            "LOGIN cut short (CRC recomputed)".into(),
            Box::new(move |_, i| {
                let mut v = build(header(0, 1 + i as u64), &[login(&t)], 0).to_vec();
                let n = v.len();
                v.drain(n / 2..n - 4);
                reseal(v)
            }),
        );
    }
    // Unknown sessions.
    for pad in [0usize, 100, 1200] {
        add(
            if pad == 0 {
                "HEARTBEAT, random session id".to_string()
            } else {
                format!("HEARTBEAT, random session id, padded to {pad} B")
            },
            Box::new(move |r, i| {
                build(
                    header(r.gen_range(1..=u64::MAX), 1 + i as u64),
                    &[Frame::Heartbeat(
                        r.gen_range(0..=tern_core::wire::varint::MAX),
                    )],
                    pad,
                )
            }),
        );
    }
    add(
        "header only, random session id".into(),
        Box::new(|r, i| build(header(r.gen_range(1..=u64::MAX), 1 + i as u64), &[], 0)),
    );
    add(
        "ACK, random session id".into(),
        Box::new(|r, i| {
            build(
                header(r.gen_range(1..=u64::MAX), 1 + i as u64),
                &[Frame::Ack(Ack {
                    receiver_online: false,
                    cumulative: r.gen_range(1..1000),
                    delay_us: 100,
                    ranges: vec![],
                })],
                0,
            )
        }),
    );
    add(
        "SEND 64 B, random session id".into(),
        Box::new(|r, i| {
            build(
                header(r.gen_range(1..=u64::MAX), 1 + i as u64),
                &[Frame::Send(Send {
                    seq: 1,
                    to: 2,
                    conv: 3,
                    msg_type: 0,
                    payload: Bytes::from(random_bytes(r, 64)),
                })],
                0,
            )
        }),
    );
    add(
        "LOGOUT, random session id".into(),
        Box::new(|r, i| {
            build(
                header(r.gen_range(1..=u64::MAX), 1 + i as u64),
                &[Frame::Logout],
                0,
            )
        }),
    );
    // Frames before login.
    add(
        "HEARTBEAT, session 0".into(),
        Box::new(|r, i| {
            build(
                header(0, 1 + i as u64),
                &[Frame::Heartbeat(
                    r.gen_range(0..=tern_core::wire::varint::MAX),
                )],
                0,
            )
        }),
    );
    add(
        "SEND 64 B, session 0".into(),
        Box::new(|r, i| {
            build(
                header(0, 1 + i as u64),
                &[Frame::Send(Send {
                    seq: 1,
                    to: 2,
                    conv: 3,
                    msg_type: 0,
                    payload: Bytes::from(random_bytes(r, 64)),
                })],
                0,
            )
        }),
    );
    add(
        "header only, session 0".into(),
        Box::new(|_, i| build(header(0, 1 + i as u64), &[], 0)),
    );
    add(
        "unknown frame type 0x3f, session 0".into(),
        Box::new(|_, i| {
            let mut v = build(header(0, 1 + i as u64), &[Frame::Padding(1)], 0).to_vec();
            let n = v.len();
            v[n - 5] = 0x3f;
            reseal(v)
        }),
    );
    k
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
    setup
        .send_to(
            &build(
                header(0, 1),
                &[Frame::Handshake(Bytes::from(vec![0u8; 96]))],
                256,
            ),
            server,
        )
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
    let kinds = kinds(tok, stolen);
    let mut socks = Vec::new();
    let mut sent = Vec::new();
    for (ki, k) in kinds.iter().enumerate() {
        for c in 0..copies {
            let d = (k.make)(&mut rng, c);
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
