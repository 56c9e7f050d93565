//! What the `broker_sessions` target reads from libFuzzer's bytes: a small
//! broker setup and a list of steps, each one thing a peer or the driver
//! does. Peers and identities are small indexes, so that steps meet the
//! same sessions again.

use arbitrary::Arbitrary;
use tern_core::wire::Frame;

/// Peers (source addresses) the target sends from: four IPv4 sources, one
/// IPv6 source, one QUIC connection.
pub const PEERS: usize = 6;
/// Users that can log in (ids 1..=USERS).
pub const USERS: u64 = 3;
/// Devices per user (ids 1..=DEVICES).
pub const DEVICES: u32 = 2;

/// The broker's settings for one input.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Setup {
    /// 0: off (no key), 1: optional, 2 and up: required.
    pub seal_policy: u8,
    /// Refuse messages to users that never logged in.
    pub known_recipients_only: bool,
    /// Tiny rate limits, source table and windows, so that their edges are reached.
    pub tight_limits: bool,
}

/// Which token a login presents.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Signed with the broker's secret, valid for a day.
    Valid,
    /// Signed, but expired.
    Expired,
    /// Signed with another secret.
    Forged,
}

/// One step.
#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    /// `peer` logs in as `user`/`device`, clear or sealed, the whole dance
    /// (LOGIN, RETRY, LOGIN with the cookie) unless told to skip the cookie.
    Login {
        peer: u8,
        user: u8,
        device: u8,
        sealed: bool,
        token: TokenKind,
        skip_cookie: bool,
    },
    /// A well-formed SEND with the session's next uplink sequence.
    Send { peer: u8, to: u8, conv: u8, len: u8 },
    /// These frames (each within the protocol's limits) in one session packet.
    Frames { peer: u8, frames: Vec<Frame> },
    /// Any bytes as the frames of a session packet of `peer`, behind a valid
    /// CRC trailer (clear session) or a valid tag (sealed session).
    Mutated { peer: u8, body: Vec<u8> },
    /// These frames in a packet with session id 0 and a valid trailer.
    Prelogin { peer: u8, frames: Vec<Frame> },
    /// Any bytes, as a datagram from `peer`.
    Junk { peer: u8, bytes: Vec<u8> },
    /// A datagram sent earlier, again, from `peer`, with one byte changed
    /// (`flip` 0: unchanged).
    Replay {
        peer: u8,
        index: u8,
        at: u16,
        flip: u8,
    },
    /// The session of `peer` acknowledges what it was delivered.
    AckDownlink { peer: u8 },
    /// The driver: hand out the next batch, or finish the one out (durable,
    /// or failed when `fail`).
    Commit { fail: bool },
    /// Store reads fail (or work again) from now on.
    StoreReads { fail: bool },
    /// Time passes, then the broker's timers run.
    Advance { ms: u16 },
}

/// One fuzz input.
#[derive(Arbitrary, Debug, Clone)]
pub struct Scenario {
    /// The broker's settings.
    pub setup: Setup,
    /// What happens, in order.
    pub steps: Vec<Step>,
}
