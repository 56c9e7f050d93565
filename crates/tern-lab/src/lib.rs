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

pub mod bench;
pub mod chaos;
pub mod proxy;

pub use proxy::{run_proxy, Proxy, ProxyConfig, ProxyControl, ProxyError, ProxyStats};
pub use tern_sim::impairment::{Counters, Impairment, ImpairmentError};

/// Logging on stderr for the lab's binaries: `-v` counts into the level
/// (warn, info, debug, trace); `RUST_LOG` overrides.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
