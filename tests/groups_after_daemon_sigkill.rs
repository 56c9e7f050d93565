//! Groups against the real `ternd` on real RocksDB, SIGKILLed and
//! restarted on the same data folder: Alice creates a group with Bob and
//! Carol through the client library, everyone posts, the daemon dies and
//! comes back, and the group is still there, exactly once: every member
//! device gets every group message once and in group order, Alice's second
//! device included. Then Alice removes Carol: Carol's last entry is her
//! removal, her posts are refused, and her history ends at it.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::process::{self, RealDaemon};
use tern::client::{
    group, Client, ClientError, ClientOptions, Entry, Event, GroupEventKind, GroupRole, RecordBody,
    SyncBody,
};
use tern_core::wire::ErrorCode;

const ALICE: u64 = 1;
const BOB: u64 = 2;
const CAROL: u64 = 3;
const ENV: &[(&str, &str)] = &[
    ("TERN_TIMERS_HEARTBEAT", "1s"),
    ("TERN_TIMERS_IDLE_TIMEOUT", "3s"),
];

async fn connect(d: &RealDaemon, data: &std::path::Path, user: u64, dev: u32) -> Client {
    let mut o = ClientOptions::new(d.addr, process::token(data, user, dev));
    o.seal_key = d.seal_key;
    o.manual_release = false;
    Client::connect(o).await.expect("client connects")
}

/// The group's entries `c` receives until it has seen `conv_seq` `upto`,
/// as (conv_seq, text or "+user"/"-user").
async fn group_entries(c: &mut Client, g: u64, upto: u64) -> Vec<(u64, String)> {
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut out: Vec<(u64, String)> = Vec::new();
    while out.last().map_or(0, |(s, _)| *s) < upto {
        let e: Entry = match tokio::time::timeout_at(end, c.recv()).await {
            Ok(Some(Event::Entry(e))) => e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("client stopped"),
            Err(_) => panic!("{:?} stalled at {out:?}", c.identity()),
        };
        if e.conv != group(g) {
            continue;
        }
        let what = match e.body {
            SyncBody::Message { payload, .. } => String::from_utf8_lossy(&payload).into_owned(),
            SyncBody::Member(ev) if ev.kind.ends_membership() => format!("-{}", ev.user),
            SyncBody::Member(ev) => format!("+{}", ev.user),
            other => panic!("unexpected {other:?}"),
        };
        out.push((e.conv_seq, what));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_survives_sigkill_exactly_once_and_a_removed_member_stops_at_its_removal() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("ternd.log");
    let daemon =
        RealDaemon::spawn(&data, "127.0.0.1:0".parse().unwrap(), ENV, &log).expect("ternd starts");
    let addr = daemon.addr;
    let alice1 = connect(&daemon, &data, ALICE, 1).await;
    let mut alice2 = connect(&daemon, &data, ALICE, 2).await;
    let bob = connect(&daemon, &data, BOB, 1).await;
    let mut carol = connect(&daemon, &data, CAROL, 1).await;

    let g = alice1.create_group(&[BOB, CAROL]).await.expect("created");
    let conv = group(g);
    bob.post(conv, 0, 0, Bytes::from("b1")).await.unwrap();
    carol.post(conv, 0, 0, Bytes::from("c1")).await.unwrap();

    daemon.kill();
    let daemon = tokio::task::spawn_blocking({
        let (data, log) = (data.clone(), log.clone());
        move || RealDaemon::spawn_at(&data, addr, ENV, &log)
    })
    .await
    .unwrap();

    // The membership came back from RocksDB: Bob may still post.
    bob.post(conv, 0, 0, Bytes::from("b2")).await.unwrap();
    let want: Vec<(u64, String)> = [
        (1, "+1"),
        (2, "+2"),
        (3, "+3"),
        (4, "b1"),
        (5, "c1"),
        (6, "b2"),
    ]
    .into_iter()
    .map(|(s, t)| (s, t.to_string()))
    .collect();
    assert_eq!(
        group_entries(&mut alice2, g, 6).await,
        want,
        "Alice's other device"
    );
    assert_eq!(group_entries(&mut carol, g, 6).await, want[2..].to_vec());

    let page = alice1.members(g, 0, 64).await.expect("members");
    let roles: Vec<(u64, GroupRole)> = page.members.iter().map(|m| (m.user, m.role)).collect();
    assert_eq!(
        roles,
        vec![
            (ALICE, GroupRole::Owner),
            (BOB, GroupRole::Member),
            (CAROL, GroupRole::Member)
        ]
    );
    assert!(page.end.complete);

    // Bob is no admin: he may not remove Carol; Alice may.
    match bob.remove_members(g, &[CAROL]).await {
        Err(ClientError::Rejected(code)) => assert_eq!(code, ErrorCode::NotPermitted as u64),
        other => panic!("expected NotPermitted, got {other:?}"),
    }
    alice1.remove_members(g, &[CAROL]).await.unwrap();
    bob.post(conv, 0, 0, Bytes::from("after")).await.unwrap();
    match carol.post(conv, 0, 0, Bytes::from("let me in")).await {
        Err(ClientError::Rejected(code)) => {
            assert_eq!(code, ErrorCode::NoSuchConversation as u64)
        }
        other => panic!("expected NoSuchConversation, got {other:?}"),
    }
    assert_eq!(
        group_entries(&mut carol, g, 7).await,
        vec![(7, "-3".to_string())],
        "Carol's last group entry is her removal"
    );
    assert_eq!(
        group_entries(&mut alice2, g, 8).await,
        vec![(7, "-3".to_string()), (8, "after".to_string())]
    );
    let hist = carol.history(conv, 0, 64).await.expect("history");
    let seqs: Vec<u64> = hist.records.iter().map(|r| r.conv_seq).collect();
    assert_eq!(
        seqs,
        vec![3, 4, 5, 6, 7],
        "her stretch of the group, no further"
    );
    assert!(matches!(
        hist.records.last().map(|r| &r.body),
        Some(RecordBody::Member(e)) if e.kind == GroupEventKind::Removed
    ));
    daemon.terminate(Duration::from_secs(10));
}
