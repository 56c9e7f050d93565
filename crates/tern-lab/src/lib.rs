//! Tern's lab: everything that tests and measures the product without
//! shipping in it.
//!
//! - [`proxy`]: the user-space UDP impairment proxy (`tern-proxy`), driving
//!   the simulator's seeded impairment model with real sockets and timers.
//! - [`chaos`]: the chaos run (`tern-chaos`): the real `ternd` SIGKILLed and
//!   restarted under impairment, and the independent checker of its journals.
//! - [`bench`]: the benchmarks of `tern-bench`, each against a baseline from
//!   the same run.
//!
//! The binaries `tern-peerbench` (Tern against Mosquitto under kernel-level
//! loss) and `tern-timer-bench` (retransmission policies in the simulator)
//! live under `src/bin/`.

pub mod args;
pub mod bench;
pub mod chaos;
pub mod proxy;

pub use proxy::{run_proxy, Proxy, ProxyConfig, ProxyControl, ProxyError, ProxyStats};
pub use tern_sim::impairment::{Counters, Impairment, ImpairmentError};
