//! Tern: a reliable-messaging daemon and its client library.
//!
//! - `server`: the daemon (`ternd`), embeddable through [`server::run`].
//! - `client`: the async client library apps embed.
//! - `store`: the RocksDB implementation of the core's storage contract, with group commit.
//! - `config`: the daemon's TOML configuration with environment overrides.
//! - `transport`: UDP socket setup and QUIC settings shared by server and client.
//! - `cli`: what the `tern` command line does (send, recv, pull).
//! - `sidecar`: `tern sidecar`, a local client with an HTTP API for apps in any language.
//! - `http`: what the sidecar's API and the daemon's server API share.
//!
//! The protocol itself is the sans-IO core, `tern-core`; the simulator is
//! `tern-sim`, and the benchmarks and weak-network lab are `tern-lab`.

pub mod cli;
pub mod client;
pub mod config;
pub mod http;
pub mod server;
pub mod sidecar;
pub mod store;
pub mod transport;
