//! The store the target commits through: the core's `MemStore`, with reads
//! that fail on demand (a disk that returns errors) and a record of every
//! entry ever made durable, to check what the broker delivers against.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tern_core::store::{DeviceState, InboxMeta, MemStore, Store, StoredEntry, WriteBatch, WriteOp};

/// The injected read failure.
#[derive(Debug)]
pub struct ReadFailed;

impl std::fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected read failure")
    }
}

impl std::error::Error for ReadFailed {}

/// `MemStore` whose reads can be made to fail.
#[derive(Default)]
pub struct FlakyStore {
    mem: MemStore,
    fail_reads: AtomicBool,
}

impl FlakyStore {
    /// Reads fail from now on (or work again).
    pub fn set_fail_reads(&self, fail: bool) {
        self.fail_reads.store(fail, Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), ReadFailed> {
        if self.fail_reads.load(Ordering::Relaxed) {
            Err(ReadFailed)
        } else {
            Ok(())
        }
    }

    /// What the store says `user`'s `device` has applied, durably.
    pub fn applied(&self, user: u64, device: u32) -> u64 {
        let Ok(devices) = self.mem.devices(user);
        devices
            .iter()
            .find(|(d, _)| *d == device)
            .map_or(0, |(_, s)| s.applied)
    }
}

impl Store for FlakyStore {
    type Error = ReadFailed;

    fn inbox_meta(&self, user: u64) -> Result<Option<InboxMeta>, ReadFailed> {
        self.check()?;
        let Ok(m) = self.mem.inbox_meta(user);
        Ok(m)
    }

    fn devices(&self, user: u64) -> Result<Vec<(u32, DeviceState)>, ReadFailed> {
        self.check()?;
        let Ok(d) = self.mem.devices(user);
        Ok(d)
    }

    fn read_inbox(
        &self,
        user: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, ReadFailed> {
        self.check()?;
        let Ok(e) = self.mem.read_inbox(user, after, max);
        Ok(e)
    }

    /// Applies the batch. The target calls this itself, as a driver would,
    /// only for batches it decided to make durable.
    fn commit(&self, batch: &WriteBatch) -> Result<(), ReadFailed> {
        let Ok(()) = self.mem.commit(batch);
        Ok(())
    }
}

/// Every inbox entry ever made durable, by (user, seq), as encoded. Trims do
/// not remove them: an entry delivered from a cache after its trim was
/// still durable once.
#[derive(Default)]
pub struct Durable {
    entries: HashMap<(u64, u64), Bytes>,
}

impl Durable {
    /// Records the appends of a batch that was committed.
    pub fn record(&mut self, batch: &WriteBatch) {
        for op in &batch.ops {
            if let WriteOp::Append { user, entry } = op {
                self.entries.insert((*user, entry.seq), entry.frame.clone());
            }
        }
    }

    /// The DELIVER frame durable for `user` at `seq`, if any.
    pub fn get(&self, user: u64, seq: u64) -> Option<&Bytes> {
        self.entries.get(&(user, seq))
    }
}
