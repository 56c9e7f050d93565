//! The data folder's format version, and the upgrade from older ones.
//!
//! Format 1 (ternd before conversations) had the column families `inbox`,
//! `meta` and `device` and no marker. Format 2 adds the conversation column
//! families (`conv_values.rs`), new value versions for metadata, devices and
//! inbox entries, and this marker. Format 1 values stay readable as they are
//! (every decoder accepts them), so the upgrade writes no data: it creates
//! the new column families and stamps the marker, once, before anything
//! else is written. Format 3 adds the group column family
//! (`group_values.rs`) and a flag bit in records (group events); formats 1
//! and 2 upgrade the same way, by creating the column family and stamping
//! the marker, since nothing they hold changes meaning. Format 4 stores a
//! run of consecutive inbox entries, or conversation records, in one row
//! (`run_rows.rs`); a row of one value is exactly what formats 1-3
//! wrote, so they upgrade by stamping the marker alone, while an older
//! ternd would misread a run and must not open the folder. A folder written by a newer ternd is refused with a
//! clear error, never guessed at (so a format 3 ternd refuses a folder
//! this build upgraded).

use rocksdb::DB;

use super::rocks::StoreError;

/// The format this build writes.
pub const FORMAT: u32 = 4;

/// Key of the marker, in the default column family.
const FORMAT_KEY: &[u8] = b"tern.format";

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new, empty folder.
    Created,
    /// A folder of the current format.
    Current,
    /// A folder of an older format, upgraded in place.
    Upgraded {
        /// The format it had.
        from: u32,
    },
}

/// Whether `path` holds a database already (before opening it creates one).
pub fn existed(path: &std::path::Path) -> bool {
    path.join("CURRENT").exists()
}

/// Checks the marker of a just-opened database and upgrades older formats.
pub fn check_and_upgrade(db: &DB, existed: bool) -> Result<Opened, StoreError> {
    let found = match db.get(FORMAT_KEY)? {
        Some(v) => {
            let raw: [u8; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::BadFormatMarker)?;
            u32::from_be_bytes(raw)
        }
        // No marker: a folder written before markers existed (format 1),
        // or a brand new one.
        None if existed => 1,
        None => 0,
    };
    let opened = match found {
        0 => Opened::Created,
        FORMAT => return Ok(Opened::Current),
        from @ (1..=3) => Opened::Upgraded { from },
        newer => {
            return Err(StoreError::NewerFormat {
                found: newer,
                supported: FORMAT,
            })
        }
    };
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(true);
    db.put_opt(FORMAT_KEY, FORMAT.to_be_bytes(), &wo)?;
    if let Opened::Upgraded { from } = opened {
        tracing::info!(from, to = FORMAT, "upgraded the data folder's store format");
    }
    Ok(opened)
}
