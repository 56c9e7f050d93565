//! A sans-IO client (`ClientConn`) over a plain UDP socket, recording every
//! datagram it sends, so that a test can keep, replay and alter the exact
//! datagrams a real client sends, or restart the client on the same socket.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::seal::PublicKey;
use tern_core::time::Time;
use tern_core::wire::{Frame, Packet};

/// A connection that starts logging in now, sealed when `key` is given.
fn connection(token: Vec<u8>, key: Option<PublicKey>, seed: u64) -> ClientConn {
    let mut cfg = ClientConfig::new(token.into());
    cfg.server_key = key;
    cfg.wall_origin_ms = unix_ms();
    ClientConn::new(cfg, Time::ZERO, seed)
}

/// A sans-IO client on a real socket, recording every datagram it sends.
pub struct RawClient {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub conn: ClientConn,
    pub start: Instant,
    /// Every datagram sent, in order.
    pub sent: Vec<Bytes>,
    /// Every event, in order.
    pub events: Vec<ClientEvent>,
}

impl RawClient {
    pub fn new(server: SocketAddr, token: Vec<u8>, key: Option<PublicKey>, seed: u64) -> RawClient {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        RawClient {
            sock,
            server,
            conn: connection(token, key, seed),
            start: Instant::now(),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A new client process on the same socket (the same address and
    /// port): it starts from scratch, packet numbers from 1, no cookie.
    pub fn restart(&mut self, token: Vec<u8>, key: Option<PublicKey>, seed: u64) {
        self.conn = connection(token, key, seed);
        self.start = Instant::now();
        self.sent.clear();
        self.events.clear();
    }

    pub fn now(&self) -> Time {
        Time::ZERO + self.start.elapsed()
    }

    /// Runs the connection for up to `limit`, or until `done` holds.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&RawClient) -> bool) -> bool {
        let end = Instant::now() + limit;
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            let now = self.now();
            self.conn.handle_timeout(now);
            while let Some(d) = self.conn.poll_transmit(now) {
                self.sock.send_to(&d, self.server).unwrap();
                self.sent.push(d);
            }
            while let Some(e) = self.conn.poll_event() {
                self.events.push(e);
            }
            if done(self) {
                return true;
            }
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                self.conn
                    .handle_datagram(self.now(), Bytes::copy_from_slice(&buf[..n]));
            }
        }
        false
    }

    pub fn logged_in(&mut self) -> bool {
        self.run_until(Duration::from_secs(10), |c| c.conn.is_active())
    }

    /// Sends raw bytes from this client's socket.
    pub fn inject(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).unwrap();
    }

    /// The sealed datagrams sent so far (flags byte 0x01).
    pub fn sealed_sent(&self) -> Vec<Bytes> {
        self.sent
            .iter()
            .filter(|d| d.get(1) == Some(&0x01))
            .cloned()
            .collect()
    }

    /// The last datagram carrying a HANDSHAKE frame.
    pub fn last_handshake(&self) -> Bytes {
        self.sent
            .iter()
            .rev()
            .find(|d| {
                Packet::decode((*d).clone())
                    .map(|p| p.frames.iter().any(|f| matches!(f, Frame::Handshake(_))))
                    .unwrap_or(false)
            })
            .cloned()
            .expect("a handshake was sent")
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
