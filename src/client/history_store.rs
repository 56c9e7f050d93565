//! The local history of a device: every record of a conversation it
//! received (message entries with a `conv_seq`, history pages, gap fills),
//! the ranges of each storage timeline it holds, and the conversation list
//! as last fetched with its list version. Kept in the state folder
//! (`history_rows.rs` has the layout), or in memory, bounded, for a client
//! without one.
//!
//! The rule that makes a crash safe: a record and the held ranges that
//! claim it are written in one atomic batch, before the application is told
//! anything about them. So after any crash the held ranges never claim a
//! record that is not stored.
//!
//! How entries change stored records: a recall entry turns the record into
//! a recall marker; a "deleted" entry (from any device of the user) hides
//! one record, or removes the conversation's records up to its `conv_seq`
//! (the new floor). A record is never brought back: a message arriving
//! again (a replay after a restart) does not overwrite a recall marker or a
//! hidden record.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rocksdb::DB;
use tern_core::client::{ConvList, Held, HistoryPage};
use tern_core::wire::{
    ConvRef, DeleteScope, Entry, HistoryEnd, ListItem, Record, RecordBody, SyncBody,
};

use super::history_rows::{Batch, Op, Rows, Slot};
use super::outbox::OutboxError;

/// Memory-only clients: most records kept per conversation (the oldest go
/// first, and the held ranges shrink with them).
pub const MEMORY_RECORDS_PER_CONV: usize = 512;
/// Memory-only clients: most conversations with records kept (the least
/// recently changed one is forgotten whole). With full 1 KB payloads the
/// two bounds keep the local history under about 35 MB.
pub const MEMORY_CONVS: usize = 64;

/// A device's local history. [`Client`](super::Client) keeps one; a
/// stopped client's state folder can be opened with
/// [`HistoryStore::open`] to read it without connecting.
pub struct HistoryStore {
    rows: Rows,
    held: HashMap<ConvRef, Held>,
    items: HashMap<ConvRef, ListItem>,
    list_version: u64,
    /// Memory only: when each conversation last changed, for eviction.
    touched: HashMap<ConvRef, u64>,
    tick: u64,
}

impl HistoryStore {
    /// Opens the local history in the state folder `dir` of a client that
    /// is not running (RocksDB allows one opener at a time).
    pub fn open(dir: &Path) -> Result<HistoryStore, OutboxError> {
        Self::in_db(super::state::open(dir)?)
    }

    pub(super) fn in_db(db: Arc<DB>) -> Result<HistoryStore, OutboxError> {
        let loaded = Rows::load(&db)?;
        Ok(HistoryStore {
            rows: Rows::Rocks(db),
            held: loaded.held,
            items: loaded.items,
            list_version: loaded.list_version,
            touched: HashMap::new(),
            tick: 0,
        })
    }

    /// A local history in memory, bounded by [`MEMORY_RECORDS_PER_CONV`]
    /// and [`MEMORY_CONVS`].
    pub fn memory() -> HistoryStore {
        HistoryStore {
            rows: Rows::Memory(Default::default()),
            held: HashMap::new(),
            items: HashMap::new(),
            list_version: 0,
            touched: HashMap::new(),
            tick: 0,
        }
    }

    /// What is held of `conv`: ranges of records stored here, the floor,
    /// the newest record known to exist.
    pub fn held(&self, conv: &ConvRef) -> Option<&Held> {
        self.held.get(conv)
    }

    /// Every conversation something is known of, with what is held.
    pub fn all_held(&self) -> Vec<(ConvRef, Held)> {
        let mut v: Vec<_> = self.held.iter().map(|(c, h)| (*c, h.clone())).collect();
        v.sort_by_key(|(c, _)| *c);
        v
    }

    /// The list version the stored list is complete up to (0: none).
    pub fn list_version(&self) -> u64 {
        self.list_version
    }

    /// The conversation list as last fetched, newest change first.
    pub fn list(&self) -> Vec<ListItem> {
        let mut v: Vec<_> = self.items.values().cloned().collect();
        v.sort_by(|a, b| b.version.cmp(&a.version).then(a.conv.cmp(&b.conv)));
        v
    }

    /// The stored records of `conv` in `low..=high`, ascending, hidden
    /// ones left out.
    pub fn records(&self, conv: ConvRef, low: u64, high: u64) -> Result<Vec<Record>, OutboxError> {
        Ok(self
            .rows
            .range(conv, low, high)?
            .into_iter()
            .filter_map(|(_, s)| match s {
                Slot::Record(r) => Some(r),
                Slot::Hidden => None,
            })
            .collect())
    }

    /// The page `HISTORY(conv, before, max)` would return, from local
    /// records, when every `conv_seq` it covers is held; `None` otherwise.
    /// `before = 0` means past the newest record known (`last_seq`), which
    /// must then be known.
    pub fn page(
        &self,
        conv: ConvRef,
        before: u64,
        max: u64,
    ) -> Result<Option<HistoryPage>, OutboxError> {
        let Some((low, high)) = self.window(conv, before, max) else {
            return Ok(None);
        };
        let h = &self.held[&conv];
        if !h.ranges.missing(low, high).is_empty() {
            return Ok(None);
        }
        let records = self.records(conv, low, high)?;
        let end = HistoryEnd {
            request_id: 0,
            conv,
            low,
            high,
            floor: h.floor,
            count: records.len() as u64,
            last_seq: h.last_seq,
        };
        Ok(Some(HistoryPage {
            conv,
            records,
            end,
            gap_fill: false,
        }))
    }

    /// The `conv_seq` span a page `(before, max)` covers, as far as this
    /// device knows (`None`: the newest record is unknown).
    pub fn window(&self, conv: ConvRef, before: u64, max: u64) -> Option<(u64, u64)> {
        let h = self.held.get(&conv)?;
        if h.last_seq == 0 {
            return None;
        }
        let high = match before {
            0 => h.last_seq,
            b => (b - 1).min(h.last_seq),
        };
        let max = max.clamp(1, tern_core::client::HISTORY_PAGE);
        let low = (h.floor + 1).max(high.saturating_sub(max - 1)).max(1);
        Some((low, high))
    }

    fn held_mut(&mut self, conv: ConvRef) -> &mut Held {
        self.held.entry(conv).or_default()
    }

    /// Writes `batch` with the new held ranges of `conv` (computed on a
    /// copy, adopted once written: a failed write claims nothing).
    /// `focus`: the record stored (memory bound, see `bound_memory`).
    fn commit(
        &mut self,
        conv: ConvRef,
        held: Held,
        batch: Batch,
        focus: u64,
    ) -> Result<(), OutboxError> {
        self.commit_all(vec![(conv, held)], batch, focus)
    }

    fn commit_all(
        &mut self,
        helds: Vec<(ConvRef, Held)>,
        mut batch: Batch,
        focus: u64,
    ) -> Result<(), OutboxError> {
        batch.extend(helds.iter().map(|(c, h)| Op::Held(*c, h.clone())));
        self.rows.write(batch)?;
        for (conv, held) in helds {
            self.held.insert(conv, held);
            self.bound_memory(conv, focus)?;
        }
        Ok(())
    }

    /// Ops that move `held`'s floor to `floor` (records at or below go).
    fn clear(held: &mut Held, conv: ConvRef, floor: u64, batch: &mut Batch) {
        if floor > held.floor {
            held.floor = floor;
            held.ranges.remove_through(floor);
            batch.push(Op::ClearThrough(conv, floor));
        }
    }

    /// Puts `r` unless what is stored already wins: hidden beats
    /// everything, a recall marker beats a message.
    /// Stored without the request id it arrived under (a wire detail).
    fn put_record(&self, mut r: Record, batch: &mut Batch) -> Result<(), OutboxError> {
        r.request_id = 0;
        let keep = match self.rows.get(r.conv, r.conv_seq)? {
            Some(Slot::Hidden) => true,
            Some(Slot::Record(old)) => {
                matches!(old.body, RecordBody::Recalled { .. })
                    && matches!(r.body, RecordBody::Message { .. })
            }
            None => false,
        };
        if !keep {
            batch.push(Op::Put(r.conv, r.conv_seq, Slot::Record(r)));
        }
        Ok(())
    }

    /// Stores what a sync-timeline entry says about the history. Entries
    /// without a `conv_seq` (version 1) have no place in it.
    pub(super) fn apply_entry(&mut self, e: &Entry) -> Result<(), OutboxError> {
        let conv = e.conv;
        let mut held = self.held.get(&conv).cloned().unwrap_or_default();
        let mut batch = Batch::new();
        let body = match &e.body {
            SyncBody::Message { msg_type, payload } => Some(RecordBody::Message {
                msg_type: *msg_type,
                payload: payload.clone(),
            }),
            SyncBody::Member(event) => Some(RecordBody::Member(*event)),
            _ => None,
        };
        match &e.body {
            SyncBody::Message { .. } | SyncBody::Member(_) => {
                if e.conv_seq == 0 || e.conv_seq <= held.floor {
                    return Ok(());
                }
                let r = Record {
                    request_id: 0,
                    conv,
                    conv_seq: e.conv_seq,
                    topic: e.topic,
                    from_user: e.from_user,
                    from_device: e.from_device,
                    from_seq: e.from_seq,
                    time_ms: e.time_ms,
                    body: body.unwrap_or(RecordBody::Recalled { msg_type: 0 }),
                };
                self.put_record(r, &mut batch)?;
                held.ranges.insert(e.conv_seq, e.conv_seq);
                held.last_seq = held.last_seq.max(e.conv_seq);
            }
            SyncBody::Recall { .. } => {
                if e.conv_seq <= held.floor {
                    return Ok(());
                }
                // A record not held stays unheld: the marker comes with the
                // page that fills it.
                if let Some(Slot::Record(mut r)) = self.rows.get(conv, e.conv_seq)? {
                    if let RecordBody::Message { msg_type, .. } = r.body {
                        r.body = RecordBody::Recalled { msg_type };
                        batch.push(Op::Put(conv, e.conv_seq, Slot::Record(r)));
                    }
                }
            }
            SyncBody::Deleted {
                scope: DeleteScope::Message,
            } => {
                if e.conv_seq <= held.floor {
                    return Ok(());
                }
                batch.push(Op::Put(conv, e.conv_seq, Slot::Hidden));
            }
            SyncBody::Deleted {
                scope: DeleteScope::Conversation,
            } => {
                // 0: "up to the newest record" as the deleting device asked.
                let floor = match e.conv_seq {
                    0 => held.last_seq,
                    n => n,
                };
                Self::clear(&mut held, conv, floor, &mut batch);
            }
            SyncBody::Read | SyncBody::Receipt { .. } => return Ok(()),
        }
        if batch.is_empty() && self.held.get(&conv) == Some(&held) {
            return Ok(());
        }
        self.commit(conv, held, batch, e.conv_seq)
    }

    /// Stores a history page: its records, the records it leaves out
    /// (deleted for this user) as hidden, its span as held.
    pub(super) fn apply_page(&mut self, page: &HistoryPage) -> Result<(), OutboxError> {
        let (conv, end) = (page.conv, &page.end);
        let mut held = self.held.get(&conv).cloned().unwrap_or_default();
        let mut batch = Batch::new();
        Self::clear(&mut held, conv, end.floor, &mut batch);
        let low = end.low.max(held.floor + 1);
        let mut in_page = Vec::with_capacity(page.records.len());
        for r in &page.records {
            if r.conv == conv && r.conv_seq >= low && r.conv_seq <= end.high {
                in_page.push(r.conv_seq);
                self.put_record(r.clone(), &mut batch)?;
            }
        }
        if low <= end.high {
            for (seq, slot) in self.rows.range(conv, low, end.high)? {
                if matches!(slot, Slot::Record(_)) && !in_page.contains(&seq) {
                    batch.push(Op::Put(conv, seq, Slot::Hidden));
                }
            }
            held.ranges.insert(low, end.high);
        }
        held.last_seq = held.last_seq.max(end.last_seq);
        self.commit(conv, held, batch, end.high)
    }

    /// Stores a complete list answer fetched since `since`: items newer
    /// than the stored ones replace them, floors and newest records move,
    /// and the list version advances when the answer covers every change
    /// after the stored one (`since` at or below it).
    pub(super) fn apply_list(&mut self, since: u64, list: &ConvList) -> Result<(), OutboxError> {
        let mut batch = Batch::new();
        let mut helds = Vec::new();
        let mut items = Vec::new();
        for item in &list.items {
            let conv = item.conv;
            if self
                .items
                .get(&conv)
                .is_some_and(|old| old.version > item.version)
            {
                continue;
            }
            let mut held = self.held.get(&conv).cloned().unwrap_or_default();
            Self::clear(&mut held, conv, item.cleared_to, &mut batch);
            held.last_seq = held.last_seq.max(item.last_seq);
            let item = ListItem {
                request_id: 0,
                ..item.clone()
            };
            batch.push(Op::Item(item.clone()));
            helds.push((conv, held));
            items.push(item);
        }
        let advance = since <= self.list_version && list.list_version > self.list_version;
        if advance {
            batch.push(Op::ListVersion(list.list_version));
        }
        // One write: the version never runs ahead of the items it covers.
        self.commit_all(helds, batch, u64::MAX)?;
        for item in items {
            self.items.insert(item.conv, item);
        }
        if advance {
            self.list_version = list.list_version;
        }
        Ok(())
    }

    /// Memory only: past [`MEMORY_RECORDS_PER_CONV`] records of `conv`,
    /// forgets those farthest from `focus` (the record just stored: the
    /// oldest ones while new messages come, the newest ones while the
    /// application scrolls far up); past [`MEMORY_CONVS`] conversations,
    /// the least recently changed one whole.
    fn bound_memory(&mut self, conv: ConvRef, focus: u64) -> Result<(), OutboxError> {
        if matches!(self.rows, Rows::Rocks(_)) {
            return Ok(());
        }
        let n = self.rows.count(conv);
        if n == 0 {
            return Ok(());
        }
        self.tick += 1;
        self.touched.insert(conv, self.tick);
        if n > MEMORY_RECORDS_PER_CONV {
            let rows = self.rows.range(conv, 1, u64::MAX)?;
            let extra = n - MEMORY_RECORDS_PER_CONV;
            let (low, high) = if focus < rows[n / 2].0 {
                (rows[n - extra].0, u64::MAX)
            } else {
                (0, rows[extra - 1].0)
            };
            self.rows.write(vec![Op::Drop(conv, low, high)])?;
            let h = self.held_mut(conv);
            let kept = h.ranges.ranges().iter().filter_map(|&(a, b)| {
                let (a, b) = if low == 0 {
                    (a.max(high + 1), b)
                } else {
                    (a, b.min(low - 1))
                };
                (a <= b).then_some((a, b))
            });
            h.ranges = tern_core::conv::RangeSet::from_ranges(kept.collect::<Vec<_>>());
        }
        if self.touched.len() > MEMORY_CONVS {
            if let Some((&old, _)) = self.touched.iter().min_by_key(|(_, t)| **t) {
                self.touched.remove(&old);
                self.rows.write(vec![Op::Drop(old, 0, u64::MAX)])?;
                if let Some(h) = self.held.get_mut(&old) {
                    h.ranges = Default::default();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "history_store_tests.rs"]
mod tests;
