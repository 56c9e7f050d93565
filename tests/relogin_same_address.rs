//! A client process that restarts on the same socket, while the daemon still
//! holds the session of the process before it, logs in again at once: its
//! packet numbers start again at 1, below what the old session has seen,
//! and the daemon must neither ignore it until that session idles out (45 s)
//! nor let a late copy of an old LOGIN replace a live session
//! (`proto-spec/flows.md`, "Login", server step 3). Real sockets, a real
//! daemon in this process, clear and sealed logins.

mod support;

use std::time::{Duration, Instant};

use support::raw_client::RawClient;
use support::*;
use tern::config::SealPolicyName;
use tern_core::client::Outgoing;

const ALICE: u64 = 1;
const BOB: u64 = 2;

/// Sends Bob `n` messages one at a time, each acknowledged before the next:
/// at least one datagram each, so the session's highest packet number is
/// well above what a restarted process starts from.
fn send_one_at_a_time(c: &mut RawClient, n: usize) {
    for i in 0..n {
        let op = Outgoing::Send {
            to: BOB,
            conv: 1,
            msg_type: 0,
            payload: format!("m{i}").into(),
        };
        c.conn.submit(c.now(), op).expect("room in the queue");
        assert!(
            c.run_until(Duration::from_secs(10), |c| c.conn.pending() == 0),
            "message {i} acknowledged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_restarted_on_the_same_socket_logs_in_at_once() {
    let d = Daemon::start_with(|c| c.seal.policy = SealPolicyName::Optional).await;
    for sealed in [false, true] {
        let (addr, token) = (d.addr, d.token(ALICE, 1));
        let key = d.seal_key.filter(|_| sealed);
        let waited = tokio::task::spawn_blocking(move || {
            let mut c = RawClient::new(addr, token.clone(), key, 1);
            assert!(c.logged_in(), "sealed {sealed}: first login");
            send_one_at_a_time(&mut c, 20);
            c.restart(token, key, 2);
            let start = Instant::now();
            let again = c.run_until(Duration::from_secs(10), |c| c.conn.is_active());
            again.then(|| start.elapsed())
        })
        .await
        .unwrap();
        assert!(
            waited.is_some_and(|w| w < Duration::from_secs(2)),
            "sealed {sealed}: logged in again after {waited:?}, not at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_copy_of_a_login_leaves_its_session_alone() {
    let d = Daemon::start_with(|c| c.seal.policy = SealPolicyName::Optional).await;
    let mut bob = d.client(BOB, 1).await;
    let (addr, token) = (d.addr, d.token(ALICE, 1));
    tokio::task::spawn_blocking(move || {
        let mut c = RawClient::new(addr, token, None, 1);
        assert!(c.logged_in());
        send_one_at_a_time(&mut c, 3);
        // Every LOGIN it sent (session id 0), arriving again late.
        let logins: Vec<_> = c
            .sent
            .iter()
            .filter(|p| p.get(2..10) == Some(&[0u8; 8][..]))
            .cloned()
            .collect();
        assert!(!logins.is_empty());
        for l in &logins {
            c.inject(l);
        }
        // The session still works, and was not replaced.
        send_one_at_a_time(&mut c, 1);
        assert!(c.conn.is_active());
        assert!(
            !c.events.iter().any(|e| matches!(
                e,
                tern_core::client::ClientEvent::Kicked { .. }
                    | tern_core::client::ClientEvent::Disconnected
            )),
            "{:?}",
            c.events
        );
    })
    .await
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(payload_of(&next_message(&mut bob, 10).await));
    }
    assert_eq!(got, [b"m0", b"m1", b"m2", b"m0"]);
}
