//! Durable storage: RocksDB behind the core's `Store` trait.
//!
//! - [`RocksStore`] implements [`tern_core::store::Store`] on RocksDB. Each
//!   [`WriteBatch`] is one RocksDB write batch written with a synchronous WAL
//!   fsync: atomic and durable when `commit` returns. It behaves exactly like
//!   the core's in-memory [`MemStore`] (an equivalence test checks this).
//! - [`GroupCommitter`] funnels batches from many sessions through one
//!   thread that merges whatever is queued into a single commit, so one
//!   fsync covers many batches.
//! - [`keys`] documents and implements the on-disk layout: column families,
//!   big-endian keys, versioned value encodings ([`entry_values`] for inbox
//!   entries, [`conv_values`] for conversations, [`group_values`] for group
//!   membership); [`format`] checks the data
//!   folder's format and upgrades older ones.

mod commit_queue;
pub mod conv_values;
pub mod entry_values;
pub mod format;
pub mod group_commit;
pub mod group_values;
pub mod keys;
pub mod rocks;
mod rocks_read;
pub mod run_rows;
mod run_spaces;
mod run_writer;
pub mod value;
mod wal_dir;

pub use group_commit::{
    Closed, CommitError, CommitHandle, CommitResult, Completion, GroupCommitConfig,
    GroupCommitStats, GroupCommitter, TrySubmitError,
};
pub use keys::DecodeError;
pub use rocks::{RocksOptions, RocksStore, StoreError};
pub use tern_core::store::{
    DeviceState, InboxMeta, MemStore, Store, StoredEntry, WriteBatch, WriteOp,
};
