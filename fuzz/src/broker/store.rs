//! The store the target commits through: the core's `MemStore`, with reads
//! that fail on demand (a disk that returns errors) and a record of every
//! entry ever made durable, to check what the broker delivers against.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use tern_core::conv::{ConvKey, ConvState};
use tern_core::store::{
    ConvMeta, ConvRecord, DeviceState, GroupMember, InboxMeta, MemStore, Store, StoredEntry, SyncEntry,
    UserConv, WriteBatch, WriteOp,
};

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

    fn conv_meta(&self, conv: &ConvKey) -> Result<Option<ConvMeta>, ReadFailed> {
        self.check()?;
        let Ok(m) = self.mem.conv_meta(conv);
        Ok(m)
    }

    fn convs_after(
        &self,
        after: Option<&ConvKey>,
        max: usize,
    ) -> Result<Vec<(ConvKey, ConvMeta)>, ReadFailed> {
        self.check()?;
        let Ok(c) = self.mem.convs_after(after, max);
        Ok(c)
    }

    fn read_conv(
        &self,
        conv: &ConvKey,
        before: u64,
        max: usize,
    ) -> Result<Vec<ConvRecord>, ReadFailed> {
        self.check()?;
        let Ok(r) = self.mem.read_conv(conv, before, max);
        Ok(r)
    }

    fn user_conv(&self, user: u64, conv: &ConvKey) -> Result<Option<ConvState>, ReadFailed> {
        self.check()?;
        let Ok(c) = self.mem.user_conv(user, conv);
        Ok(c)
    }

    fn user_convs_since(
        &self,
        user: u64,
        since: u64,
        max: usize,
    ) -> Result<Vec<UserConv>, ReadFailed> {
        self.check()?;
        let Ok(c) = self.mem.user_convs_since(user, since, max);
        Ok(c)
    }

    fn hidden(
        &self,
        user: u64,
        conv: &ConvKey,
        low: u64,
        high: u64,
    ) -> Result<Vec<u64>, ReadFailed> {
        self.check()?;
        let Ok(h) = self.mem.hidden(user, conv, low, high);
        Ok(h)
    }

    fn group_members(
        &self,
        group: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, GroupMember)>, ReadFailed> {
        self.check()?;
        let Ok(m) = self.mem.group_members(group, after, max);
        Ok(m)
    }

    fn user_groups(&self, user: u64, after: u64, max: usize) -> Result<Vec<u64>, ReadFailed> {
        self.check()?;
        let Ok(g) = self.mem.user_groups(user, after, max);
        Ok(g)
    }

    /// Applies the batch. The target calls this itself, as a driver would,
    /// only for batches it decided to make durable.
    fn commit(&self, batch: &WriteBatch) -> Result<(), ReadFailed> {
        let Ok(()) = self.mem.commit(batch);
        Ok(())
    }
}

/// Every inbox entry ever made durable, by (user, seq). Trims do
/// not remove them: an entry delivered from a cache after its trim was
/// still durable once.
#[derive(Default)]
pub struct Durable {
    entries: HashMap<(u64, u64), SyncEntry>,
}

impl Durable {
    /// Records the appends of a batch that was committed.
    pub fn record(&mut self, batch: &WriteBatch) {
        for op in &batch.ops {
            if let WriteOp::Append { user, entry } = op {
                self.entries.insert((*user, entry.seq), entry.entry.clone());
            }
        }
    }

    /// The entry durable for `user` at `seq`, if any.
    pub fn get(&self, user: u64, seq: u64) -> Option<&SyncEntry> {
        self.entries.get(&(user, seq))
    }
}
