//! Tern: a reliable-messaging daemon and its client library.
//!
//! - `store`: the RocksDB implementation of the core's storage contract, with group commit.
//! - `lab`: instruments for weak-network testing (the impairment proxy).

pub mod lab;
pub mod store;
