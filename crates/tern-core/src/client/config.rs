//! Client connection settings.

use std::time::Duration;

use bytes::Bytes;

use crate::reliability::{ReceiverConfig, SenderConfig};

/// When entries handed to the application count as processed, so that the
/// server is told (the ACK's `cumulative`, the PULL's `after`) and the
/// checkpoint moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// As soon as they are handed up as [`ClientEvent::Entry`]: for load
    /// generators and tests that do not model an application.
    ///
    /// [`ClientEvent::Entry`]: super::ClientEvent::Entry
    OnDelivery,
    /// When the application says so with [`ClientConn::release`], applied
    /// in batches (the client library's mode).
    ///
    /// [`ClientConn::release`]: super::ClientConn::release
    ByApplication(ReleaseBatch),
}

impl Release {
    /// What the client library (`tern::client`) runs, and so what the
    /// simulator runs: the application releases entries, by calling
    /// `release` (`manual`) or by reading them; with a durable checkpoint,
    /// reads are released in batches ([`ReleaseBatch::DURABLE_READS`]).
    pub fn library(durable: bool, manual: bool) -> Release {
        Release::ByApplication(if durable && !manual {
            ReleaseBatch::DURABLE_READS
        } else {
            ReleaseBatch::IMMEDIATE
        })
    }
}

/// How releases are grouped, so that a busy application costs one
/// checkpoint write (and one ACK) per batch rather than per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseBatch {
    /// A release is applied at most this long after the first one not yet
    /// applied; zero applies every release at once.
    pub delay: Duration,
    /// ... or at once when this many entries are waiting.
    pub max: u64,
}

impl ReleaseBatch {
    /// Every release applied at once.
    pub const IMMEDIATE: ReleaseBatch = ReleaseBatch {
        delay: Duration::ZERO,
        max: 1,
    };

    /// What the client library uses when it keeps a durable checkpoint and
    /// releases what the application read: one synced write per 5 ms or 64
    /// entries.
    pub const DURABLE_READS: ReleaseBatch = ReleaseBatch {
        delay: Duration::from_millis(5),
        max: 64,
    };
}

/// Everything a client connection can be tuned by.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Login token (from `ternd token`).
    pub token: Bytes,
    /// Inbox epoch this device last saw (0: none).
    pub epoch: u64,
    /// Highest inbox sequence this device has durably processed.
    pub checkpoint: u64,
    /// Operations restored from a durable outbox, oldest first, with the
    /// uplink sequence each was stored under (0: none yet). Numbered ones
    /// are replayed under the same sequences, so the server recognises any
    /// it had already stored: no duplicates. They must be consecutive.
    /// Unnumbered ones queue behind them and are reported `Sequenced` when
    /// they get a sequence. `OpId(i + 1)` names `resume[i]`.
    pub resume: Vec<(u64, super::Outgoing)>,
    /// Uplink retransmission timers.
    pub uplink: SenderConfig,
    /// Downlink reorder window and ACK timing.
    pub downlink: ReceiverConfig,
    /// First LOGIN retry interval; doubles up to `login_max`.
    pub login_initial: Duration,
    /// Longest LOGIN retry interval.
    pub login_max: Duration,
    /// Copies of each LOGIN (or HANDSHAKE) datagram sent, `login_copy_gap`
    /// apart: on a lossy link a login exchange then fails only when every
    /// copy or every answer is lost (at 20 % loss each way, one exchange
    /// fails 36 % of the time with one copy, 5 % with three). Each copy is
    /// answered with at most its own size, so the amplification bound
    /// holds; the server tells spare copies from a new login
    /// (`proto-spec/flows.md`, login, step 3). Default 3: time to connect
    /// at 20 % loss p50 2.1 RTT and p99 0.7 s instead of 5.1 RTT and 30 s
    /// (`docs/benchmarks.md`).
    pub login_copies: u8,
    /// Time between two copies of a login datagram (apart, so that one
    /// burst of loss does not take them all).
    pub login_copy_gap: Duration,
    /// Pull the backlog automatically when the server asks for pulling.
    pub auto_pull: bool,
    /// When entries count as processed.
    pub release: Release,
    /// The driver keeps the checkpoint durably: it saves each one
    /// [`ClientConn::poll_persist`] hands out and confirms it with
    /// [`ClientConn::persisted`], and the server is never told that
    /// entries are processed before the checkpoint covering them is saved.
    ///
    /// [`ClientConn::poll_persist`]: super::ClientConn::poll_persist
    /// [`ClientConn::persisted`]: super::ClientConn::persisted
    pub persist: bool,
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
    /// Protocol version to log in with: `wire::VERSION` (1) or
    /// `wire::VERSION_2` (conversations, `proto-spec/conversations.md`). A
    /// version 2 connection falls back to 1 if the server speaks only that.
    pub version: u8,
    /// What the device held of each conversation when it last ran (from
    /// its state folder): gaps are found against it.
    pub held: Vec<(crate::wire::ConvRef, super::Held)>,
    /// The address token the server gave this device last time (from its
    /// state folder): echoed at the first login, it spares the RETRY round
    /// trip when the device comes back from the same IP address
    /// (`proto-spec/address-tokens.md`).
    pub address_token: Option<Bytes>,
}

impl ClientConfig {
    /// Defaults around a token: entries count as processed once handed up,
    /// nothing persisted.
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
            login_copies: 3,
            login_copy_gap: Duration::from_millis(10),
            auto_pull: true,
            release: Release::OnDelivery,
            persist: false,
            page_entries: crate::wire::limits::PAGE_ENTRIES_DEFAULT,
            max_datagram: crate::wire::limits::MAX_DATAGRAM,
            server_key: None,
            wall_origin_ms: 0,
            entropy: None,
            version: crate::wire::VERSION,
            held: Vec::new(),
            address_token: None,
        }
    }
}
