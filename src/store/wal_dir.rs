//! Where the store's write-ahead log lives (`[server] wal_dir`), and the
//! guard that keeps a move of it from losing acknowledged writes.
//!
//! Every ACK waits for the WAL's fsync, so an operator may put the WAL on a
//! disk of its own, away from flushes and compactions (issue 14, item 2).
//! RocksDB looks for WAL files only in the folder it is told; if the
//! setting changes while the old folder still holds WAL files (writes not
//! yet flushed to tables, which is normal after any stop), RocksDB would
//! open without them and those acknowledged writes would be gone. So the
//! store records the folder it last used in a marker in the database
//! folder, and refuses to open when the configured folder differs from it
//! while the old one still holds WAL files: the operator moves them, or
//! sets the option back. A store with no marker had its WAL in the
//! database folder, RocksDB's default.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::rocks::StoreError;

/// The marker's file name, in the database folder.
const MARKER: &str = "TERN-WAL-DIR";

/// Checks that `configured` (`None`: the database folder) may be used as
/// the WAL folder of the store in `db`, creating it if needed. Returns the
/// folder to give RocksDB, `None` for the database folder itself.
pub(super) fn prepare(db: &Path, configured: Option<&Path>) -> Result<Option<PathBuf>, StoreError> {
    let db = db.canonicalize().map_err(io(db))?;
    let wanted = match configured {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            dir.canonicalize().map_err(io(dir))?
        }
        None => db.clone(),
    };
    let marker = db.join(MARKER);
    let previous = match std::fs::read(&marker) {
        Ok(bytes) => PathBuf::from(std::ffi::OsString::from_vec(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => db.clone(),
        Err(e) => {
            return Err(StoreError::Io {
                path: marker,
                source: e,
            })
        }
    };
    if previous != wanted && has_wal_files(&previous).map_err(io(&previous))? {
        return Err(StoreError::WalElsewhere {
            previous,
            configured: wanted,
        });
    }
    Ok((wanted != db).then_some(wanted))
}

/// Records the WAL folder now in use (`None`: the database folder), once
/// the store has opened with it.
pub(super) fn record(db: &Path, wal: Option<&Path>) -> Result<(), StoreError> {
    let db = db.canonicalize().map_err(io(db))?;
    let marker = db.join(MARKER);
    let Some(wal) = wal else {
        // The default needs no marker; an old one would name a folder no
        // longer used.
        return match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&marker)(e)),
            _ => Ok(()),
        };
    };
    if std::fs::read(&marker).ok().as_deref() == Some(wal.as_os_str().as_encoded_bytes()) {
        return Ok(());
    }
    let tmp = db.join(format!("{MARKER}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(wal.as_os_str().as_encoded_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &marker).map_err(io(&marker))?;
    std::fs::File::open(&db)
        .and_then(|d| d.sync_all())
        .map_err(io(&db))
}

/// The error for an I/O failure on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, source }
}

/// Whether `dir` holds RocksDB WAL files (`<number>.log`). A folder that
/// is gone holds none.
fn has_wal_files(dir: &Path) -> std::io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log") {
            if !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use tern_core::store::{InboxMeta, Store, WriteBatch, WriteOp};

    use super::*;
    use crate::store::{RocksOptions, RocksStore};

    fn open(db: &Path, wal: Option<&Path>) -> Result<RocksStore, StoreError> {
        let options = RocksOptions {
            write_buffer_size: 1 << 20,
            block_cache_bytes: 8 << 20,
            wal_dir: wal.map(Path::to_path_buf),
            ..RocksOptions::default()
        };
        RocksStore::open(db, options)
    }

    fn write(store: &RocksStore, user: u64) {
        let meta = InboxMeta {
            epoch: 7,
            head: user,
            ..InboxMeta::default()
        };
        store
            .commit(&WriteBatch {
                ops: vec![WriteOp::Meta { user, meta }],
            })
            .unwrap();
    }

    fn head(store: &RocksStore, user: u64) -> Option<u64> {
        store.inbox_meta(user).unwrap().map(|m| m.head)
    }

    /// A scratch folder with the paths of a database and a WAL folder in it.
    fn folders() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (db, wal) = (dir.path().join("db"), dir.path().join("wal"));
        (dir, db, wal)
    }

    /// Moves the WAL files from `from` to `to`, as an operator would.
    fn move_logs(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                std::fs::rename(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    }

    #[test]
    fn writes_go_to_the_configured_wal_folder_and_survive_a_reopen() {
        let (_dir, db, wal) = folders();
        write(&open(&db, Some(&wal)).unwrap(), 1);
        assert!(has_wal_files(&wal).unwrap());
        assert!(!has_wal_files(&db).unwrap());
        // Unflushed: the write is only in the WAL, and reopening finds it.
        assert_eq!(head(&open(&db, Some(&wal)).unwrap(), 1), Some(1));
    }

    #[test]
    fn moving_the_wal_away_from_its_files_is_refused_either_way() {
        let (_dir, db, wal) = folders();
        write(&open(&db, None).unwrap(), 1);
        match open(&db, Some(&wal)) {
            Err(StoreError::WalElsewhere { previous, .. }) => {
                assert_eq!(previous, db.canonicalize().unwrap())
            }
            other => panic!("expected WalElsewhere, got {:?}", other.map(|_| ())),
        }
        // The refused open changed nothing: the write is still there.
        assert_eq!(head(&open(&db, None).unwrap(), 1), Some(1));

        let (dir, db, wal) = folders();
        write(&open(&db, Some(&wal)).unwrap(), 2);
        let e = open(&db, None).map(|_| ()).unwrap_err();
        assert!(matches!(e, StoreError::WalElsewhere { .. }), "{e}");
        assert!(e.to_string().contains("wal_dir"), "{e}");
        let other = dir.path().join("other");
        assert!(matches!(
            open(&db, Some(&other)).map(|_| ()),
            Err(StoreError::WalElsewhere { .. })
        ));
        assert_eq!(head(&open(&db, Some(&wal)).unwrap(), 2), Some(2));
    }

    #[test]
    fn wal_files_moved_by_hand_follow_the_new_setting() {
        let (_dir, db, wal) = folders();
        write(&open(&db, None).unwrap(), 3);
        move_logs(&db, &wal);
        assert_eq!(head(&open(&db, Some(&wal)).unwrap(), 3), Some(3));
        // And back to the default, once moved back.
        move_logs(&wal, &db);
        let store = open(&db, None).unwrap();
        assert_eq!(head(&store, 3), Some(3));
        assert!(!db.join(MARKER).exists());
    }
}
