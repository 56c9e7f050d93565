//! The real `ternd` on a filesystem whose fsync starts failing (a
//! pass-through FUSE filesystem returning EIO, `support::faultfs`; skipped,
//! saying why, where FUSE cannot be mounted) while two senders stream.
//!
//! RocksDB refuses every write after a failed WAL sync until the database
//! is reopened, and the `rocksdb` crate exposes no `DB::Resume`. So:
//! - the daemon acknowledges nothing more, says why and exits by itself
//!   with an error status (no hang, no crash);
//! - restarted on the same folder once the disk works again, it serves the
//!   same clients, and every acknowledged message reaches the receiver
//!   exactly once, in order: an operation whose commit failed was never
//!   acknowledged, and its client sends it again.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::faultfs::FaultFs;
use support::loopfs::skip;
use support::process::{self, RealDaemon};
use support::streams::{
    alive, check_exactly_once, record_receiver, start_senders, until, Progress, RECEIVER,
};

const SENDERS: [u64; 2] = [1, 2];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_fsync_error_stops_the_daemon_and_a_restart_loses_nothing_acknowledged() {
    let fs = match FaultFs::mount() {
        Ok(fs) => fs,
        Err(why) => return skip("fsync_failure", &why),
    };
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("ternd.log");
    let data = fs.path().join("data");
    let mut tokens: HashMap<u64, Vec<u8>> = HashMap::new();
    for u in SENDERS.iter().copied().chain([RECEIVER]) {
        tokens.insert(u, process::token(&data, u, 1));
    }
    let daemon =
        RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), &[], &log).expect("ternd starts");
    let (addr, pid) = (daemon.addr, daemon.pid());

    let (seen, rx_task) = record_receiver(&daemon, tokens[&RECEIVER].clone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let senders = start_senders(&daemon, &tokens, &SENDERS, &stop, &progress).await;
    let acks = || progress.acks.load(Ordering::Relaxed);
    until("traffic flows", 20, &log, || acks() >= 30).await;

    // The disk starts failing its fsyncs: the daemon stops by itself.
    fs.fail_fsync(true);
    until("ternd exits on the failed fsync", 30, &log, || !alive(pid)).await;
    let acked_at_exit = acks();
    let status = daemon.terminate(Duration::from_secs(1));
    assert_eq!(
        status.code(),
        Some(1),
        "an error exit, not a crash: {status}"
    );
    assert!(fs.fsync_failures() > 0, "the WAL sync did fail");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("storage failed"),
        "it says why (log: {})",
        log.display()
    );
    assert!(text.contains("restart ternd"), "and what to do");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(acks(), acked_at_exit, "nothing acknowledged with no daemon");

    // The disk works again; the supervisor (here, the test) restarts it.
    fs.fail_fsync(false);
    let daemon = tokio::task::spawn_blocking({
        let (data, log) = (data.clone(), log.clone());
        move || RealDaemon::spawn_at(&data, addr, &[], &log)
    })
    .await
    .unwrap();
    until(
        "acknowledgements resume after the restart",
        60,
        &log,
        || acks() > acked_at_exit + 30,
    )
    .await;
    stop.store(true, Ordering::Relaxed);

    let mut acked: HashMap<u64, Vec<u64>> = HashMap::new();
    for (t, s) in senders.into_iter().zip(SENDERS) {
        let (c, a) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap_or_else(|_| panic!("sender {s}: a send never resolved"))
            .unwrap();
        acked.insert(s, a);
        c.close().await;
    }
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
    rx_task.abort();
    daemon.kill();
    drop(fs);
    let said = text
        .lines()
        .find(|l| l.contains("storage failed"))
        .unwrap_or_default();
    eprintln!("{want} messages acknowledged; ternd said: {said}");
}
