//! ACK datagrams in a steady flow, on the real client and broker: user A's
//! client sends to user B's online client through a [`Broker`] over a
//! [`MemStore`] (group commit with simulated fsync time), every datagram
//! through a seeded [`Link`]. Each datagram is decoded and classified.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tern_core::auth::{Claims, TokenKeys};
use tern_core::broker::{Broker, BrokerConfig, Commit};
use tern_core::client::{ClientConfig, ClientConn, ClientEvent, Outgoing};
use tern_core::store::{MemStore, Store};
use tern_core::time::Time;
use tern_core::wire::{EntryBody, Frame, Packet, SyncBody};
use tern_sim::impairment::{Impairment, Link};

use crate::net::mix;
use crate::tern_flow::{CONV, TEXT};

const A: usize = 0; // sender
const B: usize = 1; // receiver
const USER_A: u64 = 1_000_001;
const USER_B: u64 = 1_000_000;

/// Counts for one direction of one client's path.
#[derive(Debug, Default, Clone)]
pub struct DirCount {
    pub datagrams: u64,
    pub ack_only: u64,
    pub ack_frames: u64,
    pub send_frames: u64,
    pub deliver_messages: u64,
    pub deliver_receipts: u64,
    pub other_frames: u64,
    pub bytes: u64,
}

impl DirCount {
    fn count(&mut self, d: &Bytes) {
        let p = Packet::decode(d.clone()).expect("own datagrams decode");
        self.datagrams += 1;
        self.bytes += d.len() as u64;
        let mut acks = 0;
        let mut others = 0;
        for f in &p.frames {
            match f {
                Frame::Ack(_) => acks += 1,
                Frame::Padding(_) => {}
                Frame::Send(_) => {
                    self.send_frames += 1;
                    others += 1
                }
                Frame::Entry(d) => {
                    match d.body {
                        SyncBody::Message { .. } => self.deliver_messages += 1,
                        _ => self.deliver_receipts += 1,
                    }
                    others += 1
                }
                // A version 1 session's entries.
                Frame::Deliver(d) => {
                    match d.body {
                        EntryBody::Message { .. } => self.deliver_messages += 1,
                        _ => self.deliver_receipts += 1,
                    }
                    others += 1
                }
                _ => {
                    self.other_frames += 1;
                    others += 1
                }
            }
        }
        self.ack_frames += acks;
        if acks > 0 && others == 0 {
            self.ack_only += 1;
        }
    }
}

pub struct AckRun {
    /// [A → server, server → A, B → server, server → B]
    pub dirs: [DirCount; 4],
    pub delivered: u64,
    pub stored: u64,
    pub commits: u64,
    pub flow_span: Duration,
}

pub const DIR_NAMES: [&str; 4] = [
    "A -> server (SENDs; uplink)",
    "server -> A (uplink ACKs)",
    "B -> server (downlink ACKs)",
    "server -> B (DELIVERs)",
];

enum To {
    Server(usize),
    Client(usize),
}

struct Cl {
    conn: ClientConn,
    addr: SocketAddr,
    up: Link,
    down: Link,
    logged_in: bool,
}

/// One steady flow of `messages` from A to B, one every `interval`.
pub fn run(
    seed: u64,
    messages: u64,
    interval: Duration,
    imp: &Impairment,
    commit_latency: Duration,
) -> AckRun {
    let store = Arc::new(MemStore::new());
    let keys = TokenKeys::new(b"bench-secret".to_vec(), vec![]);
    let mut broker = Broker::new(
        BrokerConfig::default(),
        store.clone(),
        keys.clone(),
        1_700_000_000_000,
        mix(&[seed, 1]),
    );
    let mut now = Time::ZERO;
    let mut clients: Vec<Cl> = [(USER_A, 0u64), (USER_B, 1)]
        .into_iter()
        .map(|(user, i)| {
            let token = keys.sign(Claims {
                user,
                device: 1,
                expires: u64::MAX,
            });
            Cl {
                conn: ClientConn::new(ClientConfig::new(token.into()), now, mix(&[seed, 2, i])),
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8)), 40000),
                up: Link::new(imp.clone(), mix(&[seed, 3, i])),
                down: Link::new(imp.clone(), mix(&[seed, 4, i])),
                logged_in: false,
            }
        })
        .collect();
    let by_addr: HashMap<SocketAddr, usize> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (c.addr, i))
        .collect();
    let mut queue: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut payloads: HashMap<u64, (To, Bytes)> = HashMap::new();
    let mut next_id = 0u64;
    let mut commit: Option<(Time, Commit)> = None;
    let mut dirs: [DirCount; 4] = Default::default();
    let mut counting = false;
    let mut start: Option<Time> = None;
    let mut sent = 0u64;
    let mut next_send = Time::ZERO;
    let mut delivered = 0u64;
    let mut stored = 0u64;
    let mut all_done: Option<Time> = None;
    let commits_before;
    let settle = Duration::from_secs(1);
    let mut steps = 0u64;
    // Phase 1: both log in (not counted). Phase 2: the flow, counted until
    // everything is stored, delivered and a settle time has passed.
    loop {
        steps += 1;
        assert!(steps < 50_000_000, "ack harness does not progress");
        while let Some(&Reverse((at, id))) = queue.peek() {
            if at > now.as_micros() {
                break;
            }
            queue.pop();
            let (to, data) = payloads.remove(&id).expect("queued");
            match to {
                To::Server(from) => broker.handle_datagram(now, clients[from].addr, data),
                To::Client(i) => clients[i].conn.handle_datagram(now, data),
            }
        }
        broker.handle_timeout(now);
        if commit.as_ref().is_some_and(|(at, _)| *at <= now) {
            let (_, c) = commit.take().expect("checked");
            store.commit(&c.batch).expect("memory store cannot fail");
            broker.handle_committed(now, c.id, Ok(()));
        }
        if commit.is_none() {
            if let Some(c) = broker.poll_commit() {
                commit = Some((now + commit_latency, c));
            }
        }
        if start.is_none() && clients.iter().all(|c| c.logged_in) {
            start = Some(now);
            next_send = now;
            counting = true;
        }
        for i in 0..clients.len() {
            let c = &mut clients[i];
            c.conn.handle_timeout(now);
            if i == A && start.is_some() && sent < messages && next_send <= now {
                let op = Outgoing::Send {
                    to: USER_B,
                    conv: CONV,
                    msg_type: 0,
                    payload: Bytes::from_static(TEXT),
                };
                c.conn.submit(now, op).expect("queue has room");
                sent += 1;
                next_send += interval;
            }
            while let Some(ev) = c.conn.poll_event() {
                match ev {
                    ClientEvent::LoggedIn { .. } => c.logged_in = true,
                    ClientEvent::Stored { .. } if i == A => stored += 1,
                    ClientEvent::Entry(d)
                        if i == B && matches!(d.body, SyncBody::Message { .. }) =>
                    {
                        delivered += 1
                    }
                    ClientEvent::SendFailed { .. } | ClientEvent::Disconnected => {
                        panic!("unexpected {ev:?} on a loss-free path")
                    }
                    _ => {}
                }
            }
            let mut out = Vec::new();
            while let Some(d) = c.conn.poll_transmit(now) {
                if counting {
                    dirs[if i == A { 0 } else { 2 }].count(&d);
                }
                out.extend(c.up.transmit(now.as_micros(), d).deliveries);
            }
            for d in out {
                next_id += 1;
                payloads.insert(next_id, (To::Server(i), d.datagram));
                queue.push(Reverse((d.at_us, next_id)));
            }
        }
        while let Some((to, data)) = broker.poll_transmit().map(|(p, d)| (p.addr, d)) {
            let Some(&i) = by_addr.get(&to) else { continue };
            if counting {
                dirs[if i == A { 1 } else { 3 }].count(&data);
            }
            for d in clients[i].down.transmit(now.as_micros(), data).deliveries {
                next_id += 1;
                payloads.insert(next_id, (To::Client(i), d.datagram));
                queue.push(Reverse((d.at_us, next_id)));
            }
        }
        while broker.poll_event().is_some() {}
        if all_done.is_none() && delivered == messages && stored == messages {
            all_done = Some(now);
        }
        let end = all_done.map(|t| t + settle);
        let mut next = [
            queue.peek().map(|Reverse((at, _))| Time::from_micros(*at)),
            broker.poll_timeout(),
            commit.as_ref().map(|(at, _)| *at),
            (start.is_some() && sent < messages).then_some(next_send),
        ]
        .into_iter()
        .flatten()
        .chain(clients.iter().filter_map(|c| c.conn.poll_timeout()))
        .min()
        .expect("clients always have a timer");
        next = next.max(now + Duration::from_micros(1));
        if end.is_some_and(|e| next > e) {
            commits_before = store.commits();
            break;
        }
        now = next;
    }
    let start = start.expect("logged in");
    AckRun {
        dirs,
        delivered,
        stored,
        commits: commits_before,
        flow_span: all_done.expect("done").saturating_since(start),
    }
}
