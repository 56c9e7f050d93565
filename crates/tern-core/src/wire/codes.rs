//! The stable numbers of protocol v1: frame types, KICK reasons and ERROR
//! codes. A number is never reused for another meaning (`proto-spec/frames.md`).

/// Frame type bytes. Stable: a number is never reused for another meaning.
pub mod ty {
    /// One byte of padding.
    pub const PADDING: u8 = 0x00;
    /// Client → server: authenticate with a token.
    pub const LOGIN: u8 = 0x01;
    /// Server → client: login accepted.
    pub const LOGIN_OK: u8 = 0x02;
    /// Either way: liveness probe.
    pub const HEARTBEAT: u8 = 0x03;
    /// Either way: answer to a heartbeat.
    pub const HEARTBEAT_ACK: u8 = 0x04;
    /// Server → client: prove you own your address; echo this cookie.
    pub const RETRY: u8 = 0x05;
    /// Client → server: the cookie from RETRY, ahead of LOGIN.
    pub const COOKIE: u8 = 0x06;
    /// Client → server: Noise NK message 1 opening a sealed session (its
    /// encrypted payload carries the LOGIN).
    pub const HANDSHAKE: u8 = 0x07;
    /// Server → client: Noise NK message 2 (its payload carries LOGIN_OK).
    pub const HANDSHAKE_REPLY: u8 = 0x08;
    /// Client → server: a message to store and deliver.
    pub const SEND: u8 = 0x10;
    /// Server → client: one entry of the device's inbox timeline.
    pub const DELIVER: u8 = 0x11;
    /// Either way: acknowledges sequence numbers of the opposite flow.
    pub const ACK: u8 = 0x12;
    /// Client → server: "read up to here" for one conversation.
    pub const READ: u8 = 0x13;
    /// Client → server: recall a message this device sent.
    pub const RECALL: u8 = 0x14;
    /// Client → server: ask for a page of the inbox past a sequence.
    pub const PULL: u8 = 0x20;
    /// Server → client: closes a pull page.
    pub const PAGE_END: u8 = 0x21;
    /// Client → server: ask for per-conversation counters.
    pub const SUMMARY_REQUEST: u8 = 0x22;
    /// Server → client: counters of one conversation.
    pub const SUMMARY: u8 = 0x23;
    /// Server → client: closes a summary answer.
    pub const SUMMARY_END: u8 = 0x24;
    /// Server → client: the inbox head moved (a hint to pull).
    pub const NOTIFY: u8 = 0x25;
    /// Server → client: the session is over.
    pub const KICK: u8 = 0x30;
    /// Either way: a typed error with a stable code.
    pub const ERROR: u8 = 0x31;
    /// Client → server: end the session.
    pub const LOGOUT: u8 = 0x32;
    /// Version 2, client → server: a message into a conversation.
    pub const POST: u8 = 0x15;
    /// Version 2, client → server: move the user's read position.
    pub const MARK_READ: u8 = 0x16;
    /// Version 2, client → server: recall a message by `conv_seq`.
    pub const RETRACT: u8 = 0x17;
    /// Version 2, client → server: delete a message or conversation for me.
    pub const DELETE: u8 = 0x18;
    /// Version 2, server → client: one sync-timeline entry.
    pub const ENTRY: u8 = 0x19;
    /// Version 2, client → server: a group membership operation.
    pub const GROUP_OP: u8 = 0x1a;
    /// Version 2, client → server: conversations changed since a version.
    pub const LIST: u8 = 0x26;
    /// Version 2, server → client: one conversation of the list.
    pub const LIST_ITEM: u8 = 0x27;
    /// Version 2, server → client: closes a list answer.
    pub const LIST_END: u8 = 0x28;
    /// Version 2, client → server: a page of a conversation's history.
    pub const HISTORY: u8 = 0x29;
    /// Version 2, server → client: one record of a history page.
    pub const RECORD: u8 = 0x2a;
    /// Version 2, server → client: closes a history page.
    pub const HISTORY_END: u8 = 0x2b;
    /// Version 2, client → server: a page of a group's members.
    pub const MEMBERS: u8 = 0x2c;
    /// Version 2, server → client: one member of a group.
    pub const MEMBER: u8 = 0x2d;
    /// Version 2, server → client: closes a members answer.
    pub const MEMBERS_END: u8 = 0x2e;
    /// Version 2, client → server: read counts of group records.
    pub const READ_COUNTS: u8 = 0x2f;
    /// Version 2, server → client: read counts of group records.
    pub const READ_COUNTS_ANSWER: u8 = 0x33;

    /// Whether type `t` exists only in protocol version 2.
    pub fn is_v2_only(t: u8) -> bool {
        matches!(t, POST..=GROUP_OP | LIST..=READ_COUNTS | READ_COUNTS_ANSWER)
    }

    /// First skippable extension type (length-prefixed, ignored when unknown).
    pub const EXTENSION_FIRST: u8 = 0x40;
    /// Server → client, in the extension range (so a client that does not
    /// know it skips it): an address token to echo, instead of waiting for
    /// a RETRY, at the next login (`proto-spec/address-tokens.md`).
    pub const ADDRESS_TOKEN: u8 = 0x40;
    /// Last skippable extension type.
    pub const EXTENSION_LAST: u8 = 0x7f;
}

/// Why a server ended a session (KICK reason codes, stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u64)]
pub enum KickReason {
    /// The same device logged in again; this session was replaced.
    Replaced = 1,
    /// The client logged out.
    LoggedOut = 2,
    /// The token expired.
    TokenExpired = 3,
    /// The server is shutting down; reconnect later.
    Shutdown = 4,
    /// Nothing heard for the idle timeout.
    Idle = 5,
}

impl KickReason {
    /// Maps a wire code back to a reason.
    pub fn from_code(code: u64) -> Option<KickReason> {
        Some(match code {
            1 => KickReason::Replaced,
            2 => KickReason::LoggedOut,
            3 => KickReason::TokenExpired,
            4 => KickReason::Shutdown,
            5 => KickReason::Idle,
            _ => return None,
        })
    }
}

/// Stable error codes carried in ERROR frames. Never renumbered or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u64)]
pub enum ErrorCode {
    /// The packet could not be decoded.
    Malformed = 1,
    /// The packet's version is not spoken here.
    UnsupportedVersion = 2,
    /// A frame type in the non-skippable range is unknown.
    UnknownFrame = 3,
    /// The header's session id names no live session: log in again.
    UnknownSession = 4,
    /// The token's signature or format is wrong.
    BadToken = 5,
    /// The token has expired.
    TokenExpired = 6,
    /// The receiver is not known to the server.
    UnknownRecipient = 7,
    /// The payload is larger than the server accepts.
    PayloadTooLarge = 8,
    /// The sender is over its rate limit; retry later.
    RateLimited = 9,
    /// The server is overloaded or shutting down; retry later.
    ServerBusy = 10,
    /// The uplink sequence is too far ahead of what the server has applied.
    SeqOutOfWindow = 11,
    /// The server failed to store the message; retry later.
    StorageFailure = 12,
    /// The frame is not allowed in this direction or state.
    NotAllowed = 13,
    /// The recalled message does not exist or is not the caller's.
    NoSuchMessage = 14,
    /// This server requires raw-UDP sessions to be sealed: log in with a
    /// HANDSHAKE under the server's key instead of a clear LOGIN.
    SealRequired = 15,
    /// Version 2: a conversation reference the server does not know or the
    /// user may not use (`proto-spec/conversations.md`).
    NoSuchConversation = 16,
    /// Version 2: the user's role in the group does not allow the operation
    /// (`proto-spec/groups.md`).
    NotPermitted = 17,
    /// Version 2: the group would have more members than the server allows.
    GroupFull = 18,
}

impl ErrorCode {
    /// Maps a wire code back, if known.
    pub fn from_code(code: u64) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match code {
            1 => Malformed,
            2 => UnsupportedVersion,
            3 => UnknownFrame,
            4 => UnknownSession,
            5 => BadToken,
            6 => TokenExpired,
            7 => UnknownRecipient,
            8 => PayloadTooLarge,
            9 => RateLimited,
            10 => ServerBusy,
            11 => SeqOutOfWindow,
            12 => StorageFailure,
            13 => NotAllowed,
            14 => NoSuchMessage,
            15 => SealRequired,
            16 => NoSuchConversation,
            17 => NotPermitted,
            18 => GroupFull,
            _ => return None,
        })
    }

    /// True when a later retry of the same request may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::ServerBusy | ErrorCode::StorageFailure
        )
    }
}
