//! The benchmarks' load generator: a [`Fleet`] of sans-IO client sessions,
//! each on its own non-blocking UDP socket, all driven by one thread with
//! `ppoll`. It speaks the real protocol (login, uplink retransmission queue,
//! delayed ACKs, receipts) at a fraction of the CPU of one tokio task per
//! client, so that the daemon, not the load generator, is what is measured.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::time::Time;
use tern_core::wire::ErrorCode;

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

/// `POLLIN` entries for `socks`, in order, for `poll`/`ppoll`.
pub(super) fn pollfds(socks: &[UdpSocket]) -> Vec<libc::pollfd> {
    socks
        .iter()
        .map(|s| libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(s),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect()
}

/// Sends one datagram on a non-blocking socket, waiting for room if the
/// kernel buffer is full (loopback never drops for lack of room, so neither
/// do we). Every load generator sends through it.
pub(super) fn send_all(sock: &UdpSocket, data: &[u8]) -> std::io::Result<()> {
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
        for t in tokens {
            let mut cfg = ClientConfig::new(Bytes::from(t));
            tweak(&mut cfg);
            conns.push(ClientConn::new(cfg, Time::ZERO, rand::random()));
            socks.push(client_socket(server).map_err(BenchError::io("binding a client socket"))?);
        }
        let fds = pollfds(&socks);
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
        let n = super::util::ppoll(&mut self.fds, wait)?;
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
                        let why = if *code == ErrorCode::SealRequired as u64 {
                            "the daemon requires sealed sessions (--seal sealed)"
                        } else {
                            "wrong token secret?"
                        };
                        return Err(BenchError::Failed(format!(
                            "login refused (error code {code}): {why}"
                        )));
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
