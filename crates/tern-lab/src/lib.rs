//! Tern's lab: everything that tests and measures the product without
//! shipping in it.
//!
//! - [`proxy`]: the user-space UDP impairment proxy (`tern-proxy`), driving
//!   the simulator's seeded impairment model with real sockets and timers.
//! - [`chaos`]: the chaos run (`tern-chaos`): the real `ternd` SIGKILLed and
//!   restarted under impairment, and the independent checker of its journals.
//! - [`bench`]: the benchmarks of `tern-bench`, each against a baseline from
//!   the same run.
//! - [`ternd`]: the one launcher of the real `ternd` process (chaos run,
//!   benchmarks, peer bench, the root crate's integration tests), on
//!   [`process`], the lab's child-process handling.
//! - [`sidecar`]: the launcher of the real `tern sidecar` process, and
//!   [`http`], a small blocking HTTP client of its API and `ternd`'s.
//! - [`args`]: command-line value parsers the lab's binaries share.
//!
//! The binaries `tern-peerbench` (Tern against Mosquitto under kernel-level
//! loss) and `tern-timer-bench` (retransmission policies in the simulator)
//! live under `src/bin/`.

pub mod args;
pub mod bench;
pub mod chaos;
pub mod http;
pub mod process;
pub mod proxy;
pub mod sidecar;
pub mod ternd;

pub use proxy::{run_proxy, Proxy, ProxyConfig, ProxyControl, ProxyError, ProxyStats};
pub use tern_sim::impairment::{Counters, Impairment, ImpairmentError};
