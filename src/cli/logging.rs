//! Logging on stderr for every Tern binary (`ternd`, `tern`, and the lab's
//! tools): a default filter, which `RUST_LOG` overrides, and `-v` flags
//! that step the default level up.

use tracing::Level;

/// The `-v` flag every binary takes: counts steps above its default level.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Verbosity {
    /// More logging on stderr, one level per -v (up to trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl Verbosity {
    /// Starts logging at `base` (for instance warn for a client command,
    /// info for the daemon), `verbose` levels higher.
    pub fn init_logging(self, base: Level) {
        init_logging(level_above(base, self.verbose));
    }
}

/// The level `steps` above `base`, at most trace, as a filter directive.
pub fn level_above(base: Level, steps: u8) -> &'static str {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let start = match base {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    };
    LEVELS[(start + usize::from(steps)).min(LEVELS.len() - 1)]
}

/// Logs to stderr with `default_filter` (`RUST_LOG` syntax, e.g. `info` or
/// `info,tern_lab::proxy=warn`) unless `RUST_LOG` is set.
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_climb_to_trace_and_stop() {
        assert_eq!(level_above(Level::WARN, 0), "warn");
        assert_eq!(level_above(Level::WARN, 1), "info");
        assert_eq!(level_above(Level::WARN, 3), "trace");
        assert_eq!(level_above(Level::INFO, 1), "debug");
        assert_eq!(level_above(Level::INFO, 9), "trace");
    }
}
