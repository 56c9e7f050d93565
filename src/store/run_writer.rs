//! Writes to a column family of runs (`run_rows.rs`): the sync
//! timelines (an owner is a user) and the storage timelines (an owner is a
//! conversation), each a sequence of values per owner, kept as rows of
//! consecutive values that never overlap.
//!
//! The writer keeps an index of each owner's rows (first and last seq),
//! built by one scan of the owner's key range the first time an owner is
//! touched after opening, and kept exact by every commit since. With it:
//! - values past an owner's last row are grouped into new rows, with no
//!   read;
//! - a value at or below it (a recalled record replacing the original; the
//!   store's contract allows any overwrite) opens the row that covers its
//!   seq: one point read, and the row is rewritten with the new value;
//! - a trim deletes the rows wholly at or below its bound by key, and
//!   rewrites the row that straddles it from its first surviving entry.
//!
//! Trims write point deletions, never range tombstones: every iterator and
//! point read of RocksDB's memtable fragments all of its range tombstones
//! first, so with one per trim the inbox's reads grew with the write rate
//! (half of the committer's time in `FragmentTombstones`, measured with
//! `perf` on `tern-bench relay`).
//!
//! Every operation of the batch is applied in order to an in-memory view;
//! the view is written at the end, deletions before rows, so a value put
//! after a trim of its seq survives, as in `MemStore`. The index takes the
//! batch's changes only once the batch is durable.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use rocksdb::{ColumnFamily, ReadOptions, DB};

use super::rocks::StoreError;
use super::run_rows::{decode_row_at, encode_row, row_entries, split_rows};

/// Rows, and owners, the index holds before it starts over (it is rebuilt
/// owner by owner from the database, one scan each): about 16 bytes a row
/// and 64 an owner, so at most a few tens of megabytes.
const MAX_INDEXED_ROWS: usize = 1 << 20;
const MAX_INDEXED_OWNERS: usize = 1 << 16;

/// A column family of runs: how its keys name an owner and a seq.
pub(super) trait RunSpace {
    /// Whose sequence a row belongs to.
    type Owner: Copy + Ord + std::hash::Hash;
    /// The column family's name.
    const CF: &'static str;
    /// The key of the row starting at `seq`.
    fn key(owner: &Self::Owner, seq: u64) -> Vec<u8>;
    /// Exclusive upper bound of the owner's keys (`None`: the end).
    fn end(owner: &Self::Owner) -> Option<Vec<u8>>;
    /// The seq of a key of `owner`, `None` for another owner's key.
    fn seq_of(owner: &Self::Owner, key: &[u8]) -> Option<u64>;
}

/// One owner's rows on disk: (first seq, last seq), sorted, disjoint. A
/// sorted vector: most owners have a row or two, and rows are added at the
/// end and trimmed from the front.
#[derive(Default)]
struct Rows(Vec<(u64, u64)>);

impl Rows {
    fn len(&self) -> usize {
        self.0.len()
    }

    /// The last row starting at or below `seq`.
    fn at_or_below(&self, seq: u64) -> Option<(u64, u64)> {
        let i = self.0.partition_point(|(first, _)| *first <= seq);
        i.checked_sub(1).map(|i| self.0[i])
    }

    fn remove(&mut self, first: u64) {
        if let Ok(i) = self.0.binary_search_by_key(&first, |(f, _)| *f) {
            self.0.remove(i);
        }
    }

    /// Removes the rows starting at or below `seq`; returns their firsts.
    fn drain_through(&mut self, seq: u64) -> Vec<u64> {
        let n = self.0.partition_point(|(first, _)| *first <= seq);
        self.0.drain(..n).map(|(first, _)| first).collect()
    }

    fn insert(&mut self, first: u64, last: u64) {
        match self.0.last() {
            Some((f, _)) if *f >= first => {
                let i = self.0.partition_point(|(f, _)| *f < first);
                self.0.insert(i, (first, last));
            }
            _ => self.0.push((first, last)),
        }
    }
}

/// The index of rows, per owner.
pub(super) struct RowIndex<S: RunSpace> {
    users: HashMap<S::Owner, Rows>,
    rows: usize,
}

impl<S: RunSpace> Default for RowIndex<S> {
    fn default() -> Self {
        RowIndex {
            users: HashMap::new(),
            rows: 0,
        }
    }
}

/// One owner's part of the batch.
struct UserView {
    /// The owner's rows as the batch changes them.
    rows: Rows,
    /// Rows of the database to delete (wholly trimmed, or rewritten).
    deleted: Vec<u64>,
    /// The entries to write (loaded from opened rows, and appended): seq
    /// and where its encoding is in the arena, sorted by seq, one per seq.
    entries: Vec<(u64, Range<usize>)>,
}

impl UserView {
    /// Puts `seq`, replacing an entry of the same seq.
    fn put(&mut self, seq: u64, at: Range<usize>) {
        if self.entries.last().is_none_or(|(last, _)| *last < seq) {
            self.entries.push((seq, at)); // the broker's only case
            return;
        }
        match self.entries.binary_search_by_key(&seq, |(s, _)| *s) {
            Ok(i) => self.entries[i].1 = at,
            Err(i) => self.entries.insert(i, (seq, at)),
        }
    }

    /// Puts `seq` unless the batch holds it already.
    fn put_if_absent(&mut self, seq: u64, at: Range<usize>) {
        if let Err(i) = self.entries.binary_search_by_key(&seq, |(s, _)| *s) {
            self.entries.insert(i, (seq, at));
        }
    }
}

/// The writes of one commit to one column family of runs.
pub(super) struct RunWriter<'a, S: RunSpace> {
    db: &'a DB,
    cf: &'a ColumnFamily,
    index: &'a mut RowIndex<S>,
    users: BTreeMap<S::Owner, UserView>,
    /// The encoded values of the batch.
    arena: Vec<u8>,
}

/// What a durable batch changes in the index.
pub(super) struct Written<S: RunSpace>(Vec<(S::Owner, Rows)>);

impl<'a, S: RunSpace> RunWriter<'a, S> {
    pub(super) fn new(db: &'a DB, cf: &'a ColumnFamily, index: &'a mut RowIndex<S>) -> Self {
        RunWriter {
            db,
            cf,
            index,
            users: BTreeMap::new(),
            arena: Vec::with_capacity(64 << 10),
        }
    }

    /// Puts value `seq` of `user`, which `encode` appends to the buffer it
    /// is given.
    pub(super) fn put(
        &mut self,
        user: S::Owner,
        seq: u64,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), StoreError> {
        self.view(user)?;
        self.open_row_covering(user, seq)?;
        let start = self.arena.len();
        encode(&mut self.arena);
        let at = start..self.arena.len();
        self.users.get_mut(&user).expect("made above").put(seq, at);
        Ok(())
    }

    /// Deletes `user`'s values up to `up_to`.
    pub(super) fn trim(&mut self, user: S::Owner, up_to: u64) -> Result<(), StoreError> {
        self.view(user)?;
        // The row straddling the bound is rewritten from its first
        // surviving entry.
        if let Some(next) = up_to.checked_add(1) {
            self.open_row_covering(user, next)?;
        }
        let v = self.users.get_mut(&user).expect("made above");
        let gone = v.rows.drain_through(up_to);
        v.deleted.extend(gone);
        let gone = v.entries.partition_point(|(s, _)| *s <= up_to);
        v.entries.drain(..gone);
        Ok(())
    }

    /// Writes the view into `wb`: deletions, then rows. Returns what the
    /// index takes once the batch is durable.
    pub(super) fn finish(self, wb: &mut rocksdb::WriteBatch) -> Written<S> {
        let mut written = Vec::with_capacity(self.users.len());
        for (user, mut v) in self.users {
            for first in &v.deleted {
                wb.delete_cf(self.cf, S::key(&user, *first));
            }
            for (first, last) in write_runs::<S>(wb, self.cf, &user, &v.entries, &self.arena) {
                v.rows.insert(first, last);
            }
            written.push((user, v.rows));
        }
        Written(written)
    }

    /// The index after a durable batch.
    pub(super) fn remember(index: &mut RowIndex<S>, written: Written<S>) {
        for (user, rows) in written.0 {
            index.rows += rows.len();
            if let Some(old) = index.users.insert(user, rows) {
                index.rows -= old.len();
            }
        }
        if index.rows > MAX_INDEXED_ROWS || index.users.len() > MAX_INDEXED_OWNERS {
            *index = RowIndex::default();
        }
    }

    /// The user's view, its rows taken from the index (a batch that fails
    /// leaves the user out of it, to be scanned again) or one scan.
    fn view(&mut self, user: S::Owner) -> Result<(), StoreError> {
        if self.users.contains_key(&user) {
            return Ok(());
        }
        let rows = match self.index.users.remove(&user) {
            Some(rows) => {
                self.index.rows -= rows.len();
                rows
            }
            None => self.scan_rows(&user)?,
        };
        self.users.insert(
            user,
            UserView {
                rows,
                deleted: Vec::new(),
                entries: Vec::new(),
            },
        );
        Ok(())
    }

    /// Loads the row holding `seq`, if there is one, into the entries (an
    /// entry this batch wrote already wins over the row's), and marks the
    /// row for rewriting.
    fn open_row_covering(&mut self, user: S::Owner, seq: u64) -> Result<(), StoreError> {
        let v = self.users.get_mut(&user).expect("view made first");
        let Some((first, last)) = v.rows.at_or_below(seq) else {
            return Ok(());
        };
        if last < seq {
            return Ok(());
        }
        v.rows.remove(first);
        v.deleted.push(first);
        let key = S::key(&user, first);
        let corrupt = |source| StoreError::Corrupt {
            cf: S::CF,
            key: key.clone(),
            source,
        };
        let Some(value) = self.db.get_pinned_cf(self.cf, &key)? else {
            return Err(corrupt(super::value::DecodeError::Empty));
        };
        for (seq, e) in decode_row_at(first, &value).map_err(corrupt)? {
            let start = self.arena.len();
            self.arena.extend_from_slice(e);
            v.put_if_absent(seq, start..self.arena.len());
        }
        Ok(())
    }

    /// Every row of `user` in the database.
    fn scan_rows(&self, user: &S::Owner) -> Result<Rows, StoreError> {
        let mut ro = ReadOptions::default();
        if let Some(end) = S::end(user) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf, ro);
        it.seek(S::key(user, 0));
        let mut rows = Rows::default();
        while let Some((k, v)) = it.item() {
            let corrupt = |source| StoreError::Corrupt {
                cf: S::CF,
                key: k.to_vec(),
                source,
            };
            let Some(first) = S::seq_of(user, k) else {
                break;
            };
            let n = row_entries(v).map_err(corrupt)?;
            rows.insert(first, first.saturating_add(n - 1));
            it.next();
        }
        it.status()?;
        Ok(rows)
    }
}

/// Puts `entries` as rows of consecutive seqs, each within the row bounds;
/// returns the rows written (first and last seq).
fn write_runs<S: RunSpace>(
    wb: &mut rocksdb::WriteBatch,
    cf: &ColumnFamily,
    user: &S::Owner,
    entries: &[(u64, Range<usize>)],
    arena: &[u8],
) -> Vec<(u64, u64)> {
    let mut written = Vec::new();
    let mut run: Vec<(u64, &[u8])> = Vec::new();
    let mut flush = |run: &mut Vec<(u64, &[u8])>| {
        let lens: Vec<usize> = run.iter().map(|(_, e)| e.len()).collect();
        for r in split_rows(&lens) {
            let parts: Vec<&[u8]> = run[r.clone()].iter().map(|(_, e)| *e).collect();
            let (first, last) = (run[r.start].0, run[r.end - 1].0);
            wb.put_cf(cf, S::key(user, first), encode_row(&parts));
            written.push((first, last));
        }
        run.clear();
    };
    for (seq, at) in entries {
        if run
            .last()
            .is_some_and(|(last, _)| last.checked_add(1) != Some(*seq))
        {
            flush(&mut run);
        }
        run.push((*seq, &arena[at.clone()]));
    }
    if !run.is_empty() {
        flush(&mut run);
    }
    written
}
