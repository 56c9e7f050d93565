//! `[server] wal_dir`: the real `ternd` keeps its write-ahead log in a
//! folder of its own, acknowledged messages survive a SIGKILL with it
//! there, and a restart that would look for the log elsewhere is refused
//! with a clear error instead of opening without those messages.

mod support;

use std::time::Duration;

use support::process::{self, RealDaemon};
use support::{next_message, payload_of, tagged, untag};
use tern::client::{Client, ClientOptions};

const ALICE: u64 = 1;
const BOB: u64 = 2;

async fn connect(daemon: &RealDaemon, user: u64) -> Client {
    let mut o = ClientOptions::new(daemon.addr, process::token(&daemon.data_dir, user, 1));
    o.seal_key = daemon.seal_key;
    o.connect_timeout = Duration::from_secs(10);
    Client::connect(o).await.expect("client connects")
}

fn wal_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".log")
            })
            .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_with_the_wal_in_its_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (data, wal, log) = (
        dir.path().join("data"),
        dir.path().join("wal"),
        dir.path().join("ternd.log"),
    );
    let wal_env = wal.to_str().unwrap();
    let env = [("TERN_SERVER_WAL_DIR", wal_env)];
    let any = "127.0.0.1:0".parse().unwrap();
    let daemon = RealDaemon::spawn(&data, any, &env, &log).expect("ternd starts");
    let alice = connect(&daemon, ALICE).await;
    for i in 0..20 {
        // Bob has no device online: each ACK is a pseudo-ACK, durable.
        alice
            .send(BOB, 5, 0, tagged(ALICE, i))
            .await
            .expect("stored");
    }
    let addr = daemon.addr;
    daemon.kill();
    drop(alice);
    assert!(wal_files(&wal) > 0, "the WAL is in the configured folder");
    assert_eq!(
        wal_files(&data.join("db")),
        0,
        "and not in the database folder"
    );

    // Started without the setting, it would look for the log in the wrong place.
    let refused = RealDaemon::spawn(&data, any, &[], &log).map(|_| ());
    assert!(
        refused.is_err(),
        "ternd must refuse to open without its WAL"
    );
    let printed = std::fs::read_to_string(&log).unwrap();
    assert!(
        printed.contains("write-ahead log") && printed.contains("wal_dir"),
        "the refusal says why and what to do: {printed}"
    );

    let daemon = RealDaemon::spawn_at(&data, addr, &env, &log);
    let mut bob = connect(&daemon, BOB).await;
    for i in 0..20 {
        let e = next_message(&mut bob, 10).await;
        assert_eq!(
            untag(&payload_of(&e)),
            (ALICE, i),
            "every acknowledged message, in order"
        );
    }
    daemon.kill();
}
