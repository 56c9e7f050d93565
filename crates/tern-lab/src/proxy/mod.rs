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

mod config;
mod control;
mod engine;
mod event_log;
mod schedule;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{debug, info};

pub use config::{ProxyConfig, ProxyError};
pub use control::ProxyControl;
pub use stats::ProxyStats;

use control::Command;
use engine::Engine;
use event_log::EventLog;

/// Largest datagram the proxy reads.
pub const MAX_DATAGRAM: usize = 65_535;

/// Capacity of the channel from upstream readers to the proxy loop.
const INBOUND_CHANNEL: usize = 1024;

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

        let mut engine = Engine::new(cfg, socket.clone(), origin, inbound_tx, log);

        let far_future = origin + Duration::from_secs(86_400 * 365);
        let timer = tokio::time::sleep_until(far_future);
        tokio::pin!(timer);
        let mut timer_at = far_future;
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; MAX_DATAGRAM];

        loop {
            let next = engine.next_due().unwrap_or(far_future);
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
                        engine.count_recv_error();
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

        let stats = engine.finish().await;
        info!("impairment proxy stopped\n{stats}");
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
