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
use std::sync::Mutex;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, ReadOptions,
    WriteOptions, DB,
};
use tern_core::conv::{ConvKey, ConvState};
use tern_core::store::{
    ConvMeta, ConvRecord, DeviceState, GroupMember, InboxMeta, Store, StoredEntry, UserConv,
    WriteBatch, WriteOp,
};

use super::conv_values::{
    self as cv, CF_CONV, CF_CONV_LIST, CF_CONV_META, CF_HIDDEN, CF_USER_CONV,
};
use super::entry_values::encode_entry_into;
use super::format::{self, Opened};
use super::group_values as gv;
use super::keys::{self, DecodeError, CF_DEVICE, CF_INBOX, CF_META, COLUMN_FAMILIES};
use super::run_spaces::{InboxSpace, RecordSpace};
use super::run_writer::{RowIndex, RunWriter};

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
    /// The data folder was written by a newer ternd.
    #[error(
        "the data folder was written by a newer ternd (store format {found}); this ternd \
         reads formats up to {supported}: run the newer ternd, or restore a backup"
    )]
    NewerFormat {
        /// Format found.
        found: u32,
        /// Newest format this build reads.
        supported: u32,
    },
    /// The format marker is not 4 bytes.
    #[error("the store's format marker is corrupt")]
    BadFormatMarker,
    /// The configured WAL folder differs from the one the store last used,
    /// and that one still holds WAL files: opening would lose them.
    #[error(
        "the store's write-ahead log is in {previous} and still holds WAL files (*.log), but \
         the configuration puts it in {configured}: stop, move those files there, and start \
         again, or set [server] wal_dir back to {previous}"
    )]
    WalElsewhere {
        /// Where the WAL files are.
        previous: PathBuf,
        /// Where the configuration puts the WAL.
        configured: PathBuf,
    },
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
    /// Folder for the write-ahead log (`[server] wal_dir`), for example on
    /// a disk of its own; `None`: inside the database folder. A change is
    /// refused while the old folder still holds WAL files
    /// ([`StoreError::WalElsewhere`]; `wal_dir.rs`).
    pub wal_dir: Option<PathBuf>,
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
            wal_dir: None,
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
    opened: Opened,
    /// The run writers' indexes of each user's and each conversation's
    /// rows; the lock also makes commits one at a time.
    runs: Mutex<(RowIndex<InboxSpace>, RowIndex<RecordSpace>)>,
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

        let wal_dir = super::wal_dir::prepare(&path, options.wal_dir.as_deref())?;
        let cache = Cache::new_lru_cache(options.block_cache_bytes)?;

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        // Every write goes to the WAL and is flushed to the OS inside the
        // write call (no manual FlushWAL step); `sync` then fsyncs it.
        db_opts.set_manual_wal_flush(false);
        if let Some(dir) = &wal_dir {
            db_opts.set_wal_dir(dir);
        }
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
        // RocksDB's own LOG (in the data folder) records fatal errors only.
        // Debian's librocksdb is built with assertions on: once a LOG write
        // fails on a full disk, the next LOG line aborts the whole process
        // (WritableFileWriter asserts on its earlier error), so a full disk
        // would crash the daemon instead of refusing writes until space is
        // freed. The daemon logs every storage failure itself.
        db_opts.set_log_level(rocksdb::LogLevel::Fatal);

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
            // The storage timelines hold every message: the inbox's size.
            cf(CF_CONV, options.write_buffer_size, false),
            cf(CF_CONV_META, small, true),
            cf(CF_USER_CONV, small, true),
            cf(CF_CONV_LIST, small, false),
            cf(CF_HIDDEN, small, false),
            cf(gv::CF_GROUP_MEMBER, small, false),
        ];

        let existed = format::existed(&path);
        let db = DB::open_cf_descriptors(&db_opts, &path, cfs)?;
        for name in COLUMN_FAMILIES {
            if db.cf_handle(name).is_none() {
                return Err(StoreError::MissingColumnFamily(name));
            }
        }
        let opened = format::check_and_upgrade(&db, existed)?;
        super::wal_dir::record(&path, wal_dir.as_deref())?;
        tracing::info!(path = %path.display(), ?opened, wal_dir = ?wal_dir, "opened RocksDB store");
        Ok(RocksStore {
            db,
            path,
            sync_writes: options.sync_writes,
            commits: AtomicU64::new(0),
            opened,
            runs: Mutex::new(Default::default()),
            _cache: cache,
        })
    }

    /// Opens the store with [`RocksOptions::default`].
    pub fn open_default(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open(path, RocksOptions::default())
    }

    /// Whether opening created, found or upgraded the data folder.
    pub fn opened(&self) -> Opened {
        self.opened
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

    pub(super) fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::MissingColumnFamily(name))
    }

    /// Read options for a scan over `user`'s keys: bounded above by the next
    /// user's prefix, so RocksDB stops at the end of the range instead of
    /// stepping over later keys (and tombstones).
    pub(super) fn prefix_read_opts(user: u64) -> ReadOptions {
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
        self.get_decoded(CF_META, &keys::meta_key(user), keys::decode_meta)
    }

    fn devices(&self, user: u64) -> Result<Vec<(u32, DeviceState)>, StoreError> {
        self.read_devices(user)
    }

    fn read_inbox(
        &self,
        user: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.read_entries(user, after, max)
    }

    fn conv_meta(&self, conv: &ConvKey) -> Result<Option<ConvMeta>, StoreError> {
        self.get_decoded(CF_CONV_META, &conv.to_bytes(), cv::decode_conv_meta)
    }

    fn convs_after(
        &self,
        after: Option<&ConvKey>,
        max: usize,
    ) -> Result<Vec<(ConvKey, ConvMeta)>, StoreError> {
        self.read_conv_metas(after, max)
    }

    fn read_conv(
        &self,
        conv: &ConvKey,
        before: u64,
        max: usize,
    ) -> Result<Vec<ConvRecord>, StoreError> {
        self.read_records(conv, before, max)
    }

    fn user_conv(&self, user: u64, conv: &ConvKey) -> Result<Option<ConvState>, StoreError> {
        self.get_decoded(
            CF_USER_CONV,
            &cv::user_conv_key(user, conv),
            cv::decode_conv_state,
        )
    }

    fn user_convs_since(
        &self,
        user: u64,
        since: u64,
        max: usize,
    ) -> Result<Vec<UserConv>, StoreError> {
        self.read_list(user, since, max)
    }

    fn hidden(
        &self,
        user: u64,
        conv: &ConvKey,
        low: u64,
        high: u64,
    ) -> Result<Vec<u64>, StoreError> {
        self.read_hidden(user, conv, low, high)
    }

    fn group_members(
        &self,
        group: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, GroupMember)>, StoreError> {
        self.read_group_members(group, after, max)
    }

    fn user_groups(&self, user: u64, after: u64, max: usize) -> Result<Vec<u64>, StoreError> {
        self.read_user_groups(user, after, max)
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        let device = self.cf(CF_DEVICE)?;
        // One commit at a time: the run writers read rows and index them,
        // which a concurrent commit would invalidate.
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let (inbox_rows, record_rows) = &mut *runs;
        let mut inbox = RunWriter::new(&self.db, self.cf(CF_INBOX)?, inbox_rows);
        let mut records = RunWriter::new(&self.db, self.cf(CF_CONV)?, record_rows);
        // Ops within one RocksDB batch get increasing sequence numbers, so
        // they apply in order exactly like MemStore's loop. Sync-timeline
        // entries and records go through their run writers, which apply
        // them in order to a view and write the view at the end.
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                WriteOp::Meta { user, meta: m } => {
                    wb.put_cf(meta, keys::meta_key(*user), keys::encode_meta(m));
                }
                WriteOp::Append { user, entry } => {
                    inbox.put(*user, entry.seq, |buf| encode_entry_into(&entry.entry, buf))?;
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
                    // One range tombstone, however many entries it removes
                    // (and the row straddling the bound rewritten).
                    inbox.trim(*user, *up_to)?;
                }
                WriteOp::PutRecord { conv, record } => {
                    records.put(*conv, record.conv_seq, |buf| {
                        buf.extend_from_slice(&cv::encode_record(record))
                    })?;
                }
                WriteOp::ConvMeta { conv, meta: m } => {
                    wb.put_cf(
                        self.cf(CF_CONV_META)?,
                        conv.to_bytes(),
                        cv::encode_conv_meta(m),
                    );
                }
                WriteOp::TrimConv { conv, up_to } => {
                    records.trim(*conv, *up_to)?;
                }
                WriteOp::UserConv {
                    user,
                    conv,
                    state,
                    prev_version,
                } => {
                    let list = self.cf(CF_CONV_LIST)?;
                    if *prev_version != 0 {
                        wb.delete_cf(list, cv::list_key(*user, *prev_version));
                    }
                    wb.put_cf(list, cv::list_key(*user, state.version), conv.to_bytes());
                    wb.put_cf(
                        self.cf(CF_USER_CONV)?,
                        cv::user_conv_key(*user, conv),
                        cv::encode_conv_state(state),
                    );
                }
                WriteOp::Hide {
                    user,
                    conv,
                    conv_seq,
                } => {
                    wb.put_cf(
                        self.cf(CF_HIDDEN)?,
                        cv::hidden_key(*user, conv, *conv_seq),
                        [],
                    );
                }
                WriteOp::GroupMember {
                    group,
                    user,
                    member,
                } => {
                    wb.put_cf(
                        self.cf(gv::CF_GROUP_MEMBER)?,
                        gv::member_key(*group, *user),
                        gv::encode_member(member),
                    );
                }
            }
        }
        let written = (inbox.finish(&mut wb), records.finish(&mut wb));
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync_writes);
        wo.disable_wal(false);
        self.db.write_opt(wb, &wo)?;
        RunWriter::remember(&mut runs.0, written.0);
        RunWriter::remember(&mut runs.1, written.1);
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
#[path = "rocks_tests.rs"]
mod tests;
