//! Every frame of protocol v1, as plain values. Encoding and decoding live in
//! `frame_codec.rs`; the byte layout of each frame is in `proto-spec/frames.md`.

use bytes::Bytes;

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
    /// First skippable extension type (length-prefixed, ignored when unknown).
    pub const EXTENSION_FIRST: u8 = 0x40;
    /// Last skippable extension type.
    pub const EXTENSION_LAST: u8 = 0x7f;
}

/// Client → server: authenticate this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Opaque signed token (see `proto-spec/auth.md`).
    pub token: Bytes,
    /// Inbox epoch the device last saw; 0 if it has none.
    pub epoch: u64,
    /// Highest inbox sequence the device has durably processed in that epoch.
    pub checkpoint: u64,
}

/// Server → client: login accepted. The session id is in this packet's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOk {
    /// The authenticated user.
    pub user: u64,
    /// The authenticated device.
    pub device: u32,
    /// Current epoch of the user's inbox. A change means the store was reset.
    pub epoch: u64,
    /// Highest sequence in the inbox.
    pub head: u64,
    /// Where this device's checkpoint stands on the server.
    pub checkpoint: u64,
    /// Next uplink sequence the server expects from this device.
    pub next_send_seq: u64,
    /// Heartbeat interval the client should use, in milliseconds.
    pub heartbeat_ms: u64,
    /// Silence after which the server drops the session, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Server wall clock, milliseconds since the Unix epoch.
    pub server_time_ms: u64,
}

/// Client → server: a message for another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// Uplink sequence, per device, starting at 1.
    pub seq: u64,
    /// Receiving user.
    pub to: u64,
    /// Conversation the message belongs to.
    pub conv: u64,
    /// Application-defined message type (0 = UTF-8 text by convention).
    pub msg_type: u64,
    /// Application payload, at most `MAX_PAYLOAD` bytes.
    pub payload: Bytes,
}

/// What an inbox entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// A message from `from_*`.
    Message {
        /// Application-defined message type.
        msg_type: u64,
        /// Application payload.
        payload: Bytes,
    },
    /// A receipt about a message the inbox owner sent from `target_device`.
    Receipt {
        /// DELIVERED or READ.
        status: ReceiptStatus,
        /// Device of the inbox owner that sent the message.
        target_device: u32,
        /// That device's uplink sequence of the message (READ: "up to").
        target_seq: u64,
    },
    /// `from_user` recalled a message it had sent from `target_device`.
    Recall {
        /// Device that sent the recalled message.
        target_device: u32,
        /// Its uplink sequence.
        target_seq: u64,
    },
}

/// Receipt statuses carried in the inbox. SENT is the server's ACK itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ReceiptStatus {
    /// A device of the receiver acknowledged the message.
    Delivered = 1,
    /// The receiver read the conversation up to the message.
    Read = 2,
}

/// Server → client: one entry of the inbox timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// Position in the receiving user's inbox; dense, starting at 1.
    pub seq: u64,
    /// Conversation.
    pub conv: u64,
    /// User that caused the entry.
    pub from_user: u64,
    /// Device of that user.
    pub from_device: u32,
    /// That device's uplink sequence for the operation: with the two fields
    /// above it forms the globally unique message id.
    pub from_seq: u64,
    /// Server wall clock when stored, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What the entry is.
    pub body: EntryBody,
}

/// Acknowledges sequences of the opposite flow: uplink seqs when sent by the
/// server, inbox seqs when sent by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Server → client only: at least one device of the receiver was online
    /// when these messages were stored, so they are being pushed now.
    pub receiver_online: bool,
    /// Every sequence `<= cumulative` is acknowledged (0: none yet).
    pub cumulative: u64,
    /// How long the ACK was held back before sending, in microseconds.
    pub delay_us: u64,
    /// Sequences above `cumulative` received but not yet released, as
    /// inclusive ranges, ascending. The first may start at `cumulative + 1`;
    /// each later one starts at least two past the previous end. On the wire
    /// each range is `gap, len` with `start = previous end + 1 + gap`
    /// (previous end = `cumulative` for the first) and `end = start + len`.
    pub ranges: Vec<(u64, u64)>,
}

/// Client → server: "this user has read `conv` up to this message of `peer`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Uplink sequence.
    pub seq: u64,
    /// Conversation.
    pub conv: u64,
    /// User whose messages were read; the READ receipt goes to them.
    pub peer: u64,
    /// Device of `peer` that sent the last message read.
    pub target_device: u32,
    /// That device's uplink sequence of the last message read.
    pub target_seq: u64,
}

/// Client → server: recall a message this device sent earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recall {
    /// Uplink sequence of this request.
    pub seq: u64,
    /// Receiver of the original message.
    pub to: u64,
    /// Conversation of the original message.
    pub conv: u64,
    /// Uplink sequence of the original message.
    pub target_seq: u64,
}

/// Client → server: send inbox entries with `seq > after`. Acknowledges every
/// entry `<= after` for this device (the next pull acknowledges the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    /// Echoed in `PAGE_END`.
    pub request_id: u64,
    /// Entries up to here are acknowledged and not sent.
    pub after: u64,
    /// Most entries wanted in this page (server may send fewer).
    pub max_entries: u64,
}

/// Server → client: closes the page answering a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageEnd {
    /// The pull's request id.
    pub request_id: u64,
    /// Highest sequence in the page (equals the pull's `after` when empty).
    pub last: u64,
    /// Nothing lies past `last`: the backlog is drained.
    pub end: bool,
    /// Inbox head when the page was cut.
    pub head: u64,
}

/// Client → server: ask for conversation counters past the device checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRequest {
    /// Echoed in the answer.
    pub request_id: u64,
    /// Continue after this conversation id (0: from the start).
    pub cursor: u64,
    /// Most conversations wanted.
    pub max_convs: u64,
}

/// A short view of one message inside a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// Inbox sequence of the message.
    pub seq: u64,
    /// Sender.
    pub from_user: u64,
    /// When stored.
    pub time_ms: u64,
    /// Application message type.
    pub msg_type: u64,
    /// First bytes of the payload (at most `MAX_PREVIEW`).
    pub head: Bytes,
}

/// Server → client: counters of one conversation past the device checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The request this answers.
    pub request_id: u64,
    /// Conversation.
    pub conv: u64,
    /// Unread messages.
    pub unread: u64,
    /// Inbox sequence of the oldest unread message.
    pub first_unread_seq: u64,
    /// When the oldest unread message was stored.
    pub first_unread_time_ms: u64,
    /// Inbox sequence of the newest message.
    pub last_seq: u64,
    /// The newest messages, oldest first.
    pub previews: Vec<Preview>,
}

/// Server → client: the summary answer is complete (or continues at `next_cursor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryEnd {
    /// The request this closes.
    pub request_id: u64,
    /// Conversation id to continue after, 0 when every conversation was sent.
    pub next_cursor: u64,
    /// Conversations with unread messages, in all.
    pub conv_count: u64,
    /// Unread messages, in all.
    pub total_unread: u64,
    /// Inbox head the counters were computed at.
    pub head: u64,
}

/// Either way: something went wrong. Codes are in [`crate::wire::ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    /// Stable numeric code.
    pub code: u64,
    /// Type of the frame that caused it (0 if none).
    pub frame_type: u8,
    /// Uplink sequence it refers to (0 if none). A non-zero `seq` marks that
    /// operation as refused: when an ACK later releases it, the client reports
    /// it as rejected rather than stored.
    pub seq: u64,
    /// Human-readable detail, for logs only.
    pub reason: String,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A run of padding bytes (their count).
    Padding(usize),
    /// See [`Login`].
    Login(Login),
    /// See [`LoginOk`].
    LoginOk(LoginOk),
    /// Liveness probe carrying a nonce to echo.
    Heartbeat(u64),
    /// Echo of a heartbeat nonce.
    HeartbeatAck(u64),
    /// Server → client: an address-validation cookie to echo in a COOKIE frame
    /// ahead of the next LOGIN (at most `MAX_COOKIE` bytes).
    Retry(Bytes),
    /// Client → server: the echoed cookie.
    Cookie(Bytes),
    /// Client → server: a sealed-session handshake message (at most
    /// `MAX_HANDSHAKE` bytes); see `crate::seal`.
    Handshake(Bytes),
    /// Server → client: the handshake's answer (at most `MAX_HANDSHAKE` bytes).
    HandshakeReply(Bytes),
    /// See [`Send`].
    Send(Send),
    /// See [`Deliver`].
    Deliver(Deliver),
    /// See [`Ack`].
    Ack(Ack),
    /// See [`Read`].
    Read(Read),
    /// See [`Recall`].
    Recall(Recall),
    /// See [`Pull`].
    Pull(Pull),
    /// See [`PageEnd`].
    PageEnd(PageEnd),
    /// See [`SummaryRequest`].
    SummaryRequest(SummaryRequest),
    /// See [`Summary`].
    Summary(Summary),
    /// See [`SummaryEnd`].
    SummaryEnd(SummaryEnd),
    /// Server → client: new entries were stored up to this inbox sequence and
    /// are not being pushed (the session is in pull mode). Unreliable hint.
    Notify(u64),
    /// The server ended the session; the reason is a [`KickReason`] code.
    Kick(u64),
    /// See [`ErrorFrame`].
    Error(ErrorFrame),
    /// The client ends its session.
    Logout,
    /// A skippable frame of type 0x40..=0x7f this implementation does not know.
    Extension {
        /// Its type byte.
        ty: u8,
        /// Its body.
        body: Bytes,
    },
}

/// Why a server ended a session (KICK reason codes, stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
