//! [`Mux`]: many sans-IO client sessions sharing a few UDP sockets, driven
//! by one thread, for the benchmarks that need tens of thousands of
//! devices (`storm`, `live-fanout`). The daemon finds a session by its id,
//! never by its address (`proto-spec/packet.md`), so sessions may share a
//! socket; the load generator tells the server's datagrams apart by the
//! session id of their header, which sealed packets carry in the clear too
//! (`proto-spec/sealed.md`).
//!
//! Before login a session has no id: the server's answers to a LOGIN or a
//! HANDSHAKE (RETRY, HANDSHAKE_REPLY, LOGIN_OK) name a session the load
//! generator does not know yet. So each socket has at most one session
//! logging in at a time, and such a datagram goes to it; the others wait
//! their turn in the socket's queue (frozen: nothing sent, no timer run).
//!
//! Timers are kept in a heap (one armed entry per session), so a turn costs
//! the sessions it touches, not all of them. Every datagram and byte is
//! counted per session.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::time::Time;

use super::fleet::{client_socket, pollfds, send_all, WireStats};
use super::{BenchError, Result};

/// One simulated device.
struct Slot {
    /// Its connection, once its login started.
    conn: Option<ClientConn>,
    /// Its configuration, until its login starts.
    cfg: Option<ClientConfig>,
    sock: usize,
    /// Session id once logged in (0: not yet).
    sid: u64,
    /// Waiting for its socket's login turn (frozen).
    queued: bool,
    /// The deadline of its heap entry, if armed.
    armed: Option<Time>,
    dirty: bool,
    stats: WireStats,
    /// When its first datagram went out.
    first_sent: Option<Instant>,
}

/// Many sessions over a few shared sockets.
pub struct Mux {
    socks: Vec<UdpSocket>,
    fds: Vec<libc::pollfd>,
    slots: Vec<Slot>,
    by_sid: Vec<HashMap<u64, usize>>,
    logging: Vec<Option<usize>>,
    queue: Vec<VecDeque<usize>>,
    timers: BinaryHeap<Reverse<(Time, usize)>>,
    dirty: Vec<usize>,
    start: Instant,
    wall_origin_ms: u64,
    buf: Vec<u8>,
    /// Datagrams no session could be found for.
    pub strays: u64,
    /// Sessions that lost their session and logged in again.
    pub relogins: u64,
    /// Traffic of every session.
    pub stats: WireStats,
}

/// The session id in a datagram's header (clear or sealed: bytes 2..10).
fn header_sid(data: &[u8]) -> Option<u64> {
    let b: [u8; 8] = data.get(2..10)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

impl Mux {
    /// `sockets` sockets connected to `server`, no session yet.
    pub fn new(server: SocketAddr, sockets: usize) -> Result<Mux> {
        let socks = (0..sockets.max(1))
            .map(|_| client_socket(server).map_err(BenchError::io("binding a client socket")))
            .collect::<Result<Vec<_>>>()?;
        let fds = pollfds(&socks);
        let n = socks.len();
        Ok(Mux {
            socks,
            fds,
            slots: Vec::new(),
            by_sid: vec![HashMap::new(); n],
            logging: vec![None; n],
            queue: vec![VecDeque::new(); n],
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            start: Instant::now(),
            wall_origin_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            buf: vec![0u8; 2048],
            strays: 0,
            relogins: 0,
            stats: WireStats::default(),
        })
    }

    /// The load generator's clock.
    pub fn now(&self) -> Time {
        Time::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// Adds a device (not logging in yet); returns its index. Its
    /// handshake carries the wall clock and OS entropy, as the library's.
    pub fn add(&mut self, mut cfg: ClientConfig) -> usize {
        cfg.wall_origin_ms = self.wall_origin_ms;
        cfg.entropy = Some(rand::random());
        let i = self.slots.len();
        self.slots.push(Slot {
            conn: None,
            cfg: Some(cfg),
            sock: i % self.socks.len(),
            sid: 0,
            queued: false,
            armed: None,
            dirty: false,
            stats: WireStats::default(),
            first_sent: None,
        });
        i
    }

    /// Devices added.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True with no device.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Device `i` starts logging in (at its socket's next free turn).
    pub fn login(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.conn.is_none() && !s.queued {
            s.queued = true;
            self.queue[s.sock].push_back(i);
        }
    }

    /// Device `i`'s connection, once its login started.
    pub fn conn(&mut self, i: usize) -> Option<&mut ClientConn> {
        self.mark(i);
        self.slots[i].conn.as_mut()
    }

    /// Device `i`'s traffic so far.
    pub fn wire(&self, i: usize) -> WireStats {
        self.slots[i].stats
    }

    /// When device `i` sent its first datagram.
    pub fn first_sent(&self, i: usize) -> Option<Instant> {
        self.slots[i].first_sent
    }

    /// Devices waiting for a login turn.
    pub fn waiting(&self) -> usize {
        self.queue.iter().map(VecDeque::len).sum()
    }

    fn mark(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(i);
        }
    }

    /// Gives each socket without a session logging in the next one queued.
    fn admit(&mut self, now: Time) {
        for sock in 0..self.socks.len() {
            if self.logging[sock].is_some() {
                continue;
            }
            let Some(i) = self.queue[sock].pop_front() else {
                continue;
            };
            let s = &mut self.slots[i];
            s.queued = false;
            if s.conn.is_none() {
                let cfg = s.cfg.take().expect("a device not started has its config");
                s.conn = Some(ClientConn::new(cfg, now, rand::random()));
            }
            self.logging[sock] = Some(i);
            self.mark(i);
        }
    }

    /// Sends what the touched sessions owe, re-arms their timers and
    /// collects their events.
    fn flush(&mut self, now: Time, events: &mut Vec<(usize, ClientEvent)>) -> Result<()> {
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            let s = &mut self.slots[i];
            s.dirty = false;
            if s.queued {
                continue;
            }
            let Some(c) = s.conn.as_mut() else { continue };
            while let Some(d) = c.poll_transmit(now) {
                if s.first_sent.is_none() {
                    s.first_sent = Some(Instant::now());
                }
                s.stats.datagrams_out += 1;
                s.stats.bytes_out += d.len() as u64;
                self.stats.datagrams_out += 1;
                self.stats.bytes_out += d.len() as u64;
                send_all(&self.socks[s.sock], &d)
                    .map_err(BenchError::io("sending to the daemon"))?;
            }
            while let Some(ev) = c.poll_event() {
                if matches!(ev, ClientEvent::Disconnected) && s.sid != 0 {
                    // The session is gone: log in again at the socket's
                    // next turn.
                    self.by_sid[s.sock].remove(&s.sid);
                    s.sid = 0;
                    self.relogins += 1;
                    match self.logging[s.sock] {
                        None => self.logging[s.sock] = Some(i),
                        Some(j) if j == i => {}
                        Some(_) => {
                            s.queued = true;
                            self.queue[s.sock].push_front(i);
                        }
                    }
                }
                if matches!(ev, ClientEvent::LoginRefused { .. }) && self.logging[s.sock] == Some(i)
                {
                    // Refused for good: the socket's turn passes on.
                    self.logging[s.sock] = None;
                }
                events.push((i, ev));
            }
            if let Some(t) = c.poll_timeout() {
                if s.armed.is_none_or(|a| t < a) {
                    s.armed = Some(t);
                    self.timers.push(Reverse((t, i)));
                }
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
        Ok(())
    }

    /// One turn: starts queued logins, sends what is owed, waits up to
    /// `max_wait` (less if a timer is due sooner) for datagrams, hands them
    /// to their sessions, fires due timers, sends again, and collects every
    /// event as (device index, event).
    pub fn turn(
        &mut self,
        max_wait: Duration,
        events: &mut Vec<(usize, ClientEvent)>,
    ) -> Result<()> {
        let now = self.now();
        self.admit(now);
        self.flush(now, events)?;
        let mut wait = max_wait;
        if let Some(Reverse((t, _))) = self.timers.peek() {
            wait = wait.min(t.saturating_since(now));
        }
        let n = super::util::ppoll(&mut self.fds, wait)?;
        let now = self.now();
        if n > 0 {
            for sock in 0..self.fds.len() {
                if self.fds[sock].revents != 0 {
                    self.receive(now, sock)?;
                }
            }
        }
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let s = &mut self.slots[i];
            if s.armed != Some(t) {
                continue; // superseded by an earlier entry
            }
            s.armed = None;
            if s.queued {
                continue;
            }
            if let Some(c) = s.conn.as_mut() {
                if c.poll_timeout().is_some_and(|d| d <= now) {
                    c.handle_timeout(now);
                }
            }
            self.mark(i);
        }
        self.flush(now, events)
    }

    /// Reads every datagram waiting on socket `sock`.
    fn receive(&mut self, now: Time, sock: usize) -> Result<()> {
        loop {
            let len = match self.socks[sock].recv(&mut self.buf) {
                Ok(len) => len,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    return Err(BenchError::Io {
                        what: "receiving from the daemon".into(),
                        source: e,
                    })
                }
            };
            self.stats.datagrams_in += 1;
            self.stats.bytes_in += len as u64;
            let sid = header_sid(&self.buf[..len]).unwrap_or(0);
            let target = self.by_sid[sock].get(&sid).copied().or(self.logging[sock]);
            let Some(i) = target else {
                self.strays += 1;
                continue;
            };
            let data = Bytes::copy_from_slice(&self.buf[..len]);
            let s = &mut self.slots[i];
            s.stats.datagrams_in += 1;
            s.stats.bytes_in += len as u64;
            let Some(c) = s.conn.as_mut() else {
                self.strays += 1;
                continue;
            };
            c.handle_datagram(now, data);
            if self.logging[sock] == Some(i) && c.is_active() && sid != 0 {
                // The datagram that opened the session names it.
                s.sid = sid;
                self.by_sid[sock].insert(sid, i);
                self.logging[sock] = None;
            }
            self.mark(i);
        }
    }

    /// Logs every device out and sends the LOGOUTs.
    pub fn logout_all(&mut self) -> Result<()> {
        let now = self.now();
        for s in &mut self.slots {
            if let Some(c) = s.conn.as_mut() {
                c.logout();
                while let Some(d) = c.poll_transmit(now) {
                    send_all(&self.socks[s.sock], &d)
                        .map_err(BenchError::io("sending to the daemon"))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::header_sid;

    #[test]
    fn the_session_id_is_read_big_endian_from_bytes_two_to_ten() {
        let mut d = vec![2u8, 1];
        d.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        d.push(9);
        assert_eq!(header_sid(&d), Some(0x0102_0304_0506_0708));
        assert_eq!(header_sid(&d[..9]), None);
    }
}
