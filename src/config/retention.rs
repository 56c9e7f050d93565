//! `[server] history_retention`: how long conversation history is kept,
//! "forever" or a duration ("365days", "90d").

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How long conversation history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryRetention {
    /// Never trimmed (the default: a chat history is the product).
    #[default]
    Forever,
    /// Records older than this are deleted.
    For(Duration),
}

impl HistoryRetention {
    /// As the broker takes it: `None` for forever.
    pub fn as_duration(self) -> Option<Duration> {
        match self {
            HistoryRetention::Forever => None,
            HistoryRetention::For(d) => Some(d),
        }
    }
}

impl FromStr for HistoryRetention {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("forever") {
            return Ok(HistoryRetention::Forever);
        }
        humantime::parse_duration(s)
            .map(HistoryRetention::For)
            .map_err(|e| format!("{e} (expected \"forever\" or a duration such as \"365days\")"))
    }
}

impl fmt::Display for HistoryRetention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryRetention::Forever => f.write_str("forever"),
            HistoryRetention::For(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

impl Serialize for HistoryRetention {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HistoryRetention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forever_and_durations_parse_and_print_back() {
        assert_eq!("forever".parse(), Ok(HistoryRetention::Forever));
        assert_eq!(" Forever ".parse(), Ok(HistoryRetention::Forever));
        let year = HistoryRetention::For(Duration::from_secs(365 * 86_400));
        assert_eq!("365days".parse(), Ok(year));
        assert_eq!(year.to_string().parse(), Ok(year));
        assert_eq!(HistoryRetention::Forever.to_string(), "forever");
    }

    #[test]
    fn nonsense_is_refused_with_what_is_expected() {
        let e = "a while".parse::<HistoryRetention>().unwrap_err();
        assert!(e.contains("forever"), "{e}");
    }

    #[test]
    fn the_daemon_config_takes_it_and_refuses_history_shorter_than_sync() {
        use crate::config::Config;
        let c: Config = toml::from_str("[server]\nhistory_retention = \"90days\"\n").unwrap();
        let ninety = Duration::from_secs(90 * 86_400);
        assert_eq!(c.server.history_retention.as_duration(), Some(ninety));
        assert_eq!(
            Config::default().server.history_retention,
            HistoryRetention::Forever
        );
        let short: Config = toml::from_str("[server]\nhistory_retention = \"1day\"\n").unwrap();
        let e = short.validate().unwrap_err().to_string();
        assert!(e.contains("history_retention"), "{e}");
        let bad = toml::from_str::<Config>("[server]\nhistory_retention = \"soon\"\n");
        assert!(bad.is_err());
    }
}
