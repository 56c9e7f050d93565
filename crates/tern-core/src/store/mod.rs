//! The storage contract the broker relies on.
//!
//! Storage is a small synchronous trait. The broker stages writes into a
//! [`WriteBatch`]; a driver commits whole batches (one fsync per batch: group
//! commit) and reports back before anything in them is acknowledged.
//! `MemStore` serves the simulator; the daemon's RocksDB store is the real one.

mod entry;
mod mem;

pub use entry::{EntryMeta, Origin, StoredEntry};
pub use mem::MemStore;

/// What the store keeps about one user's inbox timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboxMeta {
    /// Chosen when the inbox is created; a new epoch means a reset store.
    pub epoch: u64,
    /// Highest sequence appended (0: empty).
    pub head: u64,
    /// Every sequence `<= trimmed` has been deleted.
    pub trimmed: u64,
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

/// Durable storage for inboxes and device state.
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

    /// Up to `max` entries of `user`'s inbox with `seq > after`, ascending,
    /// each with its [`EntryMeta`] (a store that keeps only the frame
    /// decodes it with [`StoredEntry::new`]).
    fn read_inbox(
        &self,
        user: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, Self::Error>;

    /// Applies `batch` atomically and durably.
    fn commit(&self, batch: &WriteBatch) -> Result<(), Self::Error>;
}
