//! The benchmarks' load generator: a [`Fleet`] of sans-IO client sessions,
//! each on its own non-blocking UDP socket, all driven by one thread with
//! `ppoll`. It speaks the real protocol (login, uplink retransmission queue,
//! delayed ACKs, receipts) at a fraction of the CPU of one tokio task per
//! client, so that the daemon, not the load generator, is what is measured.
//!
//! [`run_flow`] runs senders (and optionally online receivers) on two
//! threads and reports throughput and latencies.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tern_core::auth::TokenKeys;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent, Outgoing};
use tern_core::time::Time;
use tern_core::wire::EntryBody;

use super::util::{histogram, thread_cpu_now, token};
use super::{BenchError, Result};

/// Datagrams and bytes moved by a fleet (UDP payload bytes).
#[derive(Debug, Default, Clone, Copy)]
pub struct WireStats {
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
}

/// Many client sessions on one thread.
pub struct Fleet {
    conns: Vec<ClientConn>,
    socks: Vec<UdpSocket>,
    fds: Vec<libc::pollfd>,
    start: Instant,
    buf: Vec<u8>,
    /// Traffic so far.
    pub stats: WireStats,
}

/// A non-blocking UDP socket connected to `server`, with large buffers.
pub fn client_socket(server: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(server);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    s.bind(&local.into())?;
    s.connect(&server.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Sends one datagram on a non-blocking socket, waiting for room if the
/// kernel buffer is full (loopback never drops for lack of room, so neither
/// do we).
fn send_all(sock: &UdpSocket, data: &[u8]) -> std::io::Result<()> {
    loop {
        match sock.send(data) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut fd = libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(sock),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut fd, 1, 10) };
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // ICMP port unreachable from an earlier send: the peer is gone;
            // the reliability layer will notice.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

impl Fleet {
    /// One session per token, all logging in to `server`. `tweak` adjusts
    /// each session's configuration.
    pub fn new(
        server: SocketAddr,
        tokens: Vec<Vec<u8>>,
        tweak: impl Fn(&mut ClientConfig),
    ) -> Result<Fleet> {
        let start = Instant::now();
        let mut conns = Vec::with_capacity(tokens.len());
        let mut socks = Vec::with_capacity(tokens.len());
        let mut fds = Vec::with_capacity(tokens.len());
        for t in tokens {
            let mut cfg = ClientConfig::new(Bytes::from(t));
            tweak(&mut cfg);
            conns.push(ClientConn::new(cfg, Time::ZERO, rand::random()));
            let s = client_socket(server).map_err(BenchError::io("binding a client socket"))?;
            fds.push(libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&s),
                events: libc::POLLIN,
                revents: 0,
            });
            socks.push(s);
        }
        Ok(Fleet {
            conns,
            socks,
            fds,
            start,
            buf: vec![0u8; 2048],
            stats: WireStats::default(),
        })
    }

    /// Sessions in the fleet.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True for an empty fleet.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Session `i`.
    pub fn conn(&mut self, i: usize) -> &mut ClientConn {
        &mut self.conns[i]
    }

    /// The fleet's clock.
    pub fn now(&self) -> Time {
        Time::from_micros(self.start.elapsed().as_micros() as u64)
    }

    fn flush_all(&mut self, now: Time) -> Result<()> {
        for (c, s) in self.conns.iter_mut().zip(&self.socks) {
            while let Some(d) = c.poll_transmit(now) {
                self.stats.datagrams_out += 1;
                self.stats.bytes_out += d.len() as u64;
                send_all(s, &d).map_err(BenchError::io("sending to the daemon"))?;
            }
        }
        Ok(())
    }

    /// One turn: sends what is owed, waits up to `max_wait` (less if a timer
    /// is due sooner) for datagrams, feeds them in, fires due timers, sends
    /// again and collects every event as (session index, event).
    pub fn turn(
        &mut self,
        max_wait: Duration,
        events: &mut Vec<(usize, ClientEvent)>,
    ) -> Result<()> {
        let now = self.now();
        self.flush_all(now)?;
        let mut wait = max_wait;
        if !wait.is_zero() {
            for c in &self.conns {
                if let Some(t) = c.poll_timeout() {
                    wait = wait.min(t.saturating_since(now));
                }
            }
        }
        for fd in &mut self.fds {
            fd.revents = 0;
        }
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe {
            libc::ppoll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(BenchError::Io {
                    what: "ppoll".into(),
                    source: e,
                });
            }
        }
        let now = self.now();
        if n > 0 {
            for i in 0..self.fds.len() {
                if self.fds[i].revents == 0 {
                    continue;
                }
                loop {
                    match self.socks[i].recv(&mut self.buf) {
                        Ok(len) => {
                            self.stats.datagrams_in += 1;
                            self.stats.bytes_in += len as u64;
                            self.conns[i]
                                .handle_datagram(now, Bytes::copy_from_slice(&self.buf[..len]));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::ConnectionRefused | ErrorKind::Interrupted
                            ) => {}
                        Err(e) => {
                            return Err(BenchError::Io {
                                what: "receiving from the daemon".into(),
                                source: e,
                            })
                        }
                    }
                }
            }
        }
        for c in &mut self.conns {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
        }
        self.flush_all(now)?;
        for (i, c) in self.conns.iter_mut().enumerate() {
            while let Some(ev) = c.poll_event() {
                events.push((i, ev));
            }
        }
        Ok(())
    }

    /// Turns until every session has logged in; returns the events seen on
    /// the way (the `LoggedIn` ones included).
    pub fn login_all(&mut self, timeout: Duration) -> Result<Vec<(usize, ClientEvent)>> {
        let end = Instant::now() + timeout;
        let mut events = Vec::new();
        let mut pending = self.conns.len();
        let mut seen = vec![false; self.conns.len()];
        let mut all = Vec::new();
        while pending > 0 {
            if Instant::now() >= end {
                return Err(BenchError::Failed(format!(
                    "{pending} of {} sessions did not log in within {timeout:?}",
                    self.conns.len()
                )));
            }
            self.turn(Duration::from_millis(5), &mut events)?;
            for (i, ev) in events.drain(..) {
                match &ev {
                    ClientEvent::LoggedIn { .. } if !seen[i] => {
                        seen[i] = true;
                        pending -= 1;
                    }
                    ClientEvent::LoginRefused { code } => {
                        return Err(BenchError::Failed(format!(
                            "login refused (error code {code}): wrong token secret?"
                        )))
                    }
                    _ => {}
                }
                all.push((i, ev));
            }
        }
        Ok(all)
    }

    /// Logs every session out and sends the LOGOUTs.
    pub fn logout_all(&mut self) -> Result<()> {
        for c in &mut self.conns {
            c.logout();
        }
        let now = self.now();
        self.flush_all(now)
    }
}

/// What [`run_flow`] runs.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// Sending devices (user, device).
    pub senders: Vec<(u64, u32)>,
    /// Receiving user of each sender (same length as `senders`).
    pub targets: Vec<u64>,
    /// Receiving devices to log in and drive (empty: receivers offline).
    pub receivers: Vec<(u64, u32)>,
    /// Messages each sender sends.
    pub per_sender: u64,
    /// Messages each sender keeps in flight (submitted, not yet ACKed).
    pub window: usize,
    /// Payload bytes per message (at least 16).
    pub payload: usize,
    /// `None`: sender `i` writes conversation `i + 1`; `Some(c)`: messages
    /// are spread round-robin over conversations `1..=c`.
    pub convs: Option<u64>,
    /// Stop after this long even if not done.
    pub max_time: Duration,
}

/// What [`run_flow`] measured.
#[derive(Debug)]
pub struct FlowReport {
    /// Messages submitted.
    pub submitted: u64,
    /// Messages the daemon ACKed as stored (the pseudo-ACK when offline).
    pub stored: u64,
    /// Messages refused.
    pub rejected: u64,
    /// Messages the online receivers got.
    pub delivered: u64,
    /// Messages the receivers should get.
    pub expected_deliveries: u64,
    /// DELIVERED receipts the senders got.
    pub receipts: u64,
    /// From start to the last stored ACK.
    pub stored_elapsed: Duration,
    /// From start to the last of everything (stored ACKs and deliveries).
    pub elapsed: Duration,
    /// Submit to stored ACK, microseconds.
    pub stored_latency: Histogram<u64>,
    /// Submit to arrival at the receiver, microseconds.
    pub delivery_latency: Histogram<u64>,
    /// Senders' traffic.
    pub sender_wire: WireStats,
    /// Receivers' traffic.
    pub receiver_wire: WireStats,
    /// Session losses seen (should be 0 on loopback).
    pub disconnects: u64,
    /// CPU of the sender thread.
    pub sender_cpu: Duration,
    /// CPU of the receiver thread.
    pub receiver_cpu: Duration,
    /// The run hit `max_time` before finishing.
    pub timed_out: bool,
}

struct SenderOut {
    submitted: u64,
    stored: u64,
    rejected: u64,
    receipts: u64,
    disconnects: u64,
    finished_us: u64,
    latency: Histogram<u64>,
    wire: WireStats,
    cpu: Duration,
    fleet: Fleet,
}

struct ReceiverOut {
    delivered: u64,
    disconnects: u64,
    finished_us: u64,
    latency: Histogram<u64>,
    wire: WireStats,
    cpu: Duration,
    fleet: Fleet,
}

fn micros_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// Payload: submit time (us since the run's epoch), message index, filler.
fn payload(ts_us: u64, index: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&ts_us.to_be_bytes());
    v.extend_from_slice(&index.to_be_bytes());
    while v.len() < len {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    Bytes::from(v)
}

#[allow(clippy::too_many_arguments)]
fn sender_loop(
    mut fleet: Fleet,
    spec: Arc<FlowSpec>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    receivers_done: Arc<AtomicBool>,
) -> Result<SenderOut> {
    let cpu0 = thread_cpu_now();
    let n = fleet.len();
    let total = spec.per_sender * n as u64;
    let deadline = epoch + spec.max_time;
    let mut submitted = vec![0u64; n];
    let mut outstanding = vec![0usize; n];
    let mut fifo: Vec<std::collections::VecDeque<(u64, u64)>> =
        vec![std::collections::VecDeque::new(); n];
    let (mut stored, mut rejected, mut receipts, mut disconnects) = (0u64, 0u64, 0u64, 0u64);
    let mut finished_us = 0;
    let mut latency = histogram();
    let mut events = Vec::new();
    let mut next_index = 0u64;
    loop {
        // Submit up to the window.
        let now = fleet.now();
        let mut can_submit = false;
        for i in 0..n {
            while outstanding[i] < spec.window && submitted[i] < spec.per_sender {
                let Some(seq) = fleet.conn(i).uplink().map(|u| u.next_seq()) else {
                    break;
                };
                let ts = micros_since(epoch);
                let conv = match spec.convs {
                    None => i as u64 + 1,
                    Some(c) => 1 + next_index % c.max(1),
                };
                let op = Outgoing::Send {
                    to: spec.targets[i],
                    conv,
                    msg_type: 1,
                    payload: payload(ts, next_index, spec.payload),
                };
                if fleet.conn(i).submit(now, op).is_err() {
                    break;
                }
                next_index += 1;
                fifo[i].push_back((seq, ts));
                submitted[i] += 1;
                outstanding[i] += 1;
            }
            can_submit |= submitted[i] < spec.per_sender && outstanding[i] < spec.window;
        }
        let done = stored + rejected >= total;
        if done && finished_us == 0 {
            finished_us = micros_since(epoch);
        }
        if stop.load(Ordering::Relaxed)
            || Instant::now() >= deadline
            || (done && (receivers_done.load(Ordering::Relaxed) || spec.receivers.is_empty()))
        {
            break;
        }
        let wait = if can_submit {
            Duration::ZERO
        } else {
            Duration::from_millis(5)
        };
        fleet.turn(wait, &mut events)?;
        for (i, ev) in events.drain(..) {
            match ev {
                ClientEvent::Stored { seq, .. } | ClientEvent::Rejected { seq, .. } => {
                    let is_stored = !matches!(ev, ClientEvent::Rejected { .. });
                    while let Some(&(s, ts)) = fifo[i].front() {
                        if s > seq {
                            break;
                        }
                        fifo[i].pop_front();
                        if s == seq {
                            latency.saturating_record(micros_since(epoch).saturating_sub(ts));
                        }
                    }
                    outstanding[i] = outstanding[i].saturating_sub(1);
                    if is_stored {
                        stored += 1;
                    } else {
                        rejected += 1;
                    }
                }
                ClientEvent::Entry(d) => {
                    if matches!(d.body, EntryBody::Receipt { .. }) {
                        receipts += 1;
                    }
                }
                ClientEvent::Disconnected => disconnects += 1,
                _ => {}
            }
        }
    }
    if finished_us == 0 {
        finished_us = micros_since(epoch);
    }
    Ok(SenderOut {
        submitted: submitted.iter().sum(),
        stored,
        rejected,
        receipts,
        disconnects,
        finished_us,
        latency,
        wire: fleet.stats,
        cpu: thread_cpu_now().saturating_sub(cpu0),
        fleet,
    })
}

fn receiver_loop(
    mut fleet: Fleet,
    expected: u64,
    epoch: Instant,
    max_time: Duration,
    stop: Arc<AtomicBool>,
) -> Result<ReceiverOut> {
    let cpu0 = thread_cpu_now();
    let deadline = epoch + max_time;
    let mut delivered = 0u64;
    let mut disconnects = 0u64;
    let mut latency = histogram();
    let mut events = Vec::new();
    while delivered < expected && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        fleet.turn(Duration::from_millis(5), &mut events)?;
        for (_, ev) in events.drain(..) {
            match ev {
                ClientEvent::Entry(d) => {
                    if let EntryBody::Message { payload, .. } = &d.body {
                        delivered += 1;
                        if payload.len() >= 8 {
                            let ts = u64::from_be_bytes(payload[..8].try_into().unwrap_or([0; 8]));
                            latency.saturating_record(micros_since(epoch).saturating_sub(ts));
                        }
                    }
                }
                ClientEvent::Disconnected => disconnects += 1,
                _ => {}
            }
        }
    }
    let finished_us = micros_since(epoch);
    // Let the last ACKs (delivery) go out before stopping.
    let settle = Instant::now() + Duration::from_millis(30);
    while Instant::now() < settle {
        fleet.turn(Duration::from_millis(5), &mut events)?;
        events.clear();
    }
    Ok(ReceiverOut {
        delivered,
        disconnects,
        finished_us,
        latency,
        wire: fleet.stats,
        cpu: thread_cpu_now().saturating_sub(cpu0),
        fleet,
    })
}

fn join_thread<T>(h: std::thread::JoinHandle<Result<T>>) -> Result<T> {
    h.join()
        .map_err(|_| BenchError::Failed("a load thread panicked".into()))?
}

/// Logs every session in, then runs senders and receivers on two threads
/// ("load-send", "load-recv") until every message is stored and delivered
/// or `max_time` passes. `on_start` runs after login, right before the
/// clock starts (e.g. to take a CPU snapshot).
pub fn run_flow(
    server: SocketAddr,
    keys: &TokenKeys,
    spec: FlowSpec,
    on_start: impl FnOnce(),
) -> Result<FlowReport> {
    assert_eq!(spec.senders.len(), spec.targets.len());
    let send_tokens = spec
        .senders
        .iter()
        .map(|&(u, d)| token(keys, u, d))
        .collect();
    let recv_tokens = spec
        .receivers
        .iter()
        .map(|&(u, d)| token(keys, u, d))
        .collect();
    let mut senders = Fleet::new(server, send_tokens, |_| {})?;
    let mut receivers = Fleet::new(server, recv_tokens, |_| {})?;
    receivers.login_all(Duration::from_secs(20))?;
    senders.login_all(Duration::from_secs(20))?;
    let online: std::collections::HashSet<u64> = spec.receivers.iter().map(|r| r.0).collect();
    let expected =
        spec.targets.iter().filter(|t| online.contains(t)).count() as u64 * spec.per_sender;
    let spec = Arc::new(spec);
    let stop = Arc::new(AtomicBool::new(false));
    let receivers_done = Arc::new(AtomicBool::new(false));
    on_start();
    let epoch = Instant::now();
    let max_time = spec.max_time;
    let rt = {
        let stop = stop.clone();
        let done = receivers_done.clone();
        std::thread::Builder::new()
            .name("load-recv".into())
            .spawn(move || {
                let r = receiver_loop(receivers, expected, epoch, max_time, stop.clone());
                done.store(true, Ordering::Relaxed);
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            })
            .map_err(BenchError::io("spawning the receiver thread"))?
    };
    let st = {
        let stop = stop.clone();
        let done = receivers_done.clone();
        let spec = spec.clone();
        std::thread::Builder::new()
            .name("load-send".into())
            .spawn(move || {
                let r = sender_loop(senders, spec, epoch, stop.clone(), done);
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            })
            .map_err(BenchError::io("spawning the sender thread"))?
    };
    let s = join_thread(st)?;
    let r = join_thread(rt)?;
    let (mut sf, mut rf) = (s.fleet, r.fleet);
    let _ = sf.logout_all();
    let _ = rf.logout_all();
    let end_us = s
        .finished_us
        .max(if expected > 0 { r.finished_us } else { 0 });
    let total = spec.per_sender * spec.senders.len() as u64;
    let timed_out = s.stored + s.rejected < total || r.delivered < expected;
    Ok(FlowReport {
        submitted: s.submitted,
        stored: s.stored,
        rejected: s.rejected,
        delivered: r.delivered,
        expected_deliveries: expected,
        receipts: s.receipts,
        stored_elapsed: Duration::from_micros(s.finished_us),
        elapsed: Duration::from_micros(end_us),
        stored_latency: s.latency,
        delivery_latency: r.latency,
        sender_wire: s.wire,
        receiver_wire: r.wire,
        disconnects: s.disconnects + r.disconnects,
        sender_cpu: s.cpu,
        receiver_cpu: r.cpu,
        timed_out,
    })
}
