//! The daemon's configuration: a TOML file, overridden by `TERN_*`
//! environment variables, validated as a whole before anything starts.
//! The `[quic]` section is in `quic.rs`; the environment overrides in
//! `env.rs`.

mod quic;

pub use quic::{QuicListen, QuicSection};

mod retention;
pub use retention::HistoryRetention;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod api;
pub use api::ApiSection;

mod env;

/// Everything `ternd serve` can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Network and storage.
    pub server: ServerSection,
    /// Protocol timers.
    pub timers: TimersSection,
    /// Limits on what clients may do.
    pub limits: LimitsSection,
    /// Token secrets.
    pub auth: AuthSection,
    /// Prometheus metrics.
    pub metrics: MetricsSection,
    /// The QUIC transport (on by default, next to raw UDP).
    pub quic: QuicSection,
    /// Sealed (encrypted, authenticated) raw UDP.
    pub seal: SealSection,
    /// The HTTP server API and status page (off unless `listen` is set).
    pub api: ApiSection,
}

/// `[seal]`: encryption of raw-UDP sessions (see `proto-spec/sealed.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealSection {
    /// `required` (the default): raw-UDP clients must seal their session
    /// with the server key; `optional`: clients that know the key seal,
    /// others log in in the clear; `off`: clear only, no key. QUIC is
    /// always encrypted by TLS and is not affected.
    pub policy: SealPolicyName,
    /// File with the server's static X25519 secret (hex). Empty:
    /// `<data_dir>/seal.key`, created on first start. Its public key is
    /// printed at start and by `ternd seal-key`; clients pin it.
    pub key_file: PathBuf,
}

/// Spelling of [`tern_core::broker::SealPolicy`] in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SealPolicyName {
    /// Clear only.
    Off,
    /// Sealed or clear, at the client's choice.
    Optional,
    /// Sealed only (raw UDP).
    #[default]
    Required,
}

impl std::str::FromStr for SealPolicyName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(SealPolicyName::Off),
            "optional" => Ok(SealPolicyName::Optional),
            "required" => Ok(SealPolicyName::Required),
            _ => Err(format!("{s:?} is not off, optional or required")),
        }
    }
}

impl Default for SealSection {
    fn default() -> Self {
        SealSection {
            policy: SealPolicyName::Required,
            key_file: PathBuf::new(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// UDP address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Folder holding the RocksDB store and the token secret.
    pub data_dir: PathBuf,
    /// Folder for the store's write-ahead log, e.g. on a disk of its own
    /// (every ACK waits for its fsync). Absent: inside `data_dir`. Moving
    /// it is refused while the old folder holds WAL files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_dir: Option<PathBuf>,
    /// How long inbox entries are kept when some device never reads them.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How long conversation history is kept: "forever" or a duration, not
    /// shorter than `retention`.
    pub history_retention: HistoryRetention,
    /// Write batches out for commit at once (1–64). Above 1, the next batch
    /// is handed to the commit thread while one syncs; every ACK still
    /// waits for its batch's fsync. 1 by default: more measured slower
    /// (smaller batches, more fsyncs; `docs/benchmarks.md`).
    pub commits_in_flight: usize,
    /// How long a write that only moves devices' delivery checkpoints waits
    /// to ride with the next batch that must be durable (0s–60s; 0s: at
    /// once). A crash loses at most this much of them, and devices drop
    /// the entries sent again as duplicates.
    #[serde(with = "humantime_serde")]
    pub checkpoint_delay: Duration,
    /// How long a DELIVERED receipt waits to ride with the next batch that
    /// must be durable (0s–1s; 0s: at once): the sender's "delivered" comes
    /// that much later at most, and a message costs one commit, not two.
    #[serde(with = "humantime_serde")]
    pub receipt_delay: Duration,
}

/// `[timers]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimersSection {
    /// Heartbeat interval announced to clients.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Silence after which a session is dropped and the device shown offline.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Loss rate of a device's path at which the server sends new entries
    /// to it in copies, 2 ms apart (0 to 0.5; 0: never). They stop once
    /// the path shows less than half of it. Under loss this trades bytes
    /// for tail latency (`docs/benchmarks.md`, "Redundant first sends on a
    /// lossy path").
    pub redundant_sends_at: f32,
    /// Copies of each new entry while redundant sends are on and the
    /// estimated loss is at least twice `redundant_sends_at` (2 to 4; 3 by
    /// default; two below that). `docs/design.md`, "Loss recovery".
    pub redundant_copies: u8,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Logged-in sessions, at most.
    pub max_sessions: usize,
    /// Largest message payload accepted, in bytes (at most 1024).
    pub max_payload: usize,
    /// Store messages for users that never logged in.
    pub accept_unknown_recipients: bool,
    /// Entries per pull page, at most.
    pub page_entries: u64,
    /// Prove a client's address with a stateless cookie (RETRY) before
    /// creating its session: no state and no amplification for spoofed sources.
    pub validate_addresses: bool,
    /// Sessionless packets per second accepted from one IP address.
    pub prelogin_rate: f64,
    /// Datagrams per second accepted on one session.
    pub session_rate: f64,
    /// Stateless ERROR answers (to junk, unknown sessions, refused logins)
    /// sent per second, at most, in total; the rest are dropped silently so
    /// that a flood of junk does not turn the server into a reflector.
    /// RETRY answers have their own budget at the same rate.
    pub stateless_reply_rate: f64,
    /// QUIC connection attempts per second accepted from one IP address
    /// (burst twice that); the rest are ignored before any cryptography.
    pub quic_handshake_rate: f64,
    /// Drop datagrams that cannot be Tern packets in the kernel, before
    /// they reach the daemon (raw UDP; `proto-spec/packet.md`, "Versions").
    pub kernel_filter: bool,
    /// Most current members of one group.
    pub group_max_members: usize,
    /// Groups with more current members than this use read fan-out: a
    /// record is stored once and pushed only to members online
    /// (`proto-spec/groups.md`, "Fan-out").
    pub group_write_fanout_max: usize,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// File with the signing secret (hex). Empty: `<data_dir>/token.secret`,
    /// created on first start.
    pub secret_file: PathBuf,
    /// Older secrets (hex) still accepted during a rotation.
    pub previous_secrets: Vec<String>,
}

/// `[metrics]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// TCP address of the Prometheus endpoint (`GET /metrics`); unset: off.
    pub listen: Option<SocketAddr>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:7400".parse().expect("valid literal"),
            data_dir: PathBuf::from("tern-data"),
            wal_dir: None,
            retention: Duration::from_secs(30 * 24 * 3600),
            history_retention: HistoryRetention::Forever,
            commits_in_flight: 1,
            checkpoint_delay: Duration::from_secs(1),
            receipt_delay: Duration::from_millis(10),
        }
    }
}

impl Default for TimersSection {
    fn default() -> Self {
        TimersSection {
            heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            redundant_sends_at: tern_core::reliability::SenderConfig::default().redundant_sends_at,
            redundant_copies: tern_core::reliability::SenderConfig::default().redundant_copies,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_sessions: 200_000,
            max_payload: tern_core::wire::limits::MAX_PAYLOAD,
            accept_unknown_recipients: true,
            page_entries: tern_core::wire::limits::PAGE_ENTRIES_DEFAULT,
            validate_addresses: true,
            prelogin_rate: 5_000.0,
            session_rate: 50_000.0,
            stateless_reply_rate: 10_000.0,
            quic_handshake_rate: 100.0,
            kernel_filter: true,
            group_max_members: 100_000,
            group_write_fanout_max: 500,
        }
    }
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            secret_file: PathBuf::new(),
            previous_secrets: Vec::new(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: toml::de::Error,
    },
    /// An environment override could not be parsed.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value is out of range.
    #[error("[{section}] {key}: {reason}")]
    Invalid {
        /// TOML section.
        section: &'static str,
        /// Key within it.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Reads `path` (if given), applies `TERN_*` overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: p.to_path_buf(),
                    source,
                })?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The default configuration as commented TOML (`ternd generate-config`).
    pub fn default_toml() -> String {
        let body =
            toml::to_string_pretty(&Config::default()).expect("the default config serialises");
        format!(
            "# ternd configuration. Every key can be overridden by an environment\n\
             # variable TERN_<SECTION>_<KEY>, e.g. TERN_SERVER_LISTEN=0.0.0.0:7400.\n\
             # Durations take units: 15s, 2m, 30days.\n\n{body}\n\
             # [server] wal_dir: a folder for the store's write-ahead log, for example\n\
             # on a disk of its own (absent: inside data_dir; also TERN_SERVER_WAL_DIR).\n\
             # [quic] listen: \"next\" (the [server] listen address with the next\n\
             # port), \"off\", or an address (also TERN_QUIC_LISTEN, ternd serve --quic).\n\
             # [seal] policy: \"required\", \"optional\" or \"off\" (raw UDP in the clear:\n\
             # no seal key, so `ternd seal-key` fails and clients pass no --seal-key).\n"
        )
    }

    /// Checks every section; the first problem is returned.
    // `!(x >= min)` on purpose: a NaN rate fails too.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |section, key, reason: &str| {
            Err(ConfigError::Invalid {
                section,
                key,
                reason: reason.into(),
            })
        };
        if self.server.data_dir.as_os_str().is_empty() {
            return bad("server", "data_dir", "must not be empty");
        }
        if self
            .server
            .wal_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return bad(
                "server",
                "wal_dir",
                "must not be empty (leave it out for data_dir)",
            );
        }
        if self.server.retention < Duration::from_secs(60) {
            return bad("server", "retention", "must be at least 1 minute");
        }
        if let HistoryRetention::For(d) = self.server.history_retention {
            if d < self.server.retention {
                return bad(
                    "server",
                    "history_retention",
                    "must be \"forever\" or at least `retention`: history outlives the sync timelines",
                );
            }
        }
        if !(1..=64).contains(&self.server.commits_in_flight) {
            return bad("server", "commits_in_flight", "must be from 1 to 64");
        }
        if self.server.checkpoint_delay > Duration::from_secs(60) {
            return bad("server", "checkpoint_delay", "must be at most 60s");
        }
        if self.server.receipt_delay > Duration::from_secs(1) {
            return bad("server", "receipt_delay", "must be at most 1s");
        }
        if self.timers.heartbeat < Duration::from_secs(1) {
            return bad("timers", "heartbeat", "must be at least 1s");
        }
        if !(0.0..=0.5).contains(&self.timers.redundant_sends_at) {
            return bad(
                "timers",
                "redundant_sends_at",
                "must be from 0 (off) to 0.5",
            );
        }
        if !(2..=4).contains(&self.timers.redundant_copies) {
            return bad("timers", "redundant_copies", "must be 2 to 4");
        }
        if self.timers.idle_timeout < self.timers.heartbeat * 2 {
            return bad(
                "timers",
                "idle_timeout",
                "must be at least twice the heartbeat",
            );
        }
        if self.limits.max_sessions == 0 {
            return bad("limits", "max_sessions", "must be positive");
        }
        if self.limits.max_payload == 0
            || self.limits.max_payload > tern_core::wire::limits::MAX_PAYLOAD
        {
            return bad("limits", "max_payload", "must be between 1 and 1024");
        }
        if self.limits.group_max_members < 2 {
            return bad("limits", "group_max_members", "must be at least 2");
        }
        if self.limits.page_entries == 0
            || self.limits.page_entries > tern_core::wire::limits::MAX_PAGE_ENTRIES
        {
            return bad("limits", "page_entries", "must be between 1 and 4096");
        }
        if !(self.limits.prelogin_rate >= 1.0) {
            return bad("limits", "prelogin_rate", "must be at least 1 per second");
        }
        if !(self.limits.quic_handshake_rate >= 1.0) {
            return bad(
                "limits",
                "quic_handshake_rate",
                "must be at least 1 per second",
            );
        }
        if !(self.limits.session_rate >= 10.0) {
            return bad("limits", "session_rate", "must be at least 10 per second");
        }
        if !(self.limits.stateless_reply_rate >= 1.0) {
            return bad(
                "limits",
                "stateless_reply_rate",
                "must be at least 1 per second",
            );
        }
        for s in &self.auth.previous_secrets {
            if hex::decode(s).map_or(true, |b| b.len() < 16) {
                return bad(
                    "auth",
                    "previous_secrets",
                    "each must be hex of at least 16 bytes",
                );
            }
        }
        self.api.validate()?;
        if self.quic.cert_file.as_os_str().is_empty() != self.quic.key_file.as_os_str().is_empty() {
            return bad(
                "quic",
                "key_file",
                "cert_file and key_file must be set together (or both left empty for a generated certificate)",
            );
        }
        match self.quic_listen() {
            None if self.quic.listen == QuicListen::Next => {
                return bad(
                    "quic",
                    "listen",
                    "\"next\" needs a [server] listen port below 65535",
                );
            }
            Some(q) if q.port() != 0 && q == self.server.listen => {
                return bad(
                    "quic",
                    "listen",
                    "must differ from [server] listen (QUIC needs its own UDP port)",
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// The address QUIC listens on, `None` when it is off.
    pub fn quic_listen(&self) -> Option<SocketAddr> {
        self.quic.listen.resolve(self.server.listen)
    }

    /// The QUIC certificate and key files in effect: the configured ones, or
    /// the generated pair in the data folder.
    pub fn quic_cert_paths(&self) -> (PathBuf, PathBuf) {
        if self.quic.cert_file.as_os_str().is_empty() {
            (
                self.server.data_dir.join("quic-cert.pem"),
                self.server.data_dir.join("quic-key.pem"),
            )
        } else {
            (self.quic.cert_file.clone(), self.quic.key_file.clone())
        }
    }

    /// Whether the certificate is generated (no `cert_file` configured).
    pub fn quic_cert_generated(&self) -> bool {
        self.quic.cert_file.as_os_str().is_empty()
    }

    /// The token secret file in effect.
    pub fn secret_path(&self) -> PathBuf {
        if self.auth.secret_file.as_os_str().is_empty() {
            self.server.data_dir.join("token.secret")
        } else {
            self.auth.secret_file.clone()
        }
    }

    /// Where the seal key lives.
    pub fn seal_key_path(&self) -> PathBuf {
        if self.seal.key_file.as_os_str().is_empty() {
            self.server.data_dir.join("seal.key")
        } else {
            self.seal.key_file.clone()
        }
    }
}

#[cfg(test)]
mod tests;
