//! The one in-memory test network: a broker over a [`MemStore`] and any
//! number of client connections on a perfect link, moved by hand in virtual
//! time (like quinn's `Pair`). Tests that need loss, crashes or many seeds
//! use [`crate::world`] instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tern_core::auth::{Claims, TokenKeys};
use tern_core::broker::{Broker, BrokerConfig};
use tern_core::client::{ClientConfig, ClientConn, ClientEvent, Outgoing};
use tern_core::store::{MemStore, Store};
use tern_core::time::Time;

/// Secret the pair's broker verifies tokens with.
const SECRET: &[u8] = b"pair-secret";

/// A broker and its clients on a perfect network with instant commits.
pub struct Pair {
    /// The server.
    pub broker: Broker<MemStore>,
    /// Its store (commits are applied at once).
    pub store: Arc<MemStore>,
    /// Each client's current address and connection.
    pub clients: Vec<(SocketAddr, ClientConn)>,
    /// Virtual time.
    pub now: Time,
    /// While set, every commit fails (a full or failing disk): nothing is
    /// applied and the broker is told so.
    pub fail_commits: bool,
    /// Every datagram a client sent, with the address it came from, in
    /// order: tests replay them late.
    pub sent: Vec<(SocketAddr, Bytes)>,
    cfg: BrokerConfig,
}

impl Pair {
    /// A broker with `cfg`, no clients yet, at time zero.
    pub fn new(cfg: BrokerConfig) -> Pair {
        let store = Arc::new(MemStore::new());
        let keys = TokenKeys::new(SECRET.to_vec(), vec![]);
        Pair {
            broker: Broker::new(cfg.clone(), store.clone(), keys, 1_700_000_000_000, 1),
            store,
            clients: Vec::new(),
            now: Time::ZERO,
            fail_commits: false,
            sent: Vec::new(),
            cfg,
        }
    }

    /// Replaces the broker with a new one over the same store, as after a
    /// crash: sessions are forgotten, and clients log in again when the
    /// server answers them UNKNOWN_SESSION.
    pub fn restart_broker(&mut self) {
        let keys = TokenKeys::new(SECRET.to_vec(), vec![]);
        let wall = 1_700_000_000_000 + self.now.as_micros() / 1000;
        self.broker = Broker::new(self.cfg.clone(), self.store.clone(), keys, wall, 2);
    }

    /// A login token for `(user, device)` that never expires.
    pub fn token(user: u64, device: u32) -> Bytes {
        TokenKeys::new(SECRET.to_vec(), vec![])
            .sign(Claims {
                user,
                device,
                expires: u64::MAX,
            })
            .into()
    }

    /// Adds a client for `(user, device)` whose configuration `tune` may
    /// change; returns its index. It starts logging in at once.
    pub fn connect(
        &mut self,
        user: u64,
        device: u32,
        tune: impl FnOnce(&mut ClientConfig),
    ) -> usize {
        let addr: SocketAddr = format!("127.0.0.1:{}", 10000 + self.clients.len())
            .parse()
            .expect("valid address");
        let mut cfg = ClientConfig::new(Self::token(user, device));
        tune(&mut cfg);
        self.clients.push((addr, ClientConn::new(cfg, self.now, 7)));
        self.clients.len() - 1
    }

    /// Moves everything until nothing is left to move, letting coalesced
    /// ACKs fall due; datagrams to an address no client has are lost.
    /// Returns each client's events.
    pub fn settle(&mut self) -> Vec<Vec<ClientEvent>> {
        let mut events = vec![Vec::new(); self.clients.len()];
        for _ in 0..1000 {
            let moved = self.step();
            for (i, (_, c)) in self.clients.iter_mut().enumerate() {
                events[i].extend(std::iter::from_fn(|| c.poll_event()));
            }
            if !moved {
                if self.clients.iter().all(|(_, c)| c.pending() == 0) {
                    break;
                }
                self.now += Duration::from_millis(20);
            }
        }
        // Coalesced ACKs still held go out too.
        self.now += Duration::from_millis(20);
        events
    }

    /// Moves everything for `d` of virtual time, in steps of 1 ms; returns
    /// each client's events.
    pub fn step_for(&mut self, d: Duration) -> Vec<Vec<ClientEvent>> {
        let mut events = vec![Vec::new(); self.clients.len()];
        let end = self.now + d;
        while self.now < end {
            // As `settle`: a bounded number of rounds at one instant.
            for _ in 0..1000 {
                if !self.step() {
                    break;
                }
            }
            for (i, (_, c)) in self.clients.iter_mut().enumerate() {
                events[i].extend(std::iter::from_fn(|| c.poll_event()));
            }
            self.now += Duration::from_millis(1);
        }
        events
    }

    /// One round: clients send, the broker commits and answers. Returns
    /// whether anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        for (addr, c) in &mut self.clients {
            c.handle_timeout(self.now);
            while let Some(d) = c.poll_transmit(self.now) {
                self.sent.push((*addr, d.clone()));
                self.broker.handle_datagram(self.now, *addr, d);
                moved = true;
            }
        }
        moved |= self.run_broker();
        while let Some((to, d)) = self.broker.poll_transmit() {
            if let Some((_, c)) = self.clients.iter_mut().find(|(a, _)| *a == to.addr) {
                c.handle_datagram(self.now, d);
                moved = true;
            }
        }
        moved
    }

    /// The broker's timers, then its commits, applied at once (failed
    /// while `fail_commits`). Returns whether anything was committed.
    fn run_broker(&mut self) -> bool {
        self.broker.handle_timeout(self.now);
        let mut committed = false;
        while let Some(c) = self.broker.poll_commit() {
            let result = match self.fail_commits {
                true => Err("No space left on device".to_string()),
                false => self.store.commit(&c.batch).map_err(|e| e.to_string()),
            };
            self.broker.handle_committed(self.now, c.id, result);
            committed = true;
        }
        committed
    }

    /// For tests that carry datagrams by hand (a delay, a race): hands
    /// `datagrams` from `from` to the broker now, runs its timers and
    /// commits, and returns everything it sends, with the address.
    pub fn broker_round(
        &mut self,
        from: SocketAddr,
        datagrams: impl IntoIterator<Item = Bytes>,
    ) -> Vec<(SocketAddr, Bytes)> {
        for d in datagrams {
            self.broker.handle_datagram(self.now, from, d);
        }
        self.run_broker();
        std::iter::from_fn(|| self.broker.poll_transmit())
            .map(|(to, d)| (to.addr, d))
            .collect()
    }

    /// The LOGIN datagrams (session id 0) sent so far from client address
    /// `from`, in order.
    pub fn logins_sent(&self, from: SocketAddr) -> Vec<Bytes> {
        self.sent
            .iter()
            .filter(|(a, d)| *a == from && d.get(2..10) == Some(&[0u8; 8][..]))
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// Client `client` submits `op` now.
    pub fn submit(&mut self, client: usize, op: Outgoing) {
        let now = self.now;
        self.clients[client]
            .1
            .submit(now, op)
            .expect("queue has room");
    }

    /// Client `client` posts `text` into `conv` (topic 0, type 0).
    pub fn post(&mut self, client: usize, conv: tern_core::wire::ConvRef, text: &str) {
        let op = Outgoing::Post {
            conv,
            topic: 0,
            msg_type: 0,
            payload: Bytes::copy_from_slice(text.as_bytes()),
        };
        self.submit(client, op);
    }

    /// Client `client` asks for its whole conversation list (previews of
    /// 16 bytes) and gets it; panics if it does not arrive.
    pub fn list(&mut self, client: usize) -> tern_core::client::ConvList {
        self.list_since(client, 0, 16)
    }

    /// Client `client` asks for the conversations changed since list
    /// version `since`, with previews of `preview` bytes, and gets them;
    /// panics if they do not arrive.
    pub fn list_since(
        &mut self,
        client: usize,
        since: u64,
        preview: u8,
    ) -> tern_core::client::ConvList {
        let now = self.now;
        assert!(self.clients[client].1.request_list(now, since, preview));
        let ev = self.settle();
        ev[client]
            .iter()
            .find_map(|e| match e {
                ClientEvent::ConvList(l) => Some(l.clone()),
                _ => None,
            })
            .expect("the list arrives")
    }

    /// Client `client` submits `n` one-byte messages to user `to`.
    pub fn send(&mut self, client: usize, to: u64, n: u64) {
        for _ in 0..n {
            let op = Outgoing::Send {
                to,
                conv: 1,
                msg_type: 0,
                payload: "x".into(),
            };
            self.clients[client]
                .1
                .submit(self.now, op)
                .expect("queue has room");
        }
    }
}

/// The inbox sequences of the entries among `events`.
pub fn entries(events: &[ClientEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Entry(d) => Some(d.seq),
            _ => None,
        })
        .collect()
}

/// The group a "created" entry among `events` names, if one arrived.
pub fn created_group(events: &[ClientEvent]) -> Option<u64> {
    use tern_core::wire::{GroupEventKind, SyncBody};
    events.iter().find_map(|e| match e {
        ClientEvent::Entry(e) => match e.body {
            SyncBody::Member(m) if m.kind == GroupEventKind::Created => Some(e.conv.id),
            _ => None,
        },
        _ => None,
    })
}

/// Tunes a client to speak protocol version 2.
pub fn v2(c: &mut ClientConfig) {
    c.version = tern_core::wire::VERSION_2;
}
