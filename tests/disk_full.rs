//! The real `ternd` on a real, nearly full disk: its data folder is on a
//! small ext4 image, loop-mounted, filled to its last 7 MiB, and three
//! senders stream messages until it is full (`support::loopfs`;
//! skipped, saying why, where loop mounts are not possible).
//!
//! What must hold:
//! - while the disk is full, no send is acknowledged: each one either
//!   resolved Ok (and is then delivered exactly once) or is still pending,
//!   retried by its client; the daemon neither crashes nor restarts;
//! - the clients are told why (`Event::StorageUnavailable`, from ERROR 12),
//!   and `/metrics` counts the failed commits;
//! - once the space is freed, the same daemon process acknowledges again
//!   (RocksDB resumes by itself), and every acknowledged message reaches
//!   the receiver exactly once, in each sender's order.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::loopfs::{skip, LoopFs};
use support::process::{self, RealDaemon};
use support::streams::{
    alive, check_exactly_once, counter, metrics_addr, record_receiver, start_senders, until,
    Progress, RECEIVER,
};
use tern::client::Event;

const SENDERS: [u64; 3] = [1, 2, 3];
/// The image: large enough that freeing the filler leaves more than
/// RocksDB's reserve (its largest memtable, 64 MiB), under which it does
/// not resume writes by itself. Sparse: it costs what is written.
const IMAGE_MIB: u64 = 160;
/// Free space left when the disk is filled: room for the daemon to open its
/// store (the MANIFEST takes 4 MiB) and store a few thousand messages.
const LEFT: u64 = 7 << 20;
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_acknowledges_nothing_and_the_daemon_resumes_once_space_is_freed() {
    let fs = match LoopFs::mount(IMAGE_MIB) {
        Ok(fs) => fs,
        Err(why) => return skip("disk_full", &why),
    };
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("ternd.log");
    let data = fs.path().join("data");
    let mut tokens: HashMap<u64, Vec<u8>> = HashMap::new();
    for u in SENDERS.iter().copied().chain([RECEIVER]) {
        tokens.insert(u, process::token(&data, u, 1));
    }
    // Filled before the daemon starts: RocksDB preallocates its MANIFEST
    // (4 MiB) and write-ahead log (70 MiB with the default memtable), and
    // filling the disk after that would only fill around those
    // reservations. On a nearly full ext4 the preallocation takes whatever
    // is left, which the log then fills.
    let filler = fs.fill_leaving("filler", LEFT);
    let env = [("TERN_METRICS_LISTEN", "127.0.0.1:0")];
    let daemon =
        RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), &env, &log).expect("ternd starts");
    let pid = daemon.pid();
    let metrics = metrics_addr(&log);

    // The receiver records everything it is handed.
    let (seen, rx_task) = record_receiver(&daemon, tokens[&RECEIVER].clone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let senders = start_senders(&daemon, &tokens, &SENDERS, &stop, &progress).await;
    let acks = || progress.acks.load(Ordering::Relaxed);
    until("traffic flows", 20, &log, || acks() >= 30).await;

    // The senders run into the full disk and stall, unacknowledged.
    until("commits fail on the full disk", 60, &log, || {
        assert!(
            alive(pid),
            "ternd died on the full disk (log: {})",
            log.display()
        );
        counter(metrics, "tern_commit_failures_total") > 0
    })
    .await;
    until("every sender stalls", 30, &log, || {
        progress.stalled_for() > Duration::from_secs(2)
    })
    .await;
    let acked_while_full = acks();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        acks(),
        acked_while_full,
        "nothing is acknowledged on a full disk"
    );
    assert!(
        alive(pid),
        "the daemon survives a full disk (log: {})",
        log.display()
    );
    assert!(fs.free() < LEFT, "the daemon filled the disk");

    // Free the space: the same process acknowledges again.
    std::fs::remove_file(&filler).unwrap();
    until(
        "acknowledgements resume after space is freed",
        60,
        &log,
        || acks() > acked_while_full + 30,
    )
    .await;
    assert!(alive(pid), "no restart was needed");
    stop.store(true, Ordering::Relaxed);

    let mut acked: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut clients = Vec::new();
    for (t, s) in senders.into_iter().zip(SENDERS) {
        let (c, a) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap_or_else(|_| panic!("sender {s}: a send never resolved"))
            .unwrap();
        acked.insert(s, a);
        clients.push((s, c));
    }

    // Every acknowledged message arrives exactly once, in order.
    let want: usize = acked.values().map(Vec::len).sum();
    until(
        "the receiver has every acknowledged message",
        30,
        &log,
        || seen.lock().unwrap().len() >= want,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    check_exactly_once(&seen.lock().unwrap(), &acked);

    // The clients were told why, and the metrics count it.
    for (s, mut c) in clients {
        let events = support::drain_quiet(&mut c, 200).await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::StorageUnavailable { .. })),
            "sender {s} was told the server's storage is unavailable: {events:?}"
        );
        c.close().await;
    }
    let failures = counter(metrics, "tern_commit_failures_total");
    assert!(failures >= 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("storage full"),
        "the daemon says the disk is full"
    );
    assert!(
        text.contains("storage writable again"),
        "and that it recovered"
    );
    rx_task.abort();
    daemon.kill();
    drop(fs);
    eprintln!("{want} messages acknowledged, {failures} failed commits");
}
