//! An in-memory [`Store`] for the deterministic simulator and unit tests.
//! "Durable" here means "survives a simulated crash of the broker": the
//! simulator drops the broker and keeps this store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use super::{
    ConvMeta, ConvRecord, DeviceState, GroupMember, InboxMeta, Store, StoredEntry, SyncItem,
    UserConv, WriteBatch, WriteOp,
};
use crate::conv::{ConvKey, ConvState};

#[derive(Default)]
struct Inner {
    meta: HashMap<u64, InboxMeta>,
    devices: BTreeMap<(u64, u32), DeviceState>,
    inbox: BTreeMap<(u64, u64), StoredEntry>,
    conv_meta: BTreeMap<ConvKey, ConvMeta>,
    records: BTreeMap<(ConvKey, u64), ConvRecord>,
    user_conv: BTreeMap<(u64, ConvKey), ConvState>,
    list: BTreeMap<(u64, u64), ConvKey>,
    hidden: BTreeSet<(u64, ConvKey, u64)>,
    members: BTreeMap<(u64, u64), GroupMember>,
    commits: u64,
}

impl Inner {
    /// A message entry names its record; the current one is attached (a
    /// recall marker once recalled or trimmed), as a store that keeps only
    /// the reference does.
    fn resolve(&self, mut e: StoredEntry) -> StoredEntry {
        if let SyncItem::Message(kept) = &e.entry.item {
            if e.entry.conv_seq != 0 {
                let now = match self.records.get(&(e.entry.conv, e.entry.conv_seq)) {
                    Some(r) => r.clone(),
                    None => kept.recalled(),
                };
                e.entry.item = SyncItem::Message(Arc::new(now));
            }
        }
        e
    }
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
        let g = self.lock();
        Ok(g.inbox
            .range((user, start)..=(user, u64::MAX))
            .take(max)
            .map(|(_, e)| g.resolve(e.clone()))
            .collect())
    }

    fn conv_meta(&self, conv: &ConvKey) -> Result<Option<ConvMeta>, Infallible> {
        Ok(self.lock().conv_meta.get(conv).copied())
    }

    fn convs_after(
        &self,
        after: Option<&ConvKey>,
        max: usize,
    ) -> Result<Vec<(ConvKey, ConvMeta)>, Infallible> {
        use std::ops::Bound::{Excluded, Unbounded};
        let g = self.lock();
        let from = after.map_or(Unbounded, |k| Excluded(*k));
        Ok(g.conv_meta
            .range((from, Unbounded))
            .take(max)
            .map(|(k, m)| (*k, *m))
            .collect())
    }

    fn read_conv(
        &self,
        conv: &ConvKey,
        before: u64,
        max: usize,
    ) -> Result<Vec<ConvRecord>, Infallible> {
        let end = if before == 0 { u64::MAX } else { before - 1 };
        let g = self.lock();
        let mut out: Vec<ConvRecord> = g
            .records
            .range((*conv, 0)..=(*conv, end))
            .rev()
            .take(max)
            .map(|(_, r)| r.clone())
            .collect();
        out.reverse();
        Ok(out)
    }

    fn user_conv(&self, user: u64, conv: &ConvKey) -> Result<Option<ConvState>, Infallible> {
        Ok(self.lock().user_conv.get(&(user, *conv)).copied())
    }

    fn user_convs_since(
        &self,
        user: u64,
        since: u64,
        max: usize,
    ) -> Result<Vec<UserConv>, Infallible> {
        let Some(start) = since.checked_add(1) else {
            return Ok(Vec::new());
        };
        let g = self.lock();
        let mut seen = BTreeSet::new();
        Ok(g.list
            .range((user, start)..=(user, u64::MAX))
            .take(max)
            .filter_map(|(_, key)| {
                let state = g.user_conv.get(&(user, *key))?;
                seen.insert(*key).then_some(UserConv {
                    key: *key,
                    state: *state,
                })
            })
            .collect())
    }

    fn hidden(
        &self,
        user: u64,
        conv: &ConvKey,
        low: u64,
        high: u64,
    ) -> Result<Vec<u64>, Infallible> {
        if low > high {
            return Ok(Vec::new());
        }
        Ok(self
            .lock()
            .hidden
            .range((user, *conv, low)..=(user, *conv, high))
            .map(|(_, _, s)| *s)
            .collect())
    }

    fn user_groups(&self, user: u64, after: u64, max: usize) -> Result<Vec<u64>, Infallible> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(self
            .lock()
            .user_conv
            .range((user, ConvKey::Group(start))..=(user, ConvKey::Group(u64::MAX)))
            .take(max)
            .filter_map(|((_, k), _)| match k {
                ConvKey::Group(g) => Some(*g),
                _ => None,
            })
            .collect())
    }

    fn group_members(
        &self,
        group: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, GroupMember)>, Infallible> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(self
            .lock()
            .members
            .range((group, start)..=(group, u64::MAX))
            .take(max)
            .map(|((_, u), m)| (*u, *m))
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
                WriteOp::PutRecord { conv, record } => {
                    g.records.insert((*conv, record.conv_seq), record.clone());
                }
                WriteOp::ConvMeta { conv, meta } => {
                    g.conv_meta.insert(*conv, *meta);
                }
                WriteOp::TrimConv { conv, up_to } => {
                    let doomed: Vec<_> = g
                        .records
                        .range((*conv, 0)..=(*conv, *up_to))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in doomed {
                        g.records.remove(&k);
                    }
                }
                WriteOp::UserConv {
                    user,
                    conv,
                    state,
                    prev_version,
                } => {
                    if *prev_version != 0 {
                        g.list.remove(&(*user, *prev_version));
                    }
                    g.list.insert((*user, state.version), *conv);
                    g.user_conv.insert((*user, *conv), *state);
                }
                WriteOp::Hide {
                    user,
                    conv,
                    conv_seq,
                } => {
                    g.hidden.insert((*user, *conv, *conv_seq));
                }
                WriteOp::GroupMember {
                    group,
                    user,
                    member,
                } => {
                    g.members.insert((*group, *user), *member);
                }
            }
        }
        Ok(())
    }
}
