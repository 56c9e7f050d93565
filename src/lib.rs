//! Tern: a reliable-messaging daemon and its client library.
//!
//! - `store`: the RocksDB implementation of the core's storage contract, with group commit.
//! - `lab`: instruments for weak-network testing (the impairment proxy).
//! - `client`: the async client library apps embed.
//! - `config`: the daemon's TOML configuration with environment overrides.
//! - `server`: the daemon (`ternd`), embeddable through [`server::run`].

pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod lab;
pub mod server;
pub mod store;
