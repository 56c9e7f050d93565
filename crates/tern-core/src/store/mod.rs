//! The storage contract the broker relies on.
//!
//! Storage is a small synchronous trait. The broker stages writes into a
//! [`WriteBatch`]; a driver commits whole batches (one fsync per batch: group
//! commit) and reports back before anything in them is acknowledged.
//! `MemStore` serves the simulator; the daemon's RocksDB store is the real one.

mod conv;
mod entry;
mod group;
mod mem;

pub use conv::{ConvMeta, ConvRecord, UserConv};
pub use entry::{Origin, StoredEntry, SyncEntry, SyncItem};
pub use group::GroupMember;
pub use mem::MemStore;

use crate::conv::{ConvKey, ConvState};

/// What the store keeps about one user's inbox timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboxMeta {
    /// Chosen when the inbox is created; a new epoch means a reset store.
    pub epoch: u64,
    /// Highest sequence appended (0: empty).
    pub head: u64,
    /// Every sequence `<= trimmed` has been deleted.
    pub trimmed: u64,
    /// The user's conversation-list version: every change to one of the
    /// user's conversation states takes the next one.
    pub list_version: u64,
    /// Unread messages over all the user's conversations.
    pub total_unread: u64,
    /// Sequence of the newest entry only version 2 devices see (0: none):
    /// a version 1 device never resumes below it.
    pub last_private: u64,
}

/// What the store keeps about one device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceState {
    /// Inbox entries `<= checkpoint` were acknowledged by this device.
    pub checkpoint: u64,
    /// Uplink: every sequence `<= applied` from this device was processed.
    pub applied: u64,
    /// Uplink sequences that were rejected, with their error code, so that a
    /// retransmit gets the same answer. Bounded by the broker.
    pub rejected: Vec<(u64, u64)>,
    /// Wall-clock milliseconds of the device's last login.
    pub last_login_ms: u64,
    /// Protocol version of the device's last login (0: never logged in).
    pub version: u8,
}

/// One staged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Create or overwrite the inbox metadata of `user`.
    Meta {
        /// Inbox owner.
        user: u64,
        /// New metadata.
        meta: InboxMeta,
    },
    /// Append an entry to `user`'s inbox.
    Append {
        /// Inbox owner.
        user: u64,
        /// The entry.
        entry: StoredEntry,
    },
    /// Record the state of one device.
    Device {
        /// Owner.
        user: u64,
        /// Device id.
        device: u32,
        /// The whole new state.
        state: DeviceState,
    },
    /// Delete `user`'s inbox entries with `seq <= up_to`.
    Trim {
        /// Inbox owner.
        user: u64,
        /// Last sequence to delete.
        up_to: u64,
    },
    /// Store (or overwrite, for a recall) record `record.conv_seq` of `conv`.
    PutRecord {
        /// The conversation.
        conv: ConvKey,
        /// The record.
        record: ConvRecord,
    },
    /// Create or overwrite the metadata of `conv`.
    ConvMeta {
        /// The conversation.
        conv: ConvKey,
        /// New metadata.
        meta: ConvMeta,
    },
    /// Delete the records of `conv` with `conv_seq <= up_to` (retention).
    TrimConv {
        /// The conversation.
        conv: ConvKey,
        /// Last `conv_seq` to delete.
        up_to: u64,
    },
    /// Create or overwrite `user`'s state in `conv`, and move its row in the
    /// user's list index from version `prev_version` (0: none) to
    /// `state.version`.
    UserConv {
        /// The user.
        user: u64,
        /// The conversation.
        conv: ConvKey,
        /// The whole new state.
        state: ConvState,
        /// The state's version before this write (0 if it had none).
        prev_version: u64,
    },
    /// Create or overwrite `user`'s membership row of `group`.
    GroupMember {
        /// The group id.
        group: u64,
        /// The user.
        user: u64,
        /// The whole new row.
        member: GroupMember,
    },
    /// Record `conv_seq` of `conv` is deleted for `user` only.
    Hide {
        /// The user.
        user: u64,
        /// The conversation.
        conv: ConvKey,
        /// The record.
        conv_seq: u64,
    },
}

/// A set of writes applied atomically and durably, or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The writes, applied in order.
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Durable storage for sync timelines (inboxes), device state, and
/// conversations: storage timelines, and each user's state in each.
///
/// Reads see only committed batches. `commit` returns only once the batch is
/// durable (its write-ahead log fsynced); a batch is all-or-nothing across a
/// crash.
pub trait Store: Send + Sync + 'static {
    /// The store's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Inbox metadata of `user`, if the inbox exists.
    fn inbox_meta(&self, user: u64) -> Result<Option<InboxMeta>, Self::Error>;

    /// Every device registered for `user`, with its state.
    fn devices(&self, user: u64) -> Result<Vec<(u32, DeviceState)>, Self::Error>;

    /// Up to `max` entries of `user`'s inbox with `seq > after`, ascending.
    /// Message entries come with their record attached: a record recalled
    /// since comes as its recall marker, a record trimmed by history
    /// retention as a marker too.
    fn read_inbox(
        &self,
        user: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, Self::Error>;

    /// Metadata of `conv`'s storage timeline, if it has one.
    fn conv_meta(&self, conv: &ConvKey) -> Result<Option<ConvMeta>, Self::Error>;

    /// Up to `max` storage timelines whose key follows `after` (`None`: from
    /// the first), in the store's key order: the history retention walk.
    fn convs_after(
        &self,
        after: Option<&ConvKey>,
        max: usize,
    ) -> Result<Vec<(ConvKey, ConvMeta)>, Self::Error>;

    /// The newest `max` records of `conv` with `conv_seq < before` (`before`
    /// 0: no bound), ascending.
    fn read_conv(
        &self,
        conv: &ConvKey,
        before: u64,
        max: usize,
    ) -> Result<Vec<ConvRecord>, Self::Error>;

    /// `user`'s state in `conv`, if it has one.
    fn user_conv(&self, user: u64, conv: &ConvKey) -> Result<Option<ConvState>, Self::Error>;

    /// Up to `max` of `user`'s conversations whose state changed after list
    /// version `since`, by ascending version.
    fn user_convs_since(
        &self,
        user: u64,
        since: u64,
        max: usize,
    ) -> Result<Vec<UserConv>, Self::Error>;

    /// The records of `conv` in `low ..= high` deleted for `user`, ascending.
    fn hidden(
        &self,
        user: u64,
        conv: &ConvKey,
        low: u64,
        high: u64,
    ) -> Result<Vec<u64>, Self::Error>;

    /// Up to `max` membership rows of `group` (current and former members)
    /// with a user id above `after`, by ascending user id.
    fn group_members(
        &self,
        group: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, GroupMember)>, Self::Error>;

    /// Up to `max` groups above `after` in which `user` has a state (it is
    /// or was a member), by ascending group id: what a login catches up on
    /// in groups that do not write to every member's sync timeline.
    fn user_groups(&self, user: u64, after: u64, max: usize) -> Result<Vec<u64>, Self::Error>;

    /// Applies `batch` atomically and durably.
    fn commit(&self, batch: &WriteBatch) -> Result<(), Self::Error>;
}
