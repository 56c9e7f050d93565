//! Command-line value parsers the lab's binaries share (clap
//! `value_parser`s): durations with a unit, and periods that can be `off`.

use std::time::Duration;

use tern_sim::impairment::parse_duration;

/// A duration with a unit: `500ms`, `5s`, `2m` (see `docs/lab-proxy.md`).
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
        .ok_or_else(|| format!("`{s}`: expected a duration with a unit, like 500ms, 5s or 2m"))
}

/// A period that can be switched `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub Option<Duration>);

/// A positive duration, or `off`.
pub fn period_arg(s: &str) -> Result<Period, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Period(None));
    }
    duration_arg(s).and_then(|d| {
        if d.is_zero() {
            Err("must be positive (or `off`)".to_string())
        } else {
            Ok(Period(Some(d)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(period_arg("off"), Ok(Period(None)));
        assert_eq!(period_arg("5s"), Ok(Period(Some(Duration::from_secs(5)))));
        assert!(period_arg("0s").is_err());
        assert!(period_arg("5").is_err());
    }
}
