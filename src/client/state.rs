//! The client's state folder: one RocksDB shared by the outbox and
//! checkpoint (`outbox.rs`, default column family) and the local history
//! (`history_store.rs`, two column families of its own). One database, so
//! that one write-ahead log orders every write: the synced checkpoint write
//! makes every history write before it durable too.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{Options, DB};

use super::outbox::OutboxError;

/// Records of the local history: `kind u8 | conv id u64 BE | conv_seq u64 BE`.
pub(super) const CF_RECORDS: &str = "conv_records";
/// Per conversation: held ranges and the list item; plus the list version.
pub(super) const CF_CONVS: &str = "conv_state";

/// Opens (or creates) the state folder at `dir`, with every column family
/// (a folder written before the local history existed gets them added).
pub(super) fn open(dir: &Path) -> Result<Arc<DB>, OutboxError> {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    let db = DB::open_cf(
        &o,
        dir,
        [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, CF_RECORDS, CF_CONVS],
    )?;
    Ok(Arc::new(db))
}
