//! Reading storage-timeline records while applying operations. A record
//! staged or in flight is not in the store yet, but the operations that
//! follow it must see it (a recall of a message posted a moment ago, the
//! unread count after a read): those are kept in memory until durable and
//! win over the store's copy. History pages read the store alone: what they
//! return is durable.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Broker, FastMap};
use crate::conv::ConvKey;
use crate::store::{ConvRecord, Store};

/// Records searched for a version 1 RECALL or READ, which name a message
/// by its id rather than its `conv_seq` (`RECALL_SCAN` in the spec).
pub const RECALL_SCAN: usize = 4096;

/// Most records read to recount unread messages after a partial read.
const COUNT_SCAN: usize = 100_000;

/// Records written but not yet durable, by conversation and `conv_seq`:
/// a hash lookup by conversation, then a small ordered map (one ordered
/// map keyed by both took a sixth of the daemon loop under `tern-bench
/// store`, in `ConvKey` comparisons).
#[derive(Default)]
pub(crate) struct Pending(FastMap<ConvKey, BTreeMap<u64, Arc<ConvRecord>>>);

impl Pending {
    /// The pending version of record `seq` of `conv`.
    pub fn get(&self, conv: &ConvKey, seq: u64) -> Option<&ConvRecord> {
        self.0.get(conv)?.get(&seq).map(|r| &**r)
    }

    /// Stages `record` of `conv`, replacing an older version of it.
    pub fn insert(&mut self, conv: ConvKey, record: Arc<ConvRecord>) {
        self.0
            .entry(conv)
            .or_default()
            .insert(record.conv_seq, record);
    }

    /// The pending records of `conv` in `low ..= high`, ascending.
    pub fn range(
        &self,
        conv: &ConvKey,
        low: u64,
        high: u64,
    ) -> impl Iterator<Item = (&u64, &ConvRecord)> {
        self.0
            .get(conv)
            .filter(|_| low <= high)
            .into_iter()
            .flat_map(move |m| m.range(low..=high))
            .map(|(seq, r)| (seq, &**r))
    }

    /// `record` of `conv` is durable: forget it, unless a newer version of
    /// it (a recall) was staged since (another allocation).
    pub fn settle(&mut self, conv: &ConvKey, record: &Arc<ConvRecord>) {
        let Some(m) = self.0.get_mut(conv) else {
            return;
        };
        if m.get(&record.conv_seq)
            .is_some_and(|r| Arc::ptr_eq(r, record))
        {
            m.remove(&record.conv_seq);
            if m.is_empty() {
                self.0.remove(conv);
            }
        }
    }
}

impl<S: Store> Broker<S> {
    /// Record `conv_seq` of `key`, pending ones first.
    pub(super) fn record_at(
        &mut self,
        key: ConvKey,
        conv_seq: u64,
    ) -> Result<Option<ConvRecord>, String> {
        if let Some(r) = self.convs.pending.get(&key, conv_seq) {
            return Ok(Some(r.clone()));
        }
        let got = self
            .store
            .read_conv(&key, conv_seq.saturating_add(1), 1)
            .map_err(|e| e.to_string())?;
        Ok(got.into_iter().find(|r| r.conv_seq == conv_seq))
    }

    /// The records of `key` in `after+1 ..= last`, ascending (at most
    /// `COUNT_SCAN` of the newest).
    pub(super) fn records_between(
        &mut self,
        key: ConvKey,
        after: u64,
        last: u64,
    ) -> Result<Vec<ConvRecord>, String> {
        if after >= last {
            return Ok(Vec::new());
        }
        let want = ((last - after) as usize).min(COUNT_SCAN);
        let stored = self
            .store
            .read_conv(&key, last.saturating_add(1), want)
            .map_err(|e| e.to_string())?;
        let mut by_seq: BTreeMap<u64, ConvRecord> = stored
            .into_iter()
            .filter(|r| r.conv_seq > after)
            .map(|r| (r.conv_seq, r))
            .collect();
        for (seq, r) in self.convs.pending.range(&key, after + 1, last) {
            by_seq.insert(*seq, r.clone());
        }
        Ok(by_seq.into_values().collect())
    }

    /// The message `(from_user, from_device, from_seq)` among the newest
    /// `RECALL_SCAN` records of `key`.
    pub(super) fn find_message(
        &mut self,
        key: ConvKey,
        from_user: u64,
        from_device: u32,
        from_seq: u64,
    ) -> Result<Option<ConvRecord>, String> {
        let head = self.timeline_mut(key)?.meta.head;
        let low = head.saturating_sub(RECALL_SCAN as u64);
        let records = self.records_between(key, low, head)?;
        Ok(records.into_iter().rev().find(|r| {
            r.from_user == from_user && r.from_device == from_device && r.from_seq == from_seq
        }))
    }
}
