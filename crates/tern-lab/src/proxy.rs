//! A user-space UDP impairment proxy.
//!
//! ```text
//!  client A ─┐                    ┌─ upstream socket A (port pA) ─┐
//!  client B ─┼─► listen socket ───┼─ upstream socket B (port pB) ─┼─► server
//!  client C ─┘   (impair "up")    └─ ...        (impair "down")  ─┘
//! ```
//!
//! Clients send to the proxy's listen socket. Like a NAT, the proxy gives every
//! client address its own upstream socket, connected to the server, so the
//! server sees one distinct source address per client and its replies can be
//! told apart. Each direction of each client has its own [`Link`] (the pure
//! model from `tern_sim::impairment`) deciding drops, delays, duplicates
//! and damage; delayed datagrams wait in a bounded timer heap.
//!
//! **Rebinding** replaces a client's upstream socket with a fresh one on a new
//! port (periodically with [`ProxyConfig::rebind_every`], or on demand with
//! [`ProxyControl::rebind`]): the server then sees the same client arrive from
//! a new address, as when a phone moves from Wi-Fi to LTE. Replies sent to the
//! old address are lost, as they would be; datagrams already in flight on the
//! old path still leave from it.
//!
//! **Time and seeds.** The models' virtual time is microseconds since the
//! proxy started running, so blackout windows count from then, for all
//! clients alike. The `n`-th client to appear (from 0) gets link seeds derived
//! from `(seed, n, direction)`: a run with one client is reproducible from its
//! seed as far as the model is concerned (real-time scheduling still varies by
//! a millisecond or so).
//!
//! **Safety.** It only ever sends to the configured upstream address and to
//! client addresses that sent to it; upstream sockets are connected, so they
//! accept nothing but the server's datagrams. Clients, queued datagrams and
//! queued bytes are all bounded.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tern_sim::impairment::{Counters, Impairment, ImpairmentError, Link, Outcomes};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{debug, info, warn};

/// Largest datagram the proxy reads.
pub const MAX_DATAGRAM: usize = 65_535;

/// Capacity of the channel from upstream readers to the proxy loop.
const INBOUND_CHANNEL: usize = 1024;
/// Capacity of the event-log channel; events beyond it are counted and skipped.
const LOG_CHANNEL: usize = 16 * 1024;

/// How the proxy is set up. [`ProxyConfig::new`] gives sensible defaults.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where clients send (port 0 picks a free port; see [`Proxy::local_addr`]).
    pub listen: SocketAddr,
    /// The server; the only address datagrams are forwarded to.
    pub upstream: SocketAddr,
    /// Seed of every impairment model.
    pub seed: u64,
    /// Impairment of the client → server direction.
    pub up: Impairment,
    /// Impairment of the server → client direction.
    pub down: Impairment,
    /// Move every client to a new upstream port this often.
    pub rebind_every: Option<Duration>,
    /// Most clients served at once; datagrams from further clients are dropped.
    pub max_clients: usize,
    /// Most datagrams waiting in the delay queue; more are dropped.
    pub max_scheduled: usize,
    /// Most bytes waiting in the delay queue; more are dropped.
    pub max_scheduled_bytes: usize,
    /// A client silent (both ways) this long loses its upstream socket.
    pub client_idle_timeout: Duration,
    /// Log a summary of counters at info level this often.
    pub stats_every: Option<Duration>,
    /// Write one JSON object per event (per datagram) to this file.
    pub log_file: Option<PathBuf>,
}

impl ProxyConfig {
    /// A perfect-network proxy from `listen` to `upstream`, seed 0.
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        ProxyConfig {
            listen,
            upstream,
            seed: 0,
            up: Impairment::default(),
            down: Impairment::default(),
            rebind_every: None,
            max_clients: 1024,
            max_scheduled: 64 * 1024,
            max_scheduled_bytes: 64 * 1024 * 1024,
            client_idle_timeout: Duration::from_secs(120),
            stats_every: Some(Duration::from_secs(10)),
            log_file: None,
        }
    }
}

/// Why the proxy could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listen socket could not be bound.
    #[error("cannot bind listen address {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The event log could not be created.
    #[error("cannot create log file {path}: {source}")]
    LogFile {
        /// The file asked for.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// An impairment configuration is out of range.
    #[error("invalid {dir} impairment: {source}")]
    Impairment {
        /// `up` or `down`.
        dir: &'static str,
        /// What is wrong.
        source: ImpairmentError,
    },
    /// Another setting is out of range.
    #[error("invalid proxy configuration: {0}")]
    Config(&'static str),
    /// The proxy is not running any more (from [`ProxyControl`]).
    #[error("the proxy is not running")]
    Stopped,
}

/// What the proxy did. `up` and `down` add up the models' counters of every
/// client seen, including evicted ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client → server model counters.
    pub up: Counters,
    /// Server → client model counters.
    pub down: Counters,
    /// Datagrams written to the server.
    pub sent_up: u64,
    /// Datagrams written to clients.
    pub sent_down: u64,
    /// Distinct client mappings created.
    pub clients_seen: u64,
    /// Client mappings alive now.
    pub clients_active: usize,
    /// Client mappings removed for idleness.
    pub clients_evicted: u64,
    /// Datagrams refused because `max_clients` was reached.
    pub clients_rejected: u64,
    /// Upstream socket changes (per client).
    pub rebinds: u64,
    /// Datagrams dropped because the delay queue was full.
    pub dropped_overflow: u64,
    /// Server datagrams for a client mapping that no longer exists.
    pub dropped_stale: u64,
    /// Datagrams still waiting in the delay queue (discarded at exit).
    pub pending: usize,
    /// Socket send failures (e.g. ICMP port unreachable reported back).
    pub send_errors: u64,
    /// Socket receive failures.
    pub recv_errors: u64,
    /// Upstream sockets that could not be opened.
    pub upstream_errors: u64,
    /// Events skipped because the log writer fell behind.
    pub log_events_dropped: u64,
}

fn counters_json(c: &Counters) -> serde_json::Value {
    serde_json::json!({
        "sent": c.sent,
        "dropped": c.dropped(),
        "dropped_random": c.dropped_random,
        "dropped_burst": c.dropped_burst,
        "dropped_blackout": c.dropped_blackout,
        "dropped_queue": c.dropped_queue,
        "duplicated": c.duplicated,
        "reordered": c.reordered,
        "corrupted": c.corrupted,
    })
}

impl ProxyStats {
    /// The stats as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "up": counters_json(&self.up),
            "down": counters_json(&self.down),
            "sent_up": self.sent_up,
            "sent_down": self.sent_down,
            "clients_seen": self.clients_seen,
            "clients_active": self.clients_active,
            "clients_evicted": self.clients_evicted,
            "clients_rejected": self.clients_rejected,
            "rebinds": self.rebinds,
            "dropped_overflow": self.dropped_overflow,
            "dropped_stale": self.dropped_stale,
            "pending": self.pending,
            "send_errors": self.send_errors,
            "recv_errors": self.recv_errors,
            "upstream_errors": self.upstream_errors,
            "log_events_dropped": self.log_events_dropped,
        })
    }
}

impl fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "up:   {} -> forwarded {}", self.up, self.sent_up)?;
        writeln!(f, "down: {} -> forwarded {}", self.down, self.sent_down)?;
        write!(
            f,
            "clients: seen={} active={} evicted={} rejected={} rebinds={}; overflow={} stale={} pending={} errors: send={} recv={} upstream={}",
            self.clients_seen,
            self.clients_active,
            self.clients_evicted,
            self.clients_rejected,
            self.rebinds,
            self.dropped_overflow,
            self.dropped_stale,
            self.pending,
            self.send_errors,
            self.recv_errors,
            self.upstream_errors
        )?;
        if self.log_events_dropped > 0 {
            write!(f, " log_events_dropped={}", self.log_events_dropped)?;
        }
        Ok(())
    }
}

enum Command {
    Rebind(oneshot::Sender<usize>),
    Stats(oneshot::Sender<ProxyStats>),
}

/// Steers a running proxy. Cheap to clone.
#[derive(Clone)]
pub struct ProxyControl {
    tx: mpsc::Sender<Command>,
}

impl ProxyControl {
    /// Move every current client to a new upstream port now. Returns how many
    /// clients were moved, once they all have been.
    pub async fn rebind(&self) -> Result<usize, ProxyError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Rebind(tx))
            .await
            .map_err(|_| ProxyError::Stopped)?;
        rx.await.map_err(|_| ProxyError::Stopped)
    }

    /// A snapshot of the counters.
    pub async fn stats(&self) -> Result<ProxyStats, ProxyError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Stats(tx))
            .await
            .map_err(|_| ProxyError::Stopped)?;
        rx.await.map_err(|_| ProxyError::Stopped)
    }
}

/// A bound, not yet running proxy.
pub struct Proxy {
    cfg: ProxyConfig,
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    ctrl_tx: mpsc::Sender<Command>,
    ctrl_rx: mpsc::Receiver<Command>,
    log: Option<EventLog>,
}

/// Bind and run a proxy until `shutdown` completes; returns the final counters.
pub async fn run_proxy(
    cfg: ProxyConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<ProxyStats, ProxyError> {
    Proxy::bind(cfg).await?.run(shutdown).await
}

impl Proxy {
    /// Check the configuration, bind the listen socket and open the log file.
    pub async fn bind(cfg: ProxyConfig) -> Result<Proxy, ProxyError> {
        cfg.up
            .validate()
            .map_err(|source| ProxyError::Impairment { dir: "up", source })?;
        cfg.down
            .validate()
            .map_err(|source| ProxyError::Impairment {
                dir: "down",
                source,
            })?;
        if cfg.max_clients == 0 {
            return Err(ProxyError::Config("max_clients must be at least 1"));
        }
        if cfg.max_scheduled == 0 || cfg.max_scheduled_bytes == 0 {
            return Err(ProxyError::Config(
                "the delay queue bounds must be positive",
            ));
        }
        if cfg.rebind_every.is_some_and(|d| d.is_zero())
            || cfg.stats_every.is_some_and(|d| d.is_zero())
            || cfg.client_idle_timeout.is_zero()
        {
            return Err(ProxyError::Config("intervals must be positive"));
        }
        let socket = UdpSocket::bind(cfg.listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| ProxyError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let log = match &cfg.log_file {
            Some(path) => Some(
                EventLog::create(path).map_err(|source| ProxyError::LogFile {
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let (ctrl_tx, ctrl_rx) = mpsc::channel(16);
        Ok(Proxy {
            cfg,
            socket: Arc::new(socket),
            local_addr,
            ctrl_tx,
            ctrl_rx,
            log,
        })
    }

    /// The address clients should send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to rebind clients or read counters while running.
    pub fn control(&self) -> ProxyControl {
        ProxyControl {
            tx: self.ctrl_tx.clone(),
        }
    }

    /// Forward datagrams until `shutdown` completes; returns the final counters.
    /// Datagrams still waiting in the delay queue then are discarded.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<ProxyStats, ProxyError> {
        let Proxy {
            cfg,
            socket,
            local_addr,
            ctrl_tx,
            mut ctrl_rx,
            log,
        } = self;
        drop(ctrl_tx);
        let (inbound_tx, mut inbound_rx) = mpsc::channel(INBOUND_CHANNEL);
        let origin = Instant::now();
        info!(
            listen = %local_addr,
            upstream = %cfg.upstream,
            seed = cfg.seed,
            up = %cfg.up,
            down = %cfg.down,
            rebind_every = ?cfg.rebind_every,
            "impairment proxy running"
        );
        let mut rebind_iv = cfg.rebind_every.map(|p| interval_from(origin, p));
        let mut stats_iv = cfg.stats_every.map(|p| interval_from(origin, p));
        let sweep =
            (cfg.client_idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut sweep_iv = Some(interval_from(origin, sweep));

        let mut engine = Engine {
            cfg,
            socket: socket.clone(),
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
        };

        let far_future = origin + Duration::from_secs(86_400 * 365);
        let timer = tokio::time::sleep_until(far_future);
        tokio::pin!(timer);
        let mut timer_at = far_future;
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; MAX_DATAGRAM];

        loop {
            let next = engine
                .heap
                .peek()
                .map(|s| origin + Duration::from_micros(s.at_us))
                .unwrap_or(far_future);
            if next != timer_at {
                timer.as_mut().reset(next);
                timer_at = next;
            }
            // Unbiased: a flood in one direction cannot starve the other.
            tokio::select! {
                _ = &mut shutdown => break,
                _ = &mut timer => {
                    // Force a reset on the next turn even if the deadline repeats.
                    timer_at = far_future + Duration::from_secs(1);
                    engine.fire_due().await;
                }
                cmd = ctrl_rx.recv(), if !ctrl_rx.is_closed() => match cmd {
                    Some(Command::Rebind(reply)) => {
                        let n = engine.rebind_all().await;
                        let _ = reply.send(n);
                    }
                    Some(Command::Stats(reply)) => {
                        let _ = reply.send(engine.snapshot());
                    }
                    None => {}
                },
                Some((client, data)) = inbound_rx.recv() => {
                    engine.on_server_datagram(client, data).await;
                }
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        engine.on_client_datagram(from, data).await;
                    }
                    Err(e) => {
                        engine.stats.recv_errors += 1;
                        debug!(error = %e, "listen socket receive error");
                    }
                },
                _ = tick(&mut rebind_iv) => {
                    engine.rebind_all().await;
                }
                _ = tick(&mut stats_iv) => {
                    let s = engine.snapshot();
                    info!(
                        "proxy stats: up: {} | down: {} | clients={} rebinds={} overflow={}",
                        s.up, s.down, s.clients_active, s.rebinds, s.dropped_overflow
                    );
                }
                _ = tick(&mut sweep_iv) => engine.evict_idle(),
            }
        }

        let stats = engine.snapshot();
        info!("impairment proxy stopped\n{stats}");
        engine.clients.clear();
        if let Some(mut log) = engine.log.take() {
            log.log(Event {
                t_us: engine.now_us(),
                action: "summary",
                stats: Some(stats.to_json()),
                ..Event::default()
            });
            log.close().await;
        }
        Ok(stats)
    }
}

fn interval_from(origin: Instant, period: Duration) -> Interval {
    let mut iv = tokio::time::interval_at(origin + period, period);
    iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
    iv
}

async fn tick(iv: &mut Option<Interval>) {
    match iv {
        Some(iv) => {
            iv.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

impl Dir {
    fn as_str(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }
}

/// Where a scheduled datagram goes.
enum Target {
    /// To the server, through this (possibly since replaced) upstream socket.
    Upstream(Arc<UdpSocket>),
    /// To the client, through the listen socket.
    Client,
}

struct Scheduled {
    at_us: u64,
    seq: u64,
    dir: Dir,
    client: SocketAddr,
    target: Target,
    data: Bytes,
    received_us: u64,
    duplicate: bool,
    reordered: bool,
    corrupted: bool,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest (then first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

struct Client {
    index: u64,
    up: Link,
    down: Link,
    upstream: Arc<UdpSocket>,
    upstream_port: u16,
    reader: JoinHandle<()>,
    last_seen_us: u64,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of the model for client number `index` in direction `dir`.
fn link_seed(seed: u64, index: u64, dir: Dir) -> u64 {
    let d = match dir {
        Dir::Up => 0,
        Dir::Down => 1,
    };
    mix(seed ^ mix(index.wrapping_mul(2).wrapping_add(d)))
}

struct Engine {
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

    async fn on_client_datagram(&mut self, from: SocketAddr, data: Bytes) {
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

    async fn on_server_datagram(&mut self, client: SocketAddr, data: Bytes) {
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
    async fn fire_due(&mut self) {
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
    async fn rebind_all(&mut self) -> usize {
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

    fn evict_idle(&mut self) {
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

    fn snapshot(&self) -> ProxyStats {
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

/// One line of the JSON event log.
#[derive(Debug, Default, Serialize)]
struct Event {
    /// Microseconds since the proxy started.
    t_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<&'static str>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_us: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    dup: bool,
    #[serde(skip_serializing_if = "is_false")]
    reordered: bool,
    #[serde(skip_serializing_if = "is_false")]
    corrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<serde_json::Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// JSON-lines writer on its own thread behind a bounded channel, so file I/O
/// never blocks the proxy loop.
struct EventLog {
    tx: Option<std_mpsc::SyncSender<Event>>,
    thread: Option<std::thread::JoinHandle<()>>,
    dropped: u64,
}

impl EventLog {
    fn create(path: &std::path::Path) -> io::Result<EventLog> {
        let file = std::fs::File::create(path)?;
        let (tx, rx) = std_mpsc::sync_channel::<Event>(LOG_CHANNEL);
        let thread = std::thread::Builder::new()
            .name("tern-proxy-log".into())
            .spawn(move || {
                let mut out = io::BufWriter::new(file);
                let write =
                    |out: &mut io::BufWriter<std::fs::File>, ev: &Event| -> io::Result<()> {
                        serde_json::to_writer(&mut *out, ev)?;
                        out.write_all(b"\n")
                    };
                while let Ok(ev) = rx.recv() {
                    let mut res = write(&mut out, &ev);
                    while let (Ok(()), Ok(ev)) = (&res, rx.try_recv()) {
                        res = write(&mut out, &ev);
                    }
                    if let Err(e) = res.and_then(|_| out.flush()) {
                        warn!(error = %e, "event log write failed; log stopped");
                        return;
                    }
                }
                let _ = out.flush();
            })?;
        Ok(EventLog {
            tx: Some(tx),
            thread: Some(thread),
            dropped: 0,
        })
    }

    fn log(&mut self, ev: Event) {
        if let Some(tx) = &self.tx {
            if tx.try_send(ev).is_err() {
                self.dropped += 1;
            }
        }
    }

    /// Flush and wait for the writer.
    async fn close(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
