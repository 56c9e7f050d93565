//! Broker settings. The daemon fills these from its TOML config.

use std::time::Duration;

use crate::reliability::{ReceiverConfig, SenderConfig};

/// Everything the broker can be tuned by.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Heartbeat interval announced to clients.
    pub heartbeat: Duration,
    /// Silence after which a session is dropped.
    pub idle_timeout: Duration,
    /// Largest payload accepted in a SEND.
    pub max_payload: usize,
    /// Accept messages to users that never logged in (stored for them).
    pub accept_unknown_recipients: bool,
    /// Logged-in sessions, at most.
    pub max_sessions: usize,
    /// Entries per pull page, at most.
    pub page_entries: u64,
    /// Previews per conversation in a summary.
    pub summary_previews: usize,
    /// Conversations per summary answer, at most.
    pub summary_convs: u64,
    /// Entries scanned to build a summary, at most.
    pub summary_scan_limit: usize,
    /// Largest datagram sent.
    pub max_datagram: usize,
    /// Downlink retransmission timers (server → device).
    pub downlink: SenderConfig,
    /// Uplink receive window and ACK timing.
    pub uplink: ReceiverConfig,
    /// Entries older than this are deleted even if a device never read them.
    pub retention: Duration,
    /// Records of a conversation's history older than this are deleted
    /// (`None`: kept forever). Never shorter than `retention`: a sync entry
    /// outlives the record it names only as a marker.
    pub history_retention: Option<Duration>,
    /// Batches out for commit at once, at most. More than one lets the
    /// driver start writing the next batch while one syncs; batches still
    /// complete in order, and a failed one fails every later one with it
    /// (the driver must not apply a batch after a failed one: see
    /// [`Broker::handle_committed`](super::Broker::handle_committed)).
    /// One by default: with RocksDB's write and fsync in one call, more
    /// batches only meant smaller ones and more fsyncs (measured in
    /// `docs/benchmarks.md`, "Commit pipelining").
    pub max_commits_in_flight: usize,
    /// How long a write that only moves devices' delivery checkpoints (and
    /// the trims they allow) may wait to ride with the next batch that must
    /// be durable: nothing waits for it, and losing it in a crash only
    /// sends the device entries again, which it drops as duplicates. At a
    /// chat rate it saves one commit cycle (and fsync) per acknowledged
    /// message. Zero commits it at once, as any other write.
    pub checkpoint_delay: Duration,
    /// The same for a DELIVERED receipt: it waits up to this long for a
    /// batch that must be durable, so at a chat rate a message costs one
    /// commit, not two (the receipt, and the receiver's checkpoint with
    /// it). A crash that loses it loses the checkpoint too, so the entry
    /// is sent again and its receipt issued again. Zero: at once.
    pub receipt_delay: Duration,
    /// Conversation timelines (and user states) cached, at most, before
    /// the clean ones are dropped after a commit.
    pub conv_cache_entries: usize,
    /// Most members of one group (`proto-spec/groups.md`): an add or create
    /// beyond it is refused with `GroupFull`.
    pub group_max_members: usize,
    /// The write fan-out threshold: a group with more current members than
    /// this stores each record once and writes it only to the sync
    /// timelines of members online (read fan-out, `group_fanout.rs`).
    pub group_write_fanout_max: usize,
    /// Answer a LOGIN from an unproven address with RETRY (a stateless
    /// cookie) instead of creating a session: no state and no amplification
    /// for spoofed sources, at the cost of one round trip per login.
    pub validate_addresses: bool,
    /// With `validate_addresses`: how long an address token lasts. After a
    /// login over raw UDP the server hands the client a token bound to its
    /// IP address (ADDRESS_TOKEN, `proto-spec/address-tokens.md`); a later
    /// login from that address echoing it skips the RETRY round trip.
    /// Zero: no tokens are issued or accepted.
    pub address_token_lifetime: Duration,
    /// Key of address tokens. `None`: a random one per broker, so tokens
    /// die with the process; the daemon derives one from its secret file so
    /// that they outlive restarts.
    pub address_token_key: Option<[u8; 32]>,
    /// Pre-login packets per second accepted from one IP address.
    pub prelogin_rate: f64,
    /// Burst of pre-login packets from one IP address.
    pub prelogin_burst: f64,
    /// Datagrams per second accepted on one session.
    pub session_rate: f64,
    /// Burst of datagrams on one session.
    pub session_burst: f64,
    /// Source addresses tracked for rate limiting, at most.
    pub max_sources: usize,
    /// Stateless ERROR answers (to junk, unknown sessions, refused logins)
    /// sent per second, at most, in total; the rest are dropped silently.
    /// RETRY answers have their own budget at the same rate.
    pub stateless_reply_rate: f64,
    /// The server's static key for sealed sessions (`None`: sealing is not
    /// offered, and HANDSHAKE frames are refused).
    pub seal_key: Option<crate::seal::StaticKey>,
    /// Whether raw-UDP clients must seal their sessions.
    pub seal_policy: SealPolicy,
}

/// Whether raw-UDP sessions must be sealed. QUIC connections are encrypted by
/// TLS already and may always log in without sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SealPolicy {
    /// Clear logins only (no key configured).
    Off,
    /// Both: clients that know the server key seal, others do not.
    #[default]
    Optional,
    /// Raw-UDP clients must seal; a clear LOGIN is refused with `SEAL_REQUIRED`.
    Required,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            max_payload: crate::wire::limits::MAX_PAYLOAD,
            accept_unknown_recipients: true,
            max_sessions: 200_000,
            page_entries: crate::wire::limits::PAGE_ENTRIES_DEFAULT,
            summary_previews: 2,
            summary_convs: 64,
            summary_scan_limit: 200_000,
            max_datagram: crate::wire::limits::MAX_DATAGRAM,
            downlink: SenderConfig::default(),
            uplink: ReceiverConfig::default(),
            retention: Duration::from_secs(30 * 24 * 3600),
            history_retention: None,
            max_commits_in_flight: 1,
            checkpoint_delay: Duration::from_secs(1),
            receipt_delay: Duration::from_millis(10),
            conv_cache_entries: 65_536,
            group_max_members: 100_000,
            group_write_fanout_max: 500,
            validate_addresses: true,
            address_token_lifetime: Duration::from_secs(7 * 24 * 3600),
            address_token_key: None,
            prelogin_rate: 5_000.0,
            prelogin_burst: 10_000.0,
            session_rate: 50_000.0,
            session_burst: 100_000.0,
            max_sources: 100_000,
            stateless_reply_rate: 10_000.0,
            seal_key: None,
            seal_policy: SealPolicy::Optional,
        }
    }
}
