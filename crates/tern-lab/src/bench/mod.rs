//! `tern-bench`: daemon benchmarks, each measured against a baseline run in
//! the same process and the same minute, because the machines are shared and
//! noisy and only ratios are comparable between runs.
//!
//! - [`relay`]: online relay throughput (both ACKs) vs a raw-UDP echo relay.
//! - [`store`]: durable offline store (pseudo-ACK) vs raw RocksDB sync batches.
//! - [`sessions`]: daemon RSS per idle logged-in session vs a minimal session table.
//! - [`backlog`]: bytes and round trips to a complete conversation summary,
//!   and paged-pull rate vs raw RocksDB iteration.
//! - [`convs`]: conversations at scale: storage per message, the version 2
//!   list after a day offline vs the version 1 summary, history pages vs a
//!   raw RocksDB range read.
//! - [`group_cost`]: store operations and bytes per group message under
//!   write fan-out, by group size, vs one direct message.
//! - [`read_counts`]: "read by N" in a large group, the broker's Fenwick
//!   tree vs a scan of every member's cursor.
//! - [`storm`]: seed 004's check-in storm (30,000 members of a read-fan-out
//!   group log in within 60 s) vs the same logins in a 500-member group;
//!   [`live_fanout`]: deliveries per second in a 1,000-member group, all
//!   online, vs the one-to-one relay. Their devices share sockets ([`mux`]).
//!
//! - [`transports`]: raw UDP vs QUIC, throughput and latency, same run.
//! - [`flood`]: legitimate latency under a garbage flood, vs without it.
//! - [`amplification`]: bytes answered per byte received from unvalidated
//!   sources, per kind of pre-login datagram.
//!
//! [`fleet`] is the load generator they share: many sans-IO
//! [`ClientConn`](tern_core::client::ClientConn)s over non-blocking sockets
//! driven by one thread, so the load generator costs little CPU; [`flow`]
//! runs senders and receivers of it on two threads and measures them.

pub mod amplification;
pub mod backlog;
pub mod clients;
pub mod columns;
pub mod convs;
pub mod daemon;
pub mod fleet;
pub mod flood;
pub mod flooder;
pub mod flow;
pub mod group_args;
pub mod group_cost;
pub mod group_setup;
pub mod keepalive;
pub mod live_fanout;
pub mod logins;
pub mod million;
pub mod mux;
pub mod raw_relay;
pub mod read_counts;
pub mod relay;
pub mod seal;
pub mod sealed_logins;
pub mod session_sink;
pub mod sessions;
pub mod store;
pub mod storm;
pub mod storm_logins;
pub mod transports;
pub mod util;

use thiserror::Error;

/// Why a benchmark could not run to the end.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A socket, file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The daemon failed to start or stopped with an error.
    #[error("daemon: {0}")]
    Server(#[from] tern::server::ServerError),
    /// The token secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] tern::server::SecretError),
    /// RocksDB (baseline or store) failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The daemon's store failed.
    #[error("store: {0}")]
    Store(#[from] tern::store::StoreError),
    /// Something did not happen in time, or the run went wrong.
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}

/// Result of the benchmark functions.
pub type Result<T> = std::result::Result<T, BenchError>;
