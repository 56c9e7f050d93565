//! Environment overrides: every key of the configuration can be set by a
//! variable `TERN_<SECTION>_<KEY>`, applied over the file's values.

use std::path::PathBuf;
use std::time::Duration;

use super::{Config, ConfigError};

impl Config {
    /// Applies overrides named `TERN_<SECTION>_<KEY>` read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                var: var.into(),
                value: value.into(),
                reason: e.to_string(),
            })
        }
        fn duration(var: &str, value: &str) -> Result<Duration, ConfigError> {
            humantime::parse_duration(value).map_err(|e| ConfigError::Env {
                var: var.into(),
                value: value.into(),
                reason: e.to_string(),
            })
        }
        fn path(_: &str, value: &str) -> Result<PathBuf, ConfigError> {
            Ok(PathBuf::from(value))
        }
        macro_rules! over {
            ($var:literal, $slot:expr, $conv:expr) => {
                if let Some(v) = get($var) {
                    $slot = $conv($var, &v)?;
                }
            };
        }
        over!("TERN_SERVER_LISTEN", self.server.listen, parse);
        over!("TERN_SERVER_DATA_DIR", self.server.data_dir, path);
        over!("TERN_SERVER_WAL_DIR", self.server.wal_dir, |k, v| path(
            k, v
        )
        .map(Some));
        over!("TERN_SERVER_RETENTION", self.server.retention, duration);
        over!(
            "TERN_SERVER_HISTORY_RETENTION",
            self.server.history_retention,
            parse
        );
        over!(
            "TERN_SERVER_COMMITS_IN_FLIGHT",
            self.server.commits_in_flight,
            parse
        );
        over!(
            "TERN_SERVER_CHECKPOINT_DELAY",
            self.server.checkpoint_delay,
            duration
        );
        over!(
            "TERN_SERVER_RECEIPT_DELAY",
            self.server.receipt_delay,
            duration
        );
        over!("TERN_TIMERS_HEARTBEAT", self.timers.heartbeat, duration);
        over!(
            "TERN_TIMERS_IDLE_TIMEOUT",
            self.timers.idle_timeout,
            duration
        );
        over!(
            "TERN_TIMERS_REDUNDANT_SENDS_AT",
            self.timers.redundant_sends_at,
            parse
        );
        over!(
            "TERN_TIMERS_REDUNDANT_COPIES",
            self.timers.redundant_copies,
            parse
        );
        over!("TERN_LIMITS_MAX_SESSIONS", self.limits.max_sessions, parse);
        over!("TERN_LIMITS_MAX_PAYLOAD", self.limits.max_payload, parse);
        over!(
            "TERN_LIMITS_ACCEPT_UNKNOWN_RECIPIENTS",
            self.limits.accept_unknown_recipients,
            parse
        );
        over!("TERN_LIMITS_PAGE_ENTRIES", self.limits.page_entries, parse);
        over!(
            "TERN_LIMITS_GROUP_MAX_MEMBERS",
            self.limits.group_max_members,
            parse
        );
        over!(
            "TERN_LIMITS_GROUP_WRITE_FANOUT_MAX",
            self.limits.group_write_fanout_max,
            parse
        );
        over!(
            "TERN_LIMITS_VALIDATE_ADDRESSES",
            self.limits.validate_addresses,
            parse
        );
        over!(
            "TERN_LIMITS_PRELOGIN_RATE",
            self.limits.prelogin_rate,
            parse
        );
        over!("TERN_LIMITS_SESSION_RATE", self.limits.session_rate, parse);
        over!(
            "TERN_LIMITS_STATELESS_REPLY_RATE",
            self.limits.stateless_reply_rate,
            parse
        );
        over!(
            "TERN_LIMITS_QUIC_HANDSHAKE_RATE",
            self.limits.quic_handshake_rate,
            parse
        );
        over!(
            "TERN_LIMITS_KERNEL_FILTER",
            self.limits.kernel_filter,
            parse
        );
        over!("TERN_SEAL_POLICY", self.seal.policy, parse);
        over!("TERN_SEAL_KEY_FILE", self.seal.key_file, path);
        over!("TERN_AUTH_SECRET_FILE", self.auth.secret_file, path);
        // An empty value turns an optional listener off.
        let optional = |var: &str, v: &str| {
            if v.is_empty() {
                Ok(None)
            } else {
                parse(var, v).map(Some)
            }
        };
        over!("TERN_METRICS_LISTEN", self.metrics.listen, optional);
        over!("TERN_QUIC_LISTEN", self.quic.listen, parse);
        self.api.apply_env(&get)?;
        over!("TERN_QUIC_CERT_FILE", self.quic.cert_file, path);
        over!("TERN_QUIC_KEY_FILE", self.quic.key_file, path);
        Ok(())
    }
}
