//! SIGKILL in the middle of RocksDB writes: the test binary re-executes
//! itself as a writer child that commits numbered batches through a
//! `GroupCommitter` and reports each one on stdout after its commit
//! returned; the parent SIGKILLs it mid-stream, reopens the store, and
//! checks that every reported batch is fully present and no batch is
//! partially present.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern::store::keys::{self, CF_META};
use tern::store::{
    DeviceState, GroupCommitter, InboxMeta, RocksOptions, RocksStore, Store, StoredEntry,
    WriteBatch, WriteOp,
};
use tern_core::store::SyncItem;

fn small_opts() -> RocksOptions {
    RocksOptions {
        write_buffer_size: 1 << 20,
        block_cache_bytes: 8 << 20,
        ..RocksOptions::default()
    }
}

fn payload_of(e: &StoredEntry) -> Bytes {
    match &e.entry.item {
        SyncItem::Message(r) => r.payload.clone(),
        other => panic!("not a message: {other:?}"),
    }
}
const CHILD_ENV_DB: &str = "TERN_CRASH_CHILD_DB";
const CHILD_ENV_START: &str = "TERN_CRASH_CHILD_START";
const CHILD_THREADS: u64 = 8;
/// Batch numbers of one round lie in `[start, start + ROUND_SPAN)`.
const ROUND_SPAN: u64 = 100_000;
const DEVICE_USER: u64 = 7;
const META_USER_BASE: u64 = 1_000_000_000;
const LINE_PREFIX: &str = "COMMITTED ";

fn big_frame(n: u64) -> Bytes {
    Bytes::from(n.to_be_bytes().repeat(128)) // 1 KiB
}

fn device_state(n: u64) -> DeviceState {
    DeviceState {
        checkpoint: n,
        applied: n + 1,
        rejected: vec![(n, n ^ 0xff)],
        last_login_ms: n * 3,
        version: 2,
    }
}

fn meta_of(n: u64) -> InboxMeta {
    InboxMeta {
        epoch: n,
        head: n * 2,
        trimmed: n / 2,
        ..InboxMeta::default()
    }
}

/// Batch number `n`: five writes to three column families.
fn crash_batch(n: u64) -> WriteBatch {
    WriteBatch {
        ops: vec![
            WriteOp::Append {
                user: 1,
                entry: StoredEntry::inline(n, 1, Bytes::from(format!("{n}:1"))),
            },
            WriteOp::Append {
                user: 2,
                entry: StoredEntry::inline(n, 2, Bytes::from(format!("{n}:2"))),
            },
            WriteOp::Append {
                user: 3,
                entry: StoredEntry::inline(n, 3, big_frame(n)),
            },
            WriteOp::Device {
                user: DEVICE_USER,
                device: u32::try_from(n).unwrap(),
                state: device_state(n),
            },
            WriteOp::Meta {
                user: META_USER_BASE + n,
                meta: meta_of(n),
            },
        ],
    }
}

/// The writer child: commits numbered batches from several threads until
/// killed, reporting each one only after its commit returned.
fn crash_child(db: &Path, start: u64) {
    let store = Arc::new(RocksStore::open(db, small_opts()).expect("child: open store"));
    let gc = Arc::new(GroupCommitter::new(store).expect("child: start committer"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|t| {
            let gc = gc.clone();
            std::thread::spawn(move || {
                let mut n = start + t;
                while n < start + ROUND_SPAN && Instant::now() < deadline {
                    gc.commit(crash_batch(n)).expect("child: commit");
                    // Stdout is line-buffered: the line leaves the process
                    // with this call, after the commit returned.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{LINE_PREFIX}{n}").expect("child: stdout");
                    out.flush().expect("child: flush");
                    n += CHILD_THREADS;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Spawns the writer child, reads at least `want` reports, SIGKILLs it, and
/// returns every batch number it reported.
fn run_child_and_kill(db: &Path, start: u64, want: usize, stderr_log: &Path) -> BTreeSet<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_kill_mid_write",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV_DB, db)
        .env(CHILD_ENV_START, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_log).unwrap())
        .spawn()
        .expect("spawn writer child");

    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix(LINE_PREFIX) {
                let _ = tx.send(n.trim().parse().expect("child report"));
            }
        }
    });

    let mut reported = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while reported.len() < want {
        match rx.recv_deadline(deadline) {
            Ok(n) => {
                reported.insert(n);
            }
            Err(_) => break,
        }
    }
    // Kill at a slightly random moment, mid-stream.
    std::thread::sleep(Duration::from_micros(rand::random::<u64>() % 3000));
    child.kill().expect("SIGKILL child"); // Child::kill sends SIGKILL on Unix
    let status = child.wait().unwrap();
    // Lines already written before the kill count as reported too.
    reader.join().unwrap();
    reported.extend(rx.try_iter());

    if reported.len() < want {
        let log = std::fs::read_to_string(stderr_log).unwrap_or_default();
        panic!(
            "writer child reported only {} batches (status {status:?}); its stderr:\n{log}",
            reported.len()
        );
    }
    reported
}

/// Checks the store after a crash. Returns the set of batches present.
fn verify_after_crash(store: &RocksStore, reported: &BTreeSet<u64>) -> BTreeSet<u64> {
    // Every batch number with any trace in any column family.
    let mut candidates: BTreeSet<u64> = reported.clone();
    for user in [1, 2, 3] {
        candidates.extend(
            store
                .read_inbox(user, 0, usize::MAX)
                .unwrap()
                .iter()
                .map(|e| e.seq),
        );
    }
    candidates.extend(
        store
            .devices(DEVICE_USER)
            .unwrap()
            .iter()
            .map(|(d, _)| u64::from(*d)),
    );
    let db = store.raw();
    let mut it = db.raw_iterator_cf(db.cf_handle(CF_META).unwrap());
    it.seek(keys::meta_key(META_USER_BASE));
    while let Some(k) = it.key() {
        let user = u64::from_be_bytes(k.try_into().unwrap());
        candidates.insert(user - META_USER_BASE);
        it.next();
    }
    it.status().unwrap();

    let devices: BTreeMap<u32, DeviceState> =
        store.devices(DEVICE_USER).unwrap().into_iter().collect();
    let entry = |user: u64, n: u64| -> Option<Bytes> {
        store
            .read_inbox(user, n - 1, 1)
            .unwrap()
            .into_iter()
            .find(|e| e.seq == n)
            .map(|e| payload_of(&e))
    };

    let mut present = BTreeSet::new();
    for &n in &candidates {
        let parts = [
            entry(1, n).map(|f| f == format!("{n}:1").as_bytes()),
            entry(2, n).map(|f| f == format!("{n}:2").as_bytes()),
            entry(3, n).map(|f| f == big_frame(n)),
            devices
                .get(&u32::try_from(n).unwrap())
                .map(|s| *s == device_state(n)),
            store
                .inbox_meta(META_USER_BASE + n)
                .unwrap()
                .map(|m| m == meta_of(n)),
        ];
        assert!(
            parts.iter().flatten().all(|ok| *ok),
            "batch {n}: a record has the wrong content: {parts:?}"
        );
        let count = parts.iter().filter(|p| p.is_some()).count();
        assert!(
            count == 0 || count == parts.len(),
            "batch {n} is partially present ({count} of {} records): {parts:?}",
            parts.len()
        );
        if reported.contains(&n) {
            assert_eq!(
                count,
                parts.len(),
                "batch {n} was reported committed but is missing"
            );
        }
        if count > 0 {
            present.insert(n);
        }
    }
    present
}

#[test]
fn crash_kill_mid_write() {
    // Child mode: act as the writer and never come back (we get killed).
    if let Ok(db) = std::env::var(CHILD_ENV_DB) {
        let start: u64 = std::env::var(CHILD_ENV_START).unwrap().parse().unwrap();
        crash_child(Path::new(&db), start);
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut all_reported = BTreeSet::new();
    // Several rounds: each child recovers the store the previous one left
    // behind mid-write, then is killed in turn.
    for round in 0..3u64 {
        let start = 1 + round * ROUND_SPAN;
        let log = dir.path().join(format!("child-{round}.stderr"));
        let reported = run_child_and_kill(&db, start, 300, &log);
        all_reported.extend(&reported);

        let store = RocksStore::open(&db, small_opts()).unwrap();
        let present = verify_after_crash(&store, &all_reported);
        assert!(present.is_superset(&all_reported));
        eprintln!(
            "round {round}: {} batches reported, {} present after SIGKILL and recovery",
            reported.len(),
            present.iter().filter(|n| **n >= start).count()
        );
    }
}
