//! Weak-network lab: a user-space UDP impairment proxy.
//!
//! [`proxy`] drives the pure impairment model of
//! [`tern_core::sim::impairment`] with real UDP sockets and tokio timers. It
//! sits between clients and a server (raw UDP or QUIC alike: it only sees
//! datagrams), impairs each direction independently, and can move each client
//! to a new source port to simulate a network change. The `tern-proxy` binary
//! is its command-line front end; `docs/lab-proxy.md` is the user guide.

pub mod chaos;
pub mod proxy;

pub use proxy::{run_proxy, Proxy, ProxyConfig, ProxyControl, ProxyError, ProxyStats};
pub use tern_core::sim::impairment::{Counters, Impairment, ImpairmentError};
