//! How a proxy is set up, and why it may refuse to start.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern_sim::impairment::{Impairment, ImpairmentError};

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
