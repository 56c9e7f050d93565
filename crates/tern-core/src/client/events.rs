//! What a client connection reports to the application.

use super::{ConvList, HistoryPage, Summaries};
use crate::wire::{Entry, ErrorFrame, PageEnd};

/// A client-local handle for a submitted operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Events, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Logged in (again).
    LoggedIn {
        /// User.
        user: u64,
        /// Device.
        device: u32,
        /// Inbox epoch.
        epoch: u64,
        /// Inbox head.
        head: u64,
        /// Where delivery resumes.
        checkpoint: u64,
        /// The backlog is large: pull it (done automatically with `auto_pull`).
        pull_mode: bool,
    },
    /// The server's epoch or checkpoint differs from what the LOGIN said:
    /// local state about the inbox before `checkpoint` is stale (store reset
    /// or trimmed), or entries up to what was already handed come again
    /// (they are not handed twice).
    Resync {
        /// New epoch.
        epoch: u64,
        /// Delivery resumes after this sequence.
        checkpoint: u64,
        /// Another inbox than the one entries were handed from so far: its
        /// sequences start again.
        new_epoch: bool,
    },
    /// The session was lost (idle, unknown to the server, path dead); a new
    /// login is under way and pending operations will be replayed.
    Disconnected,
    /// Login refused for good (bad or expired token).
    LoginRefused {
        /// Error code.
        code: u64,
    },
    /// An operation submitted before login got its sequence (message id).
    Sequenced {
        /// The operation.
        op: OpId,
        /// Its uplink sequence.
        seq: u64,
    },
    /// The server's store was behind or ahead of this device: an operation was
    /// given a new sequence.
    Resequenced {
        /// The operation.
        op: OpId,
        /// Its old sequence.
        old: u64,
        /// Its new sequence.
        new: u64,
    },
    /// The server stored the operation durably (SENT). For messages whose
    /// receiver was offline this is the pseudo-ACK.
    Stored {
        /// The operation.
        op: OpId,
        /// Its uplink sequence.
        seq: u64,
        /// Hint: the receiver had a device online, so it is being pushed.
        receiver_online: bool,
    },
    /// The server refused the operation for good.
    Rejected {
        /// The operation.
        op: OpId,
        /// Its uplink sequence.
        seq: u64,
        /// Error code.
        code: u64,
    },
    /// The retry budget of this uplink sequence ran out; the session is being
    /// re-established and the operation will be replayed.
    SendFailed {
        /// Its uplink sequence.
        seq: u64,
    },
    /// A sync-timeline entry, in order, never twice in the life of this
    /// connection (re-logins included), nor at or below the checkpoint it
    /// started from. A version 1 session's DELIVER comes as the entry it is
    /// (`Entry::from_v1`).
    Entry(Entry),
    /// The answer to [`ClientConn::request_list`], every page collected.
    ///
    /// [`ClientConn::request_list`]: super::ClientConn::request_list
    ConvList(ConvList),
    /// A history page: asked for with [`ClientConn::request_history`], or
    /// fetched by the connection to fill a gap next to a live message.
    ///
    /// [`ClientConn::request_history`]: super::ClientConn::request_history
    History(HistoryPage),
    /// A page of a group's members, asked for with
    /// [`ClientConn::request_members`].
    ///
    /// [`ClientConn::request_members`]: super::ClientConn::request_members
    Members(super::MembersPage),
    /// Read counts of group records, asked for with
    /// [`ClientConn::request_read_counts`].
    ///
    /// [`ClientConn::request_read_counts`]: super::ClientConn::request_read_counts
    ReadCounts(crate::wire::ReadCounts),
    /// The server speaks only protocol version 1: the connection logs in
    /// with it; conversations, history and the list are unavailable, and
    /// version 2 operations not yet sent were refused.
    Downgraded,
    /// The server gave an address token: the connection echoes it at its
    /// next login. A driver with a state folder saves it, and passes it in
    /// [`ClientConfig::address_token`](super::ClientConfig) after a restart.
    AddressToken(bytes::Bytes),
    /// A pull page ended.
    PageEnd(PageEnd),
    /// The answer to [`ClientConn::request_summary`], every page collected.
    ///
    /// [`ClientConn::request_summary`]: super::ClientConn::request_summary
    Summaries(Summaries),
    /// New entries exist up to `head` (pull mode).
    Notify {
        /// Inbox head.
        head: u64,
    },
    /// The server ended the session (KICK reason code).
    Kicked {
        /// Reason code.
        code: u64,
    },
    /// An error from the server not tied to an operation.
    ServerError(ErrorFrame),
}
