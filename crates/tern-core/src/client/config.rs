//! Client connection settings.

use std::time::Duration;

use bytes::Bytes;

use crate::reliability::{ReceiverConfig, SenderConfig};

/// Everything a client connection can be tuned by.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Login token (from `ternd token`).
    pub token: Bytes,
    /// Inbox epoch this device last saw (0: none).
    pub epoch: u64,
    /// Highest inbox sequence this device has durably processed.
    pub checkpoint: u64,
    /// Operations restored from a durable outbox that already had a
    /// sequence, oldest first. They are replayed under the same sequences, so
    /// the server recognises any it had already stored: no duplicates.
    pub resume: Vec<(u64, super::Outgoing)>,
    /// Uplink retransmission timers.
    pub uplink: SenderConfig,
    /// Downlink reorder window and ACK timing.
    pub downlink: ReceiverConfig,
    /// First LOGIN retry interval; doubles up to `login_max`.
    pub login_initial: Duration,
    /// Longest LOGIN retry interval.
    pub login_max: Duration,
    /// Pull the backlog automatically when the server asks for pulling.
    pub auto_pull: bool,
    /// Advance the checkpoint (and ACK) as soon as entries are handed up.
    /// Turn off when the application persists entries first and then calls
    /// `ClientConn::release`.
    pub auto_release: bool,
    /// Entries asked for per pull page.
    pub page_entries: u64,
    /// Largest datagram sent.
    pub max_datagram: usize,
    /// The server's static key: when set, the session is sealed (Noise
    /// handshake at login, every packet encrypted and authenticated, see
    /// `crate::seal`), and clear packets from the network are ignored except
    /// the few a server must send before it has keys.
    pub server_key: Option<crate::seal::PublicKey>,
    /// Unix time in ms at `Time::ZERO`: handshakes carry the client's clock
    /// so that a server can refuse a recorded one replayed later. Drivers
    /// set it from the system clock.
    pub wall_origin_ms: u64,
    /// 32 bytes from the operating system's CSPRNG for handshake keys.
    /// `None` derives them from the connection's seed: reproducible, for
    /// tests and the simulator only.
    pub entropy: Option<[u8; 32]>,
}

impl ClientConfig {
    /// Defaults around a token.
    pub fn new(token: Bytes) -> Self {
        ClientConfig {
            token,
            epoch: 0,
            checkpoint: 0,
            resume: Vec::new(),
            uplink: SenderConfig::default(),
            downlink: ReceiverConfig::default(),
            login_initial: Duration::from_millis(500),
            login_max: Duration::from_secs(8),
            auto_pull: true,
            auto_release: true,
            page_entries: crate::wire::limits::PAGE_ENTRIES_DEFAULT,
            max_datagram: crate::wire::limits::MAX_DATAGRAM,
            server_key: None,
            wall_origin_ms: 0,
            entropy: None,
        }
    }
}
