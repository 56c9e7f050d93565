//! The proxy loop's state and what it does per event: a datagram from a
//! client or from the server goes through that client's model for its
//! direction and into the delay queue; due datagrams are sent; clients are
//! rebound and idle ones evicted.

use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tern_sim::impairment::{Counters, Link, Outcomes};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::event_log::{Event, EventLog};
use super::schedule::{link_seed, Client, Dir, Scheduled, Target};
use super::{ProxyConfig, ProxyStats, MAX_DATAGRAM};

/// The proxy loop's state.
pub(super) struct Engine {
    cfg: ProxyConfig,
    socket: Arc<UdpSocket>,
    origin: Instant,
    clients: HashMap<SocketAddr, Client>,
    next_client_index: u64,
    heap: BinaryHeap<Scheduled>,
    heap_bytes: usize,
    seq: u64,
    inbound_tx: mpsc::Sender<(SocketAddr, Bytes)>,
    retired_up: Counters,
    retired_down: Counters,
    stats: ProxyStats,
    log: Option<EventLog>,
}

impl Engine {
    pub(super) fn new(
        cfg: ProxyConfig,
        socket: Arc<UdpSocket>,
        origin: Instant,
        inbound_tx: mpsc::Sender<(SocketAddr, Bytes)>,
        log: Option<EventLog>,
    ) -> Engine {
        Engine {
            cfg,
            socket,
            origin,
            clients: HashMap::new(),
            next_client_index: 0,
            heap: BinaryHeap::new(),
            heap_bytes: 0,
            seq: 0,
            inbound_tx,
            retired_up: Counters::default(),
            retired_down: Counters::default(),
            stats: ProxyStats::default(),
            log,
        }
    }

    /// When the earliest queued datagram is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.heap
            .peek()
            .map(|s| self.origin + Duration::from_micros(s.at_us))
    }

    /// The listen socket failed to receive.
    pub(super) fn count_recv_error(&mut self) {
        self.stats.recv_errors += 1;
    }

    /// The final counters; every client mapping is dropped and the log gets
    /// its summary line and is closed.
    pub(super) async fn finish(mut self) -> ProxyStats {
        let stats = self.snapshot();
        self.clients.clear();
        if let Some(mut log) = self.log.take() {
            log.log(Event {
                t_us: self.now_us(),
                action: "summary",
                stats: Some(stats.to_json()),
                ..Event::default()
            });
            log.close().await;
        }
        stats
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn event(&mut self, ev: Event) {
        if let Some(log) = &mut self.log {
            log.log(ev);
        }
    }

    async fn open_upstream(&self) -> io::Result<(Arc<UdpSocket>, u16)> {
        let any: SocketAddr = if self.cfg.upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(any).await?;
        sock.connect(self.cfg.upstream).await?;
        let port = sock.local_addr()?.port();
        Ok((Arc::new(sock), port))
    }

    fn spawn_reader(&self, sock: Arc<UdpSocket>, client: SocketAddr) -> JoinHandle<()> {
        let tx = self.inbound_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match sock.recv(&mut buf).await {
                    Ok(n) => {
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        if tx.send((client, data)).await.is_err() {
                            return;
                        }
                    }
                    // A connected UDP socket reports an earlier ICMP error here
                    // (e.g. the server is not up yet): not fatal.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        debug!(%client, "upstream refused (ICMP)");
                    }
                    Err(e) => {
                        debug!(%client, error = %e, "upstream receive error");
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        })
    }

    pub(super) async fn on_client_datagram(&mut self, from: SocketAddr, data: Bytes) {
        let now = self.now_us();
        let len = data.len();
        if !self.clients.contains_key(&from) {
            if self.clients.len() >= self.cfg.max_clients {
                self.stats.clients_rejected += 1;
                debug!(client = %from, len, "client limit reached: datagram dropped");
                self.event(Event {
                    t_us: now,
                    dir: Some("up"),
                    action: "drop",
                    client: Some(from),
                    len: Some(len),
                    reason: Some("client_limit"),
                    ..Event::default()
                });
                return;
            }
            let (sock, port) = match self.open_upstream().await {
                Ok(s) => s,
                Err(e) => {
                    self.stats.upstream_errors += 1;
                    warn!(client = %from, error = %e, "cannot open upstream socket");
                    return;
                }
            };
            let index = self.next_client_index;
            self.next_client_index += 1;
            self.stats.clients_seen += 1;
            let seed = self.cfg.seed;
            let client = Client {
                index,
                up: Link::new(self.cfg.up.clone(), link_seed(seed, index, Dir::Up)),
                down: Link::new(self.cfg.down.clone(), link_seed(seed, index, Dir::Down)),
                reader: self.spawn_reader(sock.clone(), from),
                upstream: sock,
                upstream_port: port,
                last_seen_us: now,
            };
            info!(client = %from, index, upstream_port = port, "new client");
            self.event(Event {
                t_us: now,
                action: "client_new",
                client: Some(from),
                port: Some(port),
                ..Event::default()
            });
            self.clients.insert(from, client);
        }
        let client = self.clients.get_mut(&from).expect("client inserted above");
        client.last_seen_us = now;
        let target = Target::Upstream(client.upstream.clone());
        let out = client.up.transmit(now, data);
        self.dispatch(Dir::Up, from, target, len, now, out).await;
    }

    pub(super) async fn on_server_datagram(&mut self, client: SocketAddr, data: Bytes) {
        let now = self.now_us();
        let len = data.len();
        let Some(c) = self.clients.get_mut(&client) else {
            self.stats.dropped_stale += 1;
            return;
        };
        c.last_seen_us = now;
        let out = c.down.transmit(now, data);
        self.dispatch(Dir::Down, client, Target::Client, len, now, out)
            .await;
    }

    /// Log the model's verdict and queue what it delivers, then send what is due.
    async fn dispatch(
        &mut self,
        dir: Dir,
        client: SocketAddr,
        target: Target,
        len: usize,
        now: u64,
        out: Outcomes,
    ) {
        self.event(Event {
            t_us: now,
            dir: Some(dir.as_str()),
            action: "recv",
            client: Some(client),
            len: Some(len),
            ..Event::default()
        });
        if let Some(reason) = out.dropped {
            debug!(dir = dir.as_str(), %client, len, reason = reason.as_str(), "drop");
            self.event(Event {
                t_us: now,
                dir: Some(dir.as_str()),
                action: "drop",
                client: Some(client),
                len: Some(len),
                reason: Some(reason.as_str()),
                ..Event::default()
            });
            return;
        }
        for d in out {
            if self.heap.len() >= self.cfg.max_scheduled
                || self.heap_bytes + d.datagram.len() > self.cfg.max_scheduled_bytes
            {
                self.stats.dropped_overflow += 1;
                debug!(dir = dir.as_str(), %client, len, "delay queue full: drop");
                self.event(Event {
                    t_us: now,
                    dir: Some(dir.as_str()),
                    action: "drop",
                    client: Some(client),
                    len: Some(d.datagram.len()),
                    reason: Some("overflow"),
                    ..Event::default()
                });
                continue;
            }
            let target = match &target {
                Target::Upstream(s) => Target::Upstream(s.clone()),
                Target::Client => Target::Client,
            };
            self.seq += 1;
            self.heap_bytes += d.datagram.len();
            self.heap.push(Scheduled {
                at_us: d.at_us,
                seq: self.seq,
                dir,
                client,
                target,
                data: d.datagram,
                received_us: now,
                duplicate: d.duplicate,
                reordered: d.reordered,
                corrupted: d.corrupted,
            });
        }
        // Everything goes through the heap so that a datagram due now never
        // overtakes an earlier one whose timer has not fired yet.
        self.fire_due().await;
    }

    /// Send every queued datagram that is due, in order.
    pub(super) async fn fire_due(&mut self) {
        let now = self.now_us();
        while self.heap.peek().is_some_and(|s| s.at_us <= now) {
            let s = self.heap.pop().expect("peeked");
            self.heap_bytes -= s.data.len();
            self.send(s, now).await;
        }
    }

    async fn send(&mut self, s: Scheduled, now: u64) {
        let res = match &s.target {
            Target::Upstream(sock) => sock.send(&s.data).await,
            Target::Client => self.socket.send_to(&s.data, s.client).await,
        };
        let delay_us = now.saturating_sub(s.received_us);
        match res {
            Ok(_) => {
                match s.dir {
                    Dir::Up => self.stats.sent_up += 1,
                    Dir::Down => self.stats.sent_down += 1,
                }
                debug!(
                    dir = s.dir.as_str(),
                    client = %s.client,
                    len = s.data.len(),
                    delay_us,
                    dup = s.duplicate,
                    reordered = s.reordered,
                    corrupted = s.corrupted,
                    "send"
                );
                self.event(Event {
                    t_us: now,
                    dir: Some(s.dir.as_str()),
                    action: "send",
                    client: Some(s.client),
                    len: Some(s.data.len()),
                    delay_us: Some(delay_us),
                    dup: s.duplicate,
                    reordered: s.reordered,
                    corrupted: s.corrupted,
                    ..Event::default()
                });
            }
            Err(e) => {
                self.stats.send_errors += 1;
                debug!(dir = s.dir.as_str(), client = %s.client, error = %e, "send failed");
                self.event(Event {
                    t_us: now,
                    dir: Some(s.dir.as_str()),
                    action: "send_error",
                    client: Some(s.client),
                    len: Some(s.data.len()),
                    ..Event::default()
                });
            }
        }
    }

    /// Give every client a new upstream socket; returns how many moved.
    pub(super) async fn rebind_all(&mut self) -> usize {
        let now = self.now_us();
        let addrs: Vec<SocketAddr> = self.clients.keys().copied().collect();
        let mut moved = 0;
        for addr in addrs {
            // The old socket is still open while the new one binds, so the
            // new port always differs.
            let (sock, port) = match self.open_upstream().await {
                Ok(s) => s,
                Err(e) => {
                    self.stats.upstream_errors += 1;
                    warn!(client = %addr, error = %e, "rebind failed; keeping the old port");
                    continue;
                }
            };
            let reader = self.spawn_reader(sock.clone(), addr);
            let Some(c) = self.clients.get_mut(&addr) else {
                reader.abort();
                continue;
            };
            let old_port = c.upstream_port;
            c.upstream = sock;
            c.upstream_port = port;
            let old_reader = std::mem::replace(&mut c.reader, reader);
            old_reader.abort();
            let index = c.index;
            moved += 1;
            self.stats.rebinds += 1;
            info!(client = %addr, index, old_port, new_port = port, "rebound upstream socket");
            self.event(Event {
                t_us: now,
                action: "rebind",
                client: Some(addr),
                old_port: Some(old_port),
                port: Some(port),
                ..Event::default()
            });
        }
        moved
    }

    pub(super) fn evict_idle(&mut self) {
        let now = self.now_us();
        let idle = u64::try_from(self.cfg.client_idle_timeout.as_micros()).unwrap_or(u64::MAX);
        let stale: Vec<SocketAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_seen_us) >= idle)
            .map(|(a, _)| *a)
            .collect();
        for addr in stale {
            if let Some(c) = self.clients.remove(&addr) {
                self.retired_up += *c.up.counters();
                self.retired_down += *c.down.counters();
                self.stats.clients_evicted += 1;
                info!(client = %addr, index = c.index, "idle client evicted");
                self.event(Event {
                    t_us: now,
                    action: "client_evict",
                    client: Some(addr),
                    port: Some(c.upstream_port),
                    ..Event::default()
                });
            }
        }
    }

    pub(super) fn snapshot(&self) -> ProxyStats {
        let mut s = self.stats.clone();
        s.up = self.retired_up;
        s.down = self.retired_down;
        for c in self.clients.values() {
            s.up += *c.up.counters();
            s.down += *c.down.counters();
        }
        s.clients_active = self.clients.len();
        s.pending = self.heap.len();
        s.log_events_dropped = self.log.as_ref().map_or(0, |l| l.dropped);
        s
    }
}
