//! Which raw-UDP configuration a daemon benchmark measures: the daemon's
//! default (`[seal] policy = "required"`, every client sealing its session
//! with the daemon's pinned seal key, address validation on), clear raw UDP
//! (`[seal] policy = "off"`, as these benchmarks measured before issue 14,
//! item 7), or both in the same run. The headline figure is the sealed one.

use std::fmt;
use std::str::FromStr;

use tern::config::{Config, SealPolicyName};

/// What `--seal` asks a benchmark to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealMode {
    /// The default configuration: sealing required, clients sealed.
    Sealed,
    /// Clear raw UDP: sealing off, clients clear.
    Clear,
    /// Both, alternated in the same run (sealed first).
    Both,
}

impl SealMode {
    /// The configurations to measure, in the order to measure them.
    pub fn modes(self) -> &'static [Sealing] {
        match self {
            SealMode::Sealed => &[Sealing::Sealed],
            SealMode::Clear => &[Sealing::Clear],
            SealMode::Both => &[Sealing::Sealed, Sealing::Clear],
        }
    }
}

/// A `--seal` value that is none of `sealed`, `clear`, `both`.
#[derive(Debug, thiserror::Error)]
#[error("unknown seal mode {0:?}: expected sealed, clear or both")]
pub struct SealModeError(String);

impl FromStr for SealMode {
    type Err = SealModeError;
    fn from_str(s: &str) -> Result<SealMode, SealModeError> {
        match s {
            "sealed" => Ok(SealMode::Sealed),
            "clear" => Ok(SealMode::Clear),
            "both" => Ok(SealMode::Both),
            other => Err(SealModeError(other.to_string())),
        }
    }
}

impl fmt::Display for SealMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SealMode::Sealed => "sealed",
            SealMode::Clear => "clear",
            SealMode::Both => "both",
        })
    }
}

/// One raw-UDP configuration of daemon and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// `[seal] policy = "required"` (the default); clients pin the daemon's
    /// seal key: Noise NK at login, ChaCha20-Poly1305 on every packet.
    Sealed,
    /// `[seal] policy = "off"`; clients send clear packets.
    Clear,
}

impl Sealing {
    /// Sets the daemon's seal policy for this configuration.
    pub fn configure(self, cfg: &mut Config) {
        cfg.seal.policy = match self {
            Sealing::Sealed => SealPolicyName::Required,
            Sealing::Clear => SealPolicyName::Off,
        };
    }

    /// The value of `TERN_SEAL_POLICY` for a `ternd` process.
    pub fn policy_env(self) -> &'static str {
        match self {
            Sealing::Sealed => "required",
            Sealing::Clear => "off",
        }
    }

    /// A short label for the report lines.
    pub fn label(self) -> &'static str {
        match self {
            Sealing::Sealed => "sealed",
            Sealing::Clear => "clear",
        }
    }

    /// A description of the daemon's configuration, for the report header.
    pub fn describe(self) -> &'static str {
        match self {
            Sealing::Sealed => {
                "default config: seal policy required, clients sealed (pinned seal key), address validation on, QUIC served beside raw UDP"
            }
            Sealing::Clear => {
                "clear raw UDP: seal policy off, clients clear, address validation on, QUIC served beside raw UDP"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_mode_parses_its_own_names_and_refuses_others() {
        for m in [SealMode::Sealed, SealMode::Clear, SealMode::Both] {
            assert_eq!(m.to_string().parse::<SealMode>().unwrap(), m);
        }
        assert!("optional".parse::<SealMode>().is_err());
    }

    #[test]
    fn both_measures_sealed_first_then_clear() {
        assert_eq!(SealMode::Both.modes(), &[Sealing::Sealed, Sealing::Clear]);
        assert_eq!(SealMode::Sealed.modes(), &[Sealing::Sealed]);
    }

    #[test]
    fn sealing_sets_the_daemon_policy() {
        let mut cfg = Config::default();
        Sealing::Clear.configure(&mut cfg);
        assert_eq!(cfg.seal.policy, SealPolicyName::Off);
        Sealing::Sealed.configure(&mut cfg);
        assert_eq!(cfg.seal.policy, SealPolicyName::Required);
    }
}
