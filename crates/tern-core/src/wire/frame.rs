//! Every frame of protocol v1, as plain values. Encoding and decoding live in
//! `frame_codec.rs`; the byte layout of each frame is in `proto-spec/frames.md`.
//! With the `arbitrary` feature each type derives `Arbitrary`, a bounded
//! field naming its generator in `arb.rs`, so generated frames are valid.

use bytes::Bytes;

use super::conversation::*;
use super::group::*;

#[cfg(feature = "arbitrary")]
use super::{arb, limits::*};

/// Client → server: authenticate this device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Login {
    /// Opaque signed token (see `proto-spec/auth.md`).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_TOKEN>))]
    pub token: Bytes,
    /// Inbox epoch the device last saw; 0 if it has none.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub epoch: u64,
    /// Highest inbox sequence the device has durably processed in that epoch.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub checkpoint: u64,
}

/// Server → client: login accepted. The session id is in this packet's header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct LoginOk {
    /// The authenticated user.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub user: u64,
    /// The authenticated device.
    pub device: u32,
    /// Current epoch of the user's inbox. A change means the store was reset.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub epoch: u64,
    /// Highest sequence in the inbox.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub head: u64,
    /// Where this device's checkpoint stands on the server.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub checkpoint: u64,
    /// Next uplink sequence the server expects from this device.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub next_send_seq: u64,
    /// Heartbeat interval the client should use, in milliseconds.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub heartbeat_ms: u64,
    /// Silence after which the server drops the session, in milliseconds.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub idle_timeout_ms: u64,
    /// Server wall clock, milliseconds since the Unix epoch.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub server_time_ms: u64,
}

/// Client → server: a message for another user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Send {
    /// Uplink sequence, per device, starting at 1.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// Receiving user.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub to: u64,
    /// Conversation the message belongs to.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub conv: u64,
    /// Application-defined message type (0 = UTF-8 text by convention).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub msg_type: u64,
    /// Application payload, at most `MAX_PAYLOAD` bytes.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_PAYLOAD>))]
    pub payload: Bytes,
}

/// What an inbox entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum EntryBody {
    /// A message from `from_*`.
    Message {
        /// Application-defined message type.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
        msg_type: u64,
        /// Application payload.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_PAYLOAD>))]
        payload: Bytes,
    },
    /// A receipt about a message the inbox owner sent from `target_device`.
    Receipt {
        /// DELIVERED or READ.
        status: ReceiptStatus,
        /// Device of the inbox owner that sent the message.
        target_device: u32,
        /// That device's uplink sequence of the message (READ: "up to").
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
        target_seq: u64,
    },
    /// `from_user` recalled a message it had sent from `target_device`.
    Recall {
        /// Device that sent the recalled message.
        target_device: u32,
        /// Its uplink sequence.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
        target_seq: u64,
    },
}

/// Receipt statuses carried in the inbox. SENT is the server's ACK itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum ReceiptStatus {
    /// A device of the receiver acknowledged the message.
    Delivered = 1,
    /// The receiver read the conversation up to the message.
    Read = 2,
}

/// Server → client: one entry of the inbox timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Deliver {
    /// Position in the receiving user's inbox; dense, starting at 1.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// Conversation.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub conv: u64,
    /// User that caused the entry.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub from_user: u64,
    /// Device of that user.
    pub from_device: u32,
    /// That device's uplink sequence for the operation: with the two fields
    /// above it forms the globally unique message id.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub from_seq: u64,
    /// Server wall clock when stored, milliseconds since the Unix epoch.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
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
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Read {
    /// Uplink sequence.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// Conversation.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub conv: u64,
    /// User whose messages were read; the READ receipt goes to them.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub peer: u64,
    /// Device of `peer` that sent the last message read.
    pub target_device: u32,
    /// That device's uplink sequence of the last message read.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub target_seq: u64,
}

/// Client → server: recall a message this device sent earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Recall {
    /// Uplink sequence of this request.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub seq: u64,
    /// Receiver of the original message.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub to: u64,
    /// Conversation of the original message.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub conv: u64,
    /// Uplink sequence of the original message.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::seq))]
    pub target_seq: u64,
}

/// Client → server: send inbox entries with `seq > after`. Acknowledges every
/// entry `<= after` for this device (the next pull acknowledges the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Pull {
    /// Echoed in `PAGE_END`.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// Entries up to here are acknowledged and not sent.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub after: u64,
    /// Most entries wanted in this page (server may send fewer).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub max_entries: u64,
}

/// Server → client: closes the page answering a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PageEnd {
    /// The pull's request id.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// Highest sequence in the page (equals the pull's `after` when empty).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub last: u64,
    /// Nothing lies past `last`: the backlog is drained.
    pub end: bool,
    /// Inbox head when the page was cut.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub head: u64,
}

/// Client → server: ask for conversation counters past the device checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SummaryRequest {
    /// Echoed in the answer.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// Continue after this conversation id (0: from the start).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub cursor: u64,
    /// Most conversations wanted.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub max_convs: u64,
}

/// A short view of one message inside a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Preview {
    /// Inbox sequence of the message.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub seq: u64,
    /// Sender.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub from_user: u64,
    /// When stored.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub time_ms: u64,
    /// Application message type.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub msg_type: u64,
    /// First bytes of the payload (at most `MAX_PREVIEW`).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_PREVIEW>))]
    pub head: Bytes,
}

/// Server → client: counters of one conversation past the device checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Summary {
    /// The request this answers.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// Conversation.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub conv: u64,
    /// Unread messages.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub unread: u64,
    /// Inbox sequence of the oldest unread message.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub first_unread_seq: u64,
    /// When the oldest unread message was stored.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub first_unread_time_ms: u64,
    /// Inbox sequence of the newest message.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub last_seq: u64,
    /// The newest messages, oldest first.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::previews))]
    pub previews: Vec<Preview>,
}

/// Server → client: the summary answer is complete (or continues at `next_cursor`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SummaryEnd {
    /// The request this closes.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub request_id: u64,
    /// Conversation id to continue after, 0 when every conversation was sent.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub next_cursor: u64,
    /// Conversations with unread messages, in all.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub conv_count: u64,
    /// Unread messages, in all.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub total_unread: u64,
    /// Inbox head the counters were computed at.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub head: u64,
}

/// Either way: something went wrong. Codes are in [`crate::wire::ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ErrorFrame {
    /// Stable numeric code.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub code: u64,
    /// Type of the frame that caused it (0 if none).
    pub frame_type: u8,
    /// Uplink sequence it refers to (0 if none). A non-zero `seq` marks that
    /// operation as refused: when an ACK later releases it, the client reports
    /// it as rejected rather than stored.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))]
    pub seq: u64,
    /// Human-readable detail, for logs only.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::reason))]
    pub reason: String,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Frame {
    /// A run of padding bytes (their count).
    Padding(#[cfg_attr(feature = "arbitrary", arbitrary(with = arb::padding))] usize),
    /// See [`Login`].
    Login(Login),
    /// See [`LoginOk`].
    LoginOk(LoginOk),
    /// Liveness probe carrying a nonce to echo.
    Heartbeat(#[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))] u64),
    /// Echo of a heartbeat nonce.
    HeartbeatAck(#[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))] u64),
    /// Server → client: an address-validation cookie to echo in a COOKIE frame
    /// ahead of the next LOGIN (at most `MAX_COOKIE` bytes).
    Retry(#[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_COOKIE>))] Bytes),
    /// Client → server: the echoed cookie, or an address token.
    Cookie(#[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_COOKIE>))] Bytes),
    /// Server → client, extension type `0x40`: an address token the client
    /// echoes in the COOKIE frame of its next login, so that a returning
    /// client from the same address skips the RETRY round trip (at most
    /// `MAX_COOKIE` bytes).
    AddressToken(
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_COOKIE>))] Bytes,
    ),
    /// Client → server: a sealed-session handshake message (at most
    /// `MAX_HANDSHAKE` bytes); see `crate::seal`.
    Handshake(
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_HANDSHAKE>))] Bytes,
    ),
    /// Server → client: the handshake's answer (at most `MAX_HANDSHAKE` bytes).
    HandshakeReply(
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_HANDSHAKE>))] Bytes,
    ),
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
    Notify(#[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))] u64),
    /// The server ended the session; the reason is a [`KickReason`] code.
    Kick(#[cfg_attr(feature = "arbitrary", arbitrary(with = arb::varint))] u64),
    /// See [`ErrorFrame`].
    Error(ErrorFrame),
    /// The client ends its session.
    Logout,
    /// Version 2: see [`Post`].
    Post(Post),
    /// Version 2: see [`MarkRead`].
    MarkRead(MarkRead),
    /// Version 2: see [`Retract`].
    Retract(Retract),
    /// Version 2: see [`Delete`].
    Delete(Delete),
    /// Version 2: see [`Entry`].
    Entry(Entry),
    /// Version 2: see [`ListRequest`].
    List(ListRequest),
    /// Version 2: see [`ListItem`].
    ListItem(ListItem),
    /// Version 2: see [`ListEnd`].
    ListEnd(ListEnd),
    /// Version 2: see [`HistoryRequest`].
    History(HistoryRequest),
    /// Version 2: see [`Record`].
    Record(Record),
    /// Version 2: see [`HistoryEnd`].
    HistoryEnd(HistoryEnd),
    /// Version 2: see [`GroupOp`].
    GroupOp(GroupOp),
    /// Version 2: see [`MembersRequest`].
    Members(MembersRequest),
    /// Version 2: see [`Member`].
    Member(Member),
    /// Version 2: see [`MembersEnd`].
    MembersEnd(MembersEnd),
    /// Version 2: see [`ReadCountsRequest`].
    ReadCountsRequest(ReadCountsRequest),
    /// Version 2: see [`ReadCounts`].
    ReadCounts(ReadCounts),
    /// A skippable frame of type 0x40..=0x7f this implementation does not know.
    Extension {
        /// Its type byte.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::extension_type))]
        ty: u8,
        /// Its body.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arb::bytes::<MAX_EXTENSION>))]
        body: Bytes,
    },
}

impl Frame {
    /// The lowest protocol version that defines this frame.
    pub fn min_version(&self) -> u8 {
        match self {
            Frame::Post(_)
            | Frame::MarkRead(_)
            | Frame::Retract(_)
            | Frame::Delete(_)
            | Frame::Entry(_)
            | Frame::List(_)
            | Frame::ListItem(_)
            | Frame::ListEnd(_)
            | Frame::History(_)
            | Frame::Record(_)
            | Frame::HistoryEnd(_)
            | Frame::GroupOp(_)
            | Frame::Members(_)
            | Frame::Member(_)
            | Frame::MembersEnd(_)
            | Frame::ReadCountsRequest(_)
            | Frame::ReadCounts(_) => super::VERSION_2,
            _ => super::VERSION,
        }
    }
}
