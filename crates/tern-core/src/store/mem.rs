//! An in-memory [`Store`] for the deterministic simulator and unit tests.
//! "Durable" here means "survives a simulated crash of the broker": the
//! simulator drops the broker and keeps this store.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Mutex;

use super::{DeviceState, InboxMeta, Store, StoredEntry, WriteBatch, WriteOp};

#[derive(Default)]
struct Inner {
    meta: HashMap<u64, InboxMeta>,
    devices: BTreeMap<(u64, u32), DeviceState>,
    inbox: BTreeMap<(u64, u64), StoredEntry>,
    commits: u64,
}

/// A store held in memory.
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of batches committed so far.
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another test thread panicked; the data is intact.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemStore {
    type Error = Infallible;

    fn inbox_meta(&self, user: u64) -> Result<Option<InboxMeta>, Infallible> {
        Ok(self.lock().meta.get(&user).copied())
    }

    fn devices(&self, user: u64) -> Result<Vec<(u32, DeviceState)>, Infallible> {
        Ok(self
            .lock()
            .devices
            .range((user, 0)..=(user, u32::MAX))
            .map(|((_, d), s)| (*d, s.clone()))
            .collect())
    }

    fn read_inbox(
        &self,
        user: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, Infallible> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(self
            .lock()
            .inbox
            .range((user, start)..=(user, u64::MAX))
            .take(max)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), Infallible> {
        let mut g = self.lock();
        g.commits += 1;
        for op in &batch.ops {
            match op {
                WriteOp::Meta { user, meta } => {
                    g.meta.insert(*user, *meta);
                }
                WriteOp::Append { user, entry } => {
                    g.inbox.insert((*user, entry.seq), entry.clone());
                }
                WriteOp::Device {
                    user,
                    device,
                    state,
                } => {
                    g.devices.insert((*user, *device), state.clone());
                }
                WriteOp::Trim { user, up_to } => {
                    let doomed: Vec<_> = g
                        .inbox
                        .range((*user, 0)..=(*user, *up_to))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in doomed {
                        g.inbox.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }
}
