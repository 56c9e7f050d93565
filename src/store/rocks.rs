//! [`RocksStore`]: the durable [`Store`], on RocksDB.
//!
//! Every [`WriteBatch`] becomes exactly one RocksDB write batch, written with
//! `sync = true`: RocksDB appends it to its write-ahead log as one record and
//! fsyncs the log before `commit` returns. A batch is therefore atomic (the
//! log record is checksummed; a torn tail is discarded on recovery) and
//! durable once `commit` returns. Use a
//! [`GroupCommitter`](super::GroupCommitter) to share one fsync among many
//! small batches.
//!
//! Reads go straight to the database: a successful write is visible to every
//! read that starts after it, and nothing is visible before its batch is
//! written (RocksDB publishes a batch's sequence number only once all of it
//! is in the memtables).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, ReadOptions,
    WriteOptions, DB,
};
use tern_core::store::{DeviceState, InboxMeta, Store, StoredEntry, WriteBatch, WriteOp};

use super::keys::{self, DecodeError, CF_DEVICE, CF_INBOX, CF_META, COLUMN_FAMILIES};

/// Errors of the RocksDB store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error (I/O, corruption detected by RocksDB, ...).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored key or value could not be decoded.
    #[error("corrupt record in column family {cf:?} at key {key:02x?}: {source}")]
    Corrupt {
        /// Column family of the record.
        cf: &'static str,
        /// Its key.
        key: Vec<u8>,
        /// What is wrong with it.
        #[source]
        source: DecodeError,
    },
    /// A column family is missing from an opened database.
    #[error("column family {0:?} is missing")]
    MissingColumnFamily(&'static str),
    /// The database directory could not be created.
    #[error("creating {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Tuning knobs of [`RocksStore::open`]. The defaults suit the daemon.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// Memtable size of the inbox column family, in bytes. The inbox is an
    /// append-mostly log: larger memtables mean fewer, larger flushes and
    /// less write amplification. (Meta and device use a quarter of it.)
    pub write_buffer_size: usize,
    /// Memtables per column family (one active, the rest flushing), so that
    /// a slow flush does not stall writers.
    pub max_write_buffer_number: i32,
    /// Size of the LRU block cache shared by all column families, in bytes.
    pub block_cache_bytes: usize,
    /// Background flush and compaction threads.
    pub max_background_jobs: i32,
    /// fsync the write-ahead log on every commit. Must stay `true` in
    /// production: with `false`, a commit survives a process crash but not a
    /// power loss. Only benchmarks measuring the cost of fsync turn it off.
    pub sync_writes: bool,
}

impl Default for RocksOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        RocksOptions {
            write_buffer_size: 64 << 20,
            max_write_buffer_number: 4,
            block_cache_bytes: 128 << 20,
            max_background_jobs: cpus.clamp(2, 8) as i32,
            sync_writes: true,
        }
    }
}

/// The durable store: RocksDB with column families `inbox`, `meta` and
/// `device` (see [`keys`](super::keys) for the layout).
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    sync_writes: bool,
    commits: AtomicU64,
    // The block cache is shared by every column family's table options; keep
    // a handle so its lifetime plainly covers the database's.
    _cache: Cache,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("sync_writes", &self.sync_writes)
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;

        let cache = Cache::new_lru_cache(options.block_cache_bytes)?;

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        // Every write goes to the WAL and is flushed to the OS inside the
        // write call (no manual FlushWAL step); `sync` then fsyncs it.
        db_opts.set_manual_wal_flush(false);
        db_opts.increase_parallelism(options.max_background_jobs);
        db_opts.set_max_background_jobs(options.max_background_jobs);
        // Sync SST files incrementally while they are written, so that flush
        // and compaction do not dump a large burst of dirty pages at the end
        // (which would stall our WAL fsyncs behind it).
        db_opts.set_bytes_per_sync(1 << 20);
        // Cap total memtable memory across column families.
        db_opts.set_db_write_buffer_size(
            options
                .write_buffer_size
                .saturating_mul(options.max_write_buffer_number.max(1) as usize)
                .saturating_mul(2),
        );
        // A WAL file can only be deleted once every column family with data
        // in it has flushed. Meta and device are written far less than the
        // inbox, so without a cap their old memtables would pin many WAL files
        // (long recovery, disk use); past this size RocksDB flushes them.
        db_opts.set_max_total_wal_size((options.write_buffer_size as u64).saturating_mul(4));
        // Keep the informational LOG files few.
        db_opts.set_keep_log_file_num(4);

        let cf = |name: &str, write_buffer: usize, point_lookups: bool| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            if point_lookups {
                // Meta is read by point lookup: a bloom filter skips SST files
                // that do not hold the key.
                table.set_bloom_filter(10.0, false);
            }
            // Filter and index blocks live in the cache, bounded by its size.
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            o.set_write_buffer_size(write_buffer);
            o.set_max_write_buffer_number(options.max_write_buffer_number);
            // Level sizes follow the actual data size: steady ~10x fan-out,
            // lower space amplification for a growing dataset.
            o.set_level_compaction_dynamic_level_bytes(true);
            ColumnFamilyDescriptor::new(name, o)
        };
        let small = (options.write_buffer_size / 4).max(1 << 20);
        let cfs = vec![
            cf(CF_INBOX, options.write_buffer_size, false),
            cf(CF_META, small, true),
            cf(CF_DEVICE, small, false),
        ];

        let db = DB::open_cf_descriptors(&db_opts, &path, cfs)?;
        for name in COLUMN_FAMILIES {
            if db.cf_handle(name).is_none() {
                return Err(StoreError::MissingColumnFamily(name));
            }
        }
        tracing::info!(path = %path.display(), "opened RocksDB store");
        Ok(RocksStore {
            db,
            path,
            sync_writes: options.sync_writes,
            commits: AtomicU64::new(0),
            _cache: cache,
        })
    }

    /// Opens the store with [`RocksOptions::default`].
    pub fn open_default(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open(path, RocksOptions::default())
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of batches committed through this handle (each one WAL write,
    /// and one fsync when `sync_writes` is on).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Flushes every memtable to SST files. Not needed for durability (the
    /// WAL provides it); useful in tests and before backups.
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }

    /// Direct access to the database, for tests and tools.
    pub fn raw(&self) -> &DB {
        &self.db
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::MissingColumnFamily(name))
    }

    /// Read options for a scan over `user`'s keys: bounded above by the next
    /// user's prefix, so RocksDB stops at the end of the range instead of
    /// stepping over later keys (and tombstones).
    fn prefix_read_opts(user: u64) -> ReadOptions {
        let mut ro = ReadOptions::default();
        if let Some(end) = keys::user_prefix_end(user) {
            ro.set_iterate_upper_bound(end.to_vec());
        }
        ro
    }
}

impl Store for RocksStore {
    type Error = StoreError;

    fn inbox_meta(&self, user: u64) -> Result<Option<InboxMeta>, StoreError> {
        let key = keys::meta_key(user);
        match self.db.get_pinned_cf(self.cf(CF_META)?, key)? {
            None => Ok(None),
            Some(v) => keys::decode_meta(&v)
                .map(Some)
                .map_err(|source| StoreError::Corrupt {
                    cf: CF_META,
                    key: key.to_vec(),
                    source,
                }),
        }
    }

    fn devices(&self, user: u64) -> Result<Vec<(u32, DeviceState)>, StoreError> {
        let prefix = keys::user_prefix(user);
        let mut it = self
            .db
            .raw_iterator_cf_opt(self.cf(CF_DEVICE)?, Self::prefix_read_opts(user));
        it.seek(prefix);
        let mut out = Vec::new();
        while let Some((k, v)) = it.item() {
            if !k.starts_with(&prefix) {
                break;
            }
            let corrupt = |source| StoreError::Corrupt {
                cf: CF_DEVICE,
                key: k.to_vec(),
                source,
            };
            let (_, device) = keys::decode_device_key(k).map_err(corrupt)?;
            let state = keys::decode_device(v).map_err(corrupt)?;
            out.push((device, state));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    fn read_inbox(
        &self,
        user: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let prefix = keys::user_prefix(user);
        let mut it = self
            .db
            .raw_iterator_cf_opt(self.cf(CF_INBOX)?, Self::prefix_read_opts(user));
        it.seek(keys::inbox_key(user, start));
        let mut out = Vec::with_capacity(max.min(256));
        while out.len() < max {
            let Some((k, v)) = it.item() else { break };
            if !k.starts_with(&prefix) {
                break;
            }
            let (_, seq) = keys::decode_inbox_key(k).map_err(|source| StoreError::Corrupt {
                cf: CF_INBOX,
                key: k.to_vec(),
                source,
            })?;
            // Only the frame is stored: its meta is decoded here, once.
            out.push(StoredEntry::new(seq, Bytes::copy_from_slice(v)));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let inbox = self.cf(CF_INBOX)?;
        let meta = self.cf(CF_META)?;
        let device = self.cf(CF_DEVICE)?;
        // Ops within one RocksDB batch get increasing sequence numbers, so
        // they apply in order exactly like MemStore's loop (an Append after a
        // Trim of the same range survives; one before it does not).
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                WriteOp::Meta { user, meta: m } => {
                    wb.put_cf(meta, keys::meta_key(*user), keys::encode_meta(m));
                }
                WriteOp::Append { user, entry } => {
                    wb.put_cf(inbox, keys::inbox_key(*user, entry.seq), &entry.frame);
                }
                WriteOp::Device {
                    user,
                    device: d,
                    state,
                } => {
                    wb.put_cf(
                        device,
                        keys::device_key(*user, *d),
                        keys::encode_device(state),
                    );
                }
                WriteOp::Trim { user, up_to } => {
                    // One range tombstone instead of a point delete per entry:
                    // O(1) in the batch, however many entries it removes.
                    wb.delete_range_cf(
                        inbox,
                        keys::inbox_key(*user, 0).to_vec(),
                        keys::inbox_range_end(*user, *up_to),
                    );
                }
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync_writes);
        wo.disable_wal(false);
        self.db.write_opt(wb, &wo)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, s: &str) -> StoredEntry {
        StoredEntry::new(seq, Bytes::copy_from_slice(s.as_bytes()))
    }

    fn append(user: u64, seq: u64) -> WriteOp {
        WriteOp::Append {
            user,
            entry: entry(seq, &format!("{user}/{seq}")),
        }
    }

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<RocksStore>();
        assert_send_sync::<StoreError>();
    }

    #[test]
    fn basic_roundtrip_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open_default(dir.path().join("db")).unwrap();
        assert_eq!(s.inbox_meta(1).unwrap(), None);
        assert!(s.devices(1).unwrap().is_empty());
        assert!(s.read_inbox(1, 0, 10).unwrap().is_empty());

        let meta = InboxMeta {
            epoch: 42,
            head: 3,
            trimmed: 0,
        };
        let dev = DeviceState {
            checkpoint: 1,
            applied: 2,
            rejected: vec![(2, 9)],
            last_login_ms: 5,
        };
        let mut ops = vec![WriteOp::Meta { user: 1, meta }];
        for u in [0, 1, 2, u64::MAX] {
            for q in [1, 2, 3, u64::MAX] {
                ops.push(append(u, q));
            }
        }
        ops.push(WriteOp::Device {
            user: 1,
            device: u32::MAX,
            state: dev.clone(),
        });
        ops.push(WriteOp::Device {
            user: 1,
            device: 0,
            state: DeviceState::default(),
        });
        ops.push(WriteOp::Device {
            user: 2,
            device: 0,
            state: DeviceState::default(),
        });
        s.commit(&WriteBatch { ops }).unwrap();
        assert_eq!(s.commits(), 1);

        assert_eq!(s.inbox_meta(1).unwrap(), Some(meta));
        assert_eq!(
            s.devices(1).unwrap(),
            vec![(0, DeviceState::default()), (u32::MAX, dev)]
        );
        let seqs = |u, after, max| -> Vec<u64> {
            s.read_inbox(u, after, max)
                .unwrap()
                .into_iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(seqs(1, 0, 10), vec![1, 2, 3, u64::MAX]);
        assert_eq!(seqs(1, 1, 2), vec![2, 3]);
        assert_eq!(seqs(1, 3, 10), vec![u64::MAX]);
        assert_eq!(seqs(1, u64::MAX, 10), Vec::<u64>::new());
        assert_eq!(seqs(1, 0, 0), Vec::<u64>::new());
        assert_eq!(seqs(u64::MAX, 0, usize::MAX), vec![1, 2, 3, u64::MAX]);
        assert_eq!(
            s.read_inbox(2, 1, 1).unwrap(),
            vec![entry(2, "2/2")],
            "frames are kept"
        );

        // Trim, including the u64::MAX edge, leaves other users alone.
        s.commit(&WriteBatch {
            ops: vec![
                WriteOp::Trim { user: 1, up_to: 2 },
                WriteOp::Trim {
                    user: u64::MAX,
                    up_to: u64::MAX,
                },
                WriteOp::Trim {
                    user: 0,
                    up_to: u64::MAX,
                },
            ],
        })
        .unwrap();
        assert_eq!(seqs(1, 0, 10), vec![3, u64::MAX]);
        assert_eq!(seqs(u64::MAX, 0, 10), Vec::<u64>::new());
        assert_eq!(seqs(0, 0, 10), Vec::<u64>::new());
        assert_eq!(seqs(2, 0, 10), vec![1, 2, 3, u64::MAX]);
    }

    #[test]
    fn ops_apply_in_batch_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open_default(dir.path()).unwrap();
        s.commit(&WriteBatch {
            ops: vec![
                append(5, 1),
                append(5, 2),
                WriteOp::Trim { user: 5, up_to: 2 },
                append(5, 2),
                append(5, 3),
            ],
        })
        .unwrap();
        let got: Vec<u64> = s
            .read_inbox(5, 0, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, vec![2, 3]);
    }

    #[test]
    fn corrupt_values_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open_default(dir.path()).unwrap();
        let db = s.raw();
        db.put_cf(
            db.cf_handle(CF_META).unwrap(),
            keys::meta_key(7),
            [9u8, 1, 2],
        )
        .unwrap();
        db.put_cf(
            db.cf_handle(CF_DEVICE).unwrap(),
            keys::device_key(7, 1),
            [1u8; 3],
        )
        .unwrap();
        db.put_cf(
            db.cf_handle(CF_INBOX).unwrap(),
            [0u8, 0, 0, 0, 0, 0, 0, 7, 1],
            b"x",
        )
        .unwrap();
        assert!(matches!(
            s.inbox_meta(7),
            Err(StoreError::Corrupt {
                cf: CF_META,
                source: DecodeError::UnknownVersion(9),
                ..
            })
        ));
        assert!(matches!(
            s.devices(7),
            Err(StoreError::Corrupt { cf: CF_DEVICE, .. })
        ));
        assert!(matches!(
            s.read_inbox(7, 0, 10),
            Err(StoreError::Corrupt { cf: CF_INBOX, .. })
        ));
        // Other users are unaffected.
        assert_eq!(s.inbox_meta(8).unwrap(), None);
    }

    #[test]
    fn entries_read_back_carry_the_meta_of_their_frame() {
        use tern_core::store::{EntryMeta, Origin};
        use tern_core::wire::{encode_to_bytes, Deliver, EntryBody, Frame};
        let deliver = Deliver {
            seq: 1,
            conv: 4,
            from_user: 2,
            from_device: 3,
            from_seq: 9,
            time_ms: 1_700_000_000_000,
            body: EntryBody::Message {
                msg_type: 0,
                payload: Bytes::from_static(b"hi"),
            },
        };
        let written = StoredEntry {
            seq: 1,
            frame: encode_to_bytes(&Frame::Deliver(deliver.clone())),
            meta: EntryMeta::of_deliver(&deliver),
        };
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open_default(dir.path()).unwrap();
        s.commit(&WriteBatch {
            ops: vec![WriteOp::Append {
                user: 1,
                entry: written.clone(),
            }],
        })
        .unwrap();
        let read = s.read_inbox(1, 0, 10).unwrap();
        assert_eq!(read, vec![written]);
        assert_eq!(
            read[0].meta.origin,
            Some(Origin {
                conv: 4,
                from_user: 2,
                from_device: 3,
                from_seq: 9
            })
        );
    }

    #[test]
    fn reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksStore::open_default(dir.path()).unwrap();
            s.commit(&WriteBatch {
                ops: vec![append(1, 1), append(1, 2)],
            })
            .unwrap();
        }
        let s = RocksStore::open_default(dir.path()).unwrap();
        assert_eq!(s.read_inbox(1, 0, 10).unwrap().len(), 2);
    }
}
