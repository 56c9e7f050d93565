//! A data folder written by the previous ternd (store format 1, before
//! conversations; `tests/fixtures/data-format-v1.tar.gz`, made at main
//! 5bd3c92 as `tests/fixtures/data-format-v1.README.txt` says) is upgraded
//! in place by today's ternd: nothing stored is lost, checkpoints and
//! pending entries carry over, old devices and new ones are served, new
//! messages go into history, and the folder then carries the new format
//! marker. A folder from a newer ternd is refused with a clear error.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::process::{token, RealDaemon};
use support::*;
use tern::client::{Client, ClientOptions, ConvRef};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/data-format-v1.tar.gz"
);

fn unpack(into: &Path) -> std::path::PathBuf {
    let st = Command::new("tar")
        .arg("xzf")
        .arg(FIXTURE)
        .arg("-C")
        .arg(into)
        .status()
        .expect("tar runs");
    assert!(st.success(), "unpacking the fixture");
    into.join("data")
}

async fn client(d: &RealDaemon, user: u64, device: u32, version: u8) -> Client {
    let mut o = ClientOptions::new(d.addr, token(&d.data_dir, user, device));
    o.seal_key = d.seal_key;
    o.version = version;
    o.manual_release = false;
    Client::connect(o).await.expect("logs in")
}

/// Message texts in the order they come, until `n` arrived.
async fn texts(c: &mut Client, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = next_message(c, 10).await;
        out.push(String::from_utf8(payload_of(&m)).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_data_folder_is_upgraded_in_place_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = unpack(tmp.path());
    let log = tmp.path().join("ternd.log");
    let d = RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), &[], &log)
        .expect("today's ternd opens the old folder");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("upgraded the data folder"),
        "the upgrade is logged:\n{logged}"
    );

    // A device Bob never used gets everything still stored: messages 1
    // and 2 were deleted when his only device acknowledged them.
    let mut bob_new = client(&d, 2, 2, tern_core::wire::VERSION_2).await;
    assert_eq!(texts(&mut bob_new, 1).await, vec!["before upgrade 3"]);
    // Bob's phone (device 1, still version 1) released two of Alice's
    // three messages before the upgrade: only the third comes.
    let mut bob = client(&d, 2, 1, tern_core::wire::VERSION).await;
    assert_eq!(texts(&mut bob, 1).await, vec!["before upgrade 3"]);
    // Alice was offline: Bob's reply waits for her, after his receipt.
    let mut alice = client(&d, 1, 1, tern_core::wire::VERSION_2).await;
    assert_eq!(texts(&mut alice, 1).await, vec!["reply before upgrade"]);

    // New messages go into the conversation's history; the old ones stay
    // deliverable but predate it.
    alice
        .post(ConvRef::direct(2), 7, 0, "after upgrade".into())
        .await
        .expect("stored");
    assert_eq!(texts(&mut bob_new, 1).await, vec!["after upgrade"]);
    let page = bob_new
        .history(ConvRef::direct(1), 0, 10)
        .await
        .expect("history");
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].conv_seq, 1);
    let list = bob_new.conversations(0, 16).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].unread, 1);

    alice.close().await;
    bob.close().await;
    bob_new.close().await;
    d.terminate(Duration::from_secs(10));
    let store = open_store(&data);
    assert_eq!(
        store.opened(),
        tern::store::format::Opened::Current,
        "marker written"
    );
}

#[test]
fn a_data_folder_from_a_newer_ternd_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    {
        let s = tern::store::RocksStore::open_default(&db).expect("a new store");
        s.raw()
            .put(b"tern.format", 99u32.to_be_bytes())
            .expect("marker written");
    }
    let err = tern::store::RocksStore::open_default(&db).expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("newer ternd")
            && text.contains("99")
            && text.contains(&tern::store::format::FORMAT.to_string()),
        "{text}"
    );
}
