//! `ternd`: a thin async driver around the core's [`Broker`].
//!
//! One task owns the broker, the UDP socket and (unless `[quic] listen` is
//! off) the QUIC bridge (`quic.rs`, `proto-spec/quic.md`). It feeds datagrams and
//! timeouts in, hands write batches to the [`GroupCommitter`] (one fsync per
//! batch; the broker keeps staging while a batch is out, which is what groups
//! commits), reports their completion back, and sends what the broker
//! produces. Nothing is acknowledged before its batch is durable.

pub mod api;
pub mod banner;
mod broker_loop;
mod metrics;
mod quic;
mod secret;
mod storage;
mod udp;

pub use metrics::{Metrics, Snapshot};
pub use secret::{issue_token, load_address_token_key, load_keys, load_seal_key, SecretError};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tern_core::broker::{Broker, BrokerConfig, SealPolicy};

use crate::config::SealPolicyName;
use thiserror::Error;

use crate::config::Config;
use crate::store::{GroupCommitter, RocksOptions, RocksStore, StoreError};
use crate::transport::udp::UdpIo;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The metrics listener could not be bound.
    #[error("cannot bind metrics listener {addr}: {source}")]
    Metrics {
        /// Address asked for.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The token secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The commit thread could not be started.
    #[error("cannot start the commit thread: {0}")]
    Thread(std::io::Error),
    /// The socket failed while serving.
    #[error("socket error: {0}")]
    Socket(std::io::Error),
    /// QUIC could not be set up (certificate, key or endpoint).
    #[error("QUIC: {0}")]
    Quic(String),
    /// The store failed a commit in a way it cannot recover from while
    /// open (an fsync or write error): restart the daemon. Nothing
    /// acknowledged was lost.
    #[error("the store failed and refuses writes until it is reopened: {0}; restart ternd")]
    Storage(String),
    /// The server API listener could not be bound.
    #[error("cannot bind the server API listener {addr}: {source}")]
    Api {
        /// Address asked for.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// A bound, ready daemon. [`Server::run`] serves until shutdown.
pub struct Server {
    socket: Arc<UdpIo>,
    broker: Broker<RocksStore>,
    committer: GroupCommitter<RocksStore>,
    metrics: Metrics,
    metrics_listener: Option<tokio::net::TcpListener>,
    quic: Option<quic::QuicServer>,
    seal_public: Option<tern_core::seal::PublicKey>,
    /// The server API listener (`[api] listen`) and the config it serves.
    api: Option<(api::ApiListener, Config)>,
}

/// The broker settings a config implies. With QUIC enabled, the largest
/// packet the broker builds is [`crate::transport::quic::MAX_PACKET`] for every peer (the
/// broker has one limit, and a QUIC DATAGRAM frame must hold the packet).
pub fn broker_config(cfg: &Config) -> BrokerConfig {
    BrokerConfig {
        heartbeat: cfg.timers.heartbeat,
        idle_timeout: cfg.timers.idle_timeout,
        max_payload: cfg.limits.max_payload,
        group_max_members: cfg.limits.group_max_members,
        group_write_fanout_max: cfg.limits.group_write_fanout_max,
        accept_unknown_recipients: cfg.limits.accept_unknown_recipients,
        max_sessions: cfg.limits.max_sessions,
        page_entries: cfg.limits.page_entries,
        retention: cfg.server.retention,
        history_retention: cfg.server.history_retention.as_duration(),
        max_commits_in_flight: cfg.server.commits_in_flight,
        downlink: tern_core::reliability::SenderConfig {
            redundant_sends_at: cfg.timers.redundant_sends_at,
            redundant_copies: cfg.timers.redundant_copies,
            ..tern_core::reliability::SenderConfig::default()
        },
        checkpoint_delay: cfg.server.checkpoint_delay,
        receipt_delay: cfg.server.receipt_delay,
        validate_addresses: cfg.limits.validate_addresses,
        prelogin_rate: cfg.limits.prelogin_rate,
        prelogin_burst: cfg.limits.prelogin_rate * 2.0,
        session_rate: cfg.limits.session_rate,
        session_burst: cfg.limits.session_rate * 2.0,
        stateless_reply_rate: cfg.limits.stateless_reply_rate,
        max_datagram: if cfg.quic_listen().is_some() {
            tern_core::wire::limits::MAX_DATAGRAM.min(crate::transport::quic::MAX_PACKET)
        } else {
            tern_core::wire::limits::MAX_DATAGRAM
        },
        seal_policy: match cfg.seal.policy {
            SealPolicyName::Off => SealPolicy::Off,
            SealPolicyName::Optional => SealPolicy::Optional,
            SealPolicyName::Required => SealPolicy::Required,
        },
        ..BrokerConfig::default()
    }
}

impl Server {
    /// Opens the store, loads the token secret and binds the sockets.
    pub async fn bind(cfg: Config) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&cfg.server.data_dir).map_err(|e| StoreError::Io {
            path: cfg.server.data_dir.clone(),
            source: e,
        })?;
        let keys = load_keys(&cfg)?;
        let seal_key = load_seal_key(&cfg)?;
        let address_token_key = load_address_token_key(&cfg)?;
        let store = Arc::new(RocksStore::open(
            cfg.server.data_dir.join("db"),
            RocksOptions {
                wal_dir: cfg.server.wal_dir.clone(),
                ..RocksOptions::default()
            },
        )?);
        let committer = GroupCommitter::new(store.clone()).map_err(ServerError::Thread)?;
        let socket = crate::transport::udp::bind_udp(cfg.server.listen).map_err(|source| {
            ServerError::Bind {
                addr: cfg.server.listen,
                source,
            }
        })?;
        // Junk dropped in the kernel never wakes the loop; without the
        // filter the broker drops it the same way, only at a higher cost.
        if cfg.limits.kernel_filter {
            if let Err(e) = crate::transport::intake_filter::attach(socket.socket()) {
                tracing::warn!(error = %e, "the kernel filter for junk datagrams is not attached");
            }
        }
        let quic = match cfg.quic_listen() {
            Some(addr) => Some(quic::QuicServer::bind(&cfg, addr).map_err(ServerError::Quic)?),
            None => None,
        };
        let metrics_listener = match cfg.metrics.listen {
            Some(addr) => Some(
                metrics::bind(addr)
                    .await
                    .map_err(|source| ServerError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let api = match cfg.api.listen {
            Some(addr) => Some((
                api::ApiListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Api { addr, source })?,
                cfg.clone(),
            )),
            None => None,
        };
        let wall_origin_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let seal_public = seal_key.as_ref().map(|k| k.public());
        let mut broker = Broker::new(
            BrokerConfig {
                seal_key,
                address_token_key: Some(address_token_key),
                ..broker_config(&cfg)
            },
            store,
            keys,
            wall_origin_ms,
            rand::random(),
        );
        // Ephemeral handshake keys come from the OS, never from a seed.
        broker.set_entropy(rand::random());
        Ok(Server {
            socket: Arc::new(socket),
            broker,
            committer,
            metrics: Metrics::default(),
            metrics_listener,
            quic,
            seal_public,
            api,
        })
    }

    /// The server API's address, if enabled.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|(l, _)| l.local_addr())
    }

    /// The public key clients pin to seal raw-UDP sessions (`None` when the
    /// seal policy is `off`).
    pub fn seal_key(&self) -> Option<tern_core::seal::PublicKey> {
        self.seal_public
    }

    /// The UDP address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// The UDP address QUIC listens on, if enabled.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic.as_ref().map(|q| q.local_addr())
    }

    /// SHA-256 fingerprint (hex) of the QUIC server certificate, if enabled:
    /// what clients pin.
    pub fn quic_fingerprint(&self) -> Option<String> {
        self.quic.as_ref().map(|q| q.fingerprint().to_string())
    }

    /// The metrics endpoint's address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Shared counters, refreshed about once a second.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Serves until `shutdown` completes, then drains: the batch in flight
    /// and everything staged are committed and acknowledged, and every client
    /// is told to reconnect.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        if let Some(l) = self.metrics_listener {
            tokio::spawn(metrics::serve(l, self.metrics.clone()));
        }
        let io = broker_loop::Io {
            udp: self.socket,
            quic: self.quic.map(|q| q.start()),
        };
        let (bridge, api_task) = match self.api {
            Some((listener, cfg)) => {
                let (bridge, handle, live) =
                    api::bridge::bridge(cfg.api.service_user, cfg.api.service_device);
                let task = tokio::spawn(api::serve(
                    listener,
                    cfg,
                    handle,
                    live,
                    self.metrics.clone(),
                ));
                (Some(bridge), Some(task))
            }
            None => (None, None),
        };
        let r = broker_loop::serve(
            io,
            self.broker,
            self.committer,
            self.metrics,
            bridge,
            shutdown,
        )
        .await;
        if let Some(t) = api_task {
            t.abort();
        }
        r
    }
}

/// The SHA-256 fingerprint (hex) of the QUIC certificate `cfg` names, or
/// of the one generated in its data folder (created now if there is none
/// yet, as `ternd serve` would): what QUIC clients pin.
pub fn quic_fingerprint(cfg: &Config) -> Result<String, ServerError> {
    std::fs::create_dir_all(&cfg.server.data_dir).map_err(|e| StoreError::Io {
        path: cfg.server.data_dir.clone(),
        source: e,
    })?;
    quic::load_identity(cfg)
        .map(|id| id.fingerprint())
        .map_err(ServerError::Quic)
}

/// Runs a daemon with `cfg` until `shutdown` completes: the embeddable entry point.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let server = Server::bind(cfg).await?;
    tracing::info!(addr = %server.local_addr(), "ternd listening (udp)");
    if let (Some(addr), Some(fp)) = (server.quic_addr(), server.quic_fingerprint()) {
        tracing::info!(%addr, sha256 = %fp, "ternd listening (quic)");
    }
    server.run(shutdown).await
}
