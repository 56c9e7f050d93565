//! The flood of `tern-bench flood`: threads in this process, each sending
//! a pool of hostile datagrams (from [`tern_sim::hostile`]) from many
//! source addresses on loopback (127.0.0.2 and up, one socket each, so
//! per-source limits see many sources, as with a spoofed flood), paced to a
//! target rate with `sendmmsg`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use tern_sim::hostile;

use super::util::thread_cpu_now;
use super::{BenchError, Result};

/// What a flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodKind {
    /// Random bytes, sizes 1..1400 (mixed).
    Garbage,
    /// Version 1 headers with random session ids and valid frames and CRC.
    RandomSessions,
    /// LOGINs without a cookie (random 64-byte tokens, mixed padding).
    Logins,
    /// Sealed-UDP HANDSHAKEs without a cookie (a random 96-byte message 1,
    /// padded to 256 bytes as clients send it).
    Handshakes,
    /// The three above, interleaved.
    Mixed,
}

impl FloodKind {
    /// What it is, for the report.
    pub fn name(self) -> &'static str {
        match self {
            FloodKind::Garbage => "garbage (random bytes, 1-1400 B)",
            FloodKind::RandomSessions => "well-formed, random session ids",
            FloodKind::Logins => "LOGINs without cookie",
            FloodKind::Handshakes => "HANDSHAKEs without cookie",
            FloodKind::Mixed => "mixed (all three)",
        }
    }
}

/// Datagrams per `sendmmsg`.
const BATCH: usize = 32;
/// Distinct datagrams prepared per thread (cycled).
const POOL: usize = 4096;

fn pool(kind: FloodKind, seed: u64) -> Vec<Vec<u8>> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..POOL)
        .map(|i| match kind {
            FloodKind::Garbage => hostile::garbage(&mut r),
            FloodKind::RandomSessions => hostile::random_session_packet(&mut r),
            FloodKind::Logins => hostile::login_without_cookie(&mut r),
            FloodKind::Handshakes => hostile::handshake_without_cookie(&mut r),
            FloodKind::Mixed => match i % 3 {
                0 => hostile::garbage(&mut r),
                1 => hostile::random_session_packet(&mut r),
                _ => hostile::login_without_cookie(&mut r),
            },
        })
        .collect()
}

/// What one flood thread did.
#[derive(Debug, Default, Clone, Copy)]
pub struct FloodStats {
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Sending time.
    pub elapsed: Duration,
    /// CPU of the thread.
    pub cpu: Duration,
}

fn flood_sockets(thread: usize, sources: usize, server: SocketAddr) -> Result<Vec<UdpSocket>> {
    (0..sources.max(1))
        .map(|i| {
            let n = 2 + thread * sources.max(1) + i;
            let ip = Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8);
            let s = UdpSocket::bind(SocketAddrV4::new(ip, 0))
                .map_err(BenchError::io(format!("binding a flood socket on {ip}")))?;
            s.connect(server)
                .map_err(BenchError::io("connecting a flood socket"))?;
            s.set_nonblocking(true)
                .map_err(BenchError::io("setting a flood socket non-blocking"))?;
            Ok(s)
        })
        .collect()
}

/// Sends `pool` round robin over `socks` at `rate` datagrams per second
/// until `stop`.
fn flood_loop(socks: &[UdpSocket], pool: &[Vec<u8>], rate: u64, stop: &AtomicBool) -> FloodStats {
    let cpu0 = thread_cpu_now();
    let start = Instant::now();
    let mut st = FloodStats::default();
    let mut next = 0usize;
    let mut sock = 0usize;
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if st.sent >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let n = ((due - st.sent) as usize).min(BATCH);
        iov.clear();
        msgs.clear();
        for k in 0..n {
            let d = &pool[(next + k) % pool.len()];
            iov.push(libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            });
        }
        for v in iov.iter_mut() {
            // SAFETY: an all-zero mmsghdr is valid (no name, no control).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = 1;
            msgs.push(m);
        }
        let fd = socks[sock % socks.len()].as_raw_fd();
        sock += 1;
        // SAFETY: `msgs` holds `n` valid headers pointing into `iov`, which
        // points into `pool`; all outlive the call.
        let rc = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        if rc > 0 {
            let rc = rc as usize;
            for k in 0..rc {
                st.bytes += pool[(next + k) % pool.len()].len() as u64;
            }
            st.sent += rc as u64;
            next = (next + rc) % pool.len();
        } else {
            // Full socket buffer (or ICMP error): move on to the next socket.
            std::thread::yield_now();
        }
    }
    st.elapsed = start.elapsed();
    st.cpu = thread_cpu_now().saturating_sub(cpu0);
    st
}

/// A running flood.
pub struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<FloodStats>>,
}

impl Flood {
    /// Starts `threads` flood threads of `kind` at `rate` datagrams per
    /// second in all, each from `sources` addresses, seeded from `seed`.
    pub fn start(
        kind: FloodKind,
        server: SocketAddr,
        rate: u64,
        threads: usize,
        sources: usize,
        seed: u64,
    ) -> Result<Flood> {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = threads.max(1);
        let mut hs = Vec::new();
        for t in 0..threads {
            let socks = flood_sockets(t, sources, server)?;
            let pool = pool(kind, seed + t as u64);
            let stop = stop.clone();
            let per = rate / threads as u64;
            hs.push(
                std::thread::Builder::new()
                    .name(format!("flood-{t}"))
                    .spawn(move || flood_loop(&socks, &pool, per, &stop))
                    .map_err(BenchError::io("spawning a flood thread"))?,
            );
        }
        Ok(Flood { stop, threads: hs })
    }

    /// Stops every thread; what they did, summed.
    pub fn stop(self) -> FloodStats {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = FloodStats::default();
        for h in self.threads {
            if let Ok(s) = h.join() {
                all.sent += s.sent;
                all.bytes += s.bytes;
                all.elapsed = all.elapsed.max(s.elapsed);
                all.cpu += s.cpu;
            }
        }
        all
    }
}
