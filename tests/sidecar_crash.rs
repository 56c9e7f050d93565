//! The sidecar's outbox and idempotency keys across crashes, against a
//! real `ternd` and real sidecar processes killed with SIGKILL: whatever
//! the sidecar accepted (202) reaches the receiver exactly once, in
//! order; a repeated idempotency key never sends twice, across restarts;
//! a `ternd` restart under the sidecar loses and repeats nothing.

mod support;

use std::time::Duration;

use support::sidecar::{ack, read_events, send, texts, wait_status, Lab};
use tern_lab::http::HttpClient;

/// Reads every message the receiver's sidecar streams until `want` came,
/// acknowledging as it goes, then checks that nothing more comes.
fn receive_all(b: &mut HttpClient, want: usize) -> Vec<String> {
    let mut s = b.events("/v1/events", None).unwrap();
    let mut got = Vec::new();
    while got.len() < want {
        let batch = read_events(&mut s, 1, 20);
        assert_eq!(ack(b, batch[0].id).status, 200);
        got.extend(batch);
    }
    match s.next(Duration::from_millis(700)) {
        Err(_) => {}
        Ok(extra) => panic!("more than expected: {extra:?}"),
    }
    texts(&got)
}

#[test]
fn sidecar_sigkilled_with_messages_in_its_outbox_sends_them_all_once() {
    let mut lab = Lab::start();
    let mut alice = lab.sidecar(1, 1, "alice");
    let bob = lab.sidecar(2, 1, "bob");
    let mut a = alice.client();

    // Messages wait in the outbox while the server is away...
    lab.kill_daemon();
    for i in 0..20 {
        let r = send(&mut a, 2, &format!("q{i}"), None, "queued");
        assert_eq!(r.status, 202);
        assert_eq!(r.json()["status"], "queued");
    }
    assert_eq!(a.get("/v1/status").unwrap().json()["outbox_depth"], 20);
    // ...and the sidecar dies with them there. It comes back while the
    // server is still away, and takes more.
    alice.kill().unwrap();
    alice.restart().unwrap();
    let mut a = alice.client();
    assert_eq!(a.get("/v1/status").unwrap().json()["outbox_depth"], 20);
    for i in 20..25 {
        assert_eq!(
            send(&mut a, 2, &format!("q{i}"), None, "queued").status,
            202
        );
    }
    alice.kill().unwrap();
    lab.restart_daemon();
    alice.restart().unwrap();
    let mut a = alice.client();
    wait_status(&mut a, "the outbox drains", 30, |s| s["outbox_depth"] == 0);

    // Then, SIGKILLed in the middle of a stream of sends: every message it
    // accepted arrives; one it was accepting when killed at most once.
    let mut accepted = 0;
    for i in 0..200 {
        if i == 120 {
            alice.kill().unwrap();
            break;
        }
        let r = send(&mut a, 2, &format!("k{i}"), None, "queued");
        assert_eq!(r.status, 202);
        accepted += 1;
    }
    alice.restart().unwrap();
    let mut a = alice.client();
    wait_status(&mut a, "the outbox drains", 30, |s| s["outbox_depth"] == 0);

    let mut b = bob.client();
    let got = receive_all(&mut b, 25 + accepted);
    let mut want: Vec<String> = (0..25).map(|i| format!("q{i}")).collect();
    want.extend((0..accepted).map(|i| format!("k{i}")));
    assert_eq!(got, want, "every accepted message, once, in order");
}

#[test]
fn an_idempotency_key_never_sends_twice_across_restarts() {
    let mut lab = Lab::start();
    let mut alice = lab.sidecar(1, 1, "alice");
    let bob = lab.sidecar(2, 1, "bob");
    let mut a = alice.client();

    let first = send(&mut a, 2, "pay 10", Some("order-1"), "stored");
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let first = first.json();
    assert_eq!(first["status"], "stored");
    assert_eq!(first["duplicate"], false);

    // Queued while the server is away, then the sidecar is killed.
    lab.kill_daemon();
    let queued = send(&mut a, 2, "pay 20", Some("order-2"), "queued").json();
    assert_eq!(queued["status"], "queued");
    alice.kill().unwrap();
    lab.restart_daemon();
    alice.restart().unwrap();
    let mut a = alice.client();

    // The app retries both after the restart: nothing is sent again.
    let again = send(&mut a, 2, "pay 10", Some("order-1"), "stored").json();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["seq"], first["seq"]);
    let again2 = send(&mut a, 2, "pay 20", Some("order-2"), "stored").json();
    assert_eq!(again2["duplicate"], true);
    assert_eq!(again2["id"], queued["id"]);
    assert_eq!(again2["status"], "stored");
    // The same key with another request is refused, naming the field.
    let clash = send(&mut a, 2, "pay 99", Some("order-1"), "queued");
    assert_eq!(clash.status, 409);
    assert_eq!(clash.json()["field"], "idempotency_key");
    // The record is still there after the restart.
    let id = first["id"].as_u64().unwrap();
    let rec = a.get(&format!("/v1/messages/{id}")).unwrap().json();
    assert_eq!(rec["idempotency_key"], "order-1");

    let mut b = bob.client();
    assert_eq!(receive_all(&mut b, 2), vec!["pay 10", "pay 20"]);
}

#[test]
fn a_ternd_restart_under_the_sidecar_loses_and_repeats_nothing() {
    let mut lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let bob = lab.sidecar(2, 1, "bob");
    let mut a = alice.client();
    let mut b = bob.client();
    for i in 0..20 {
        assert_eq!(
            send(&mut a, 2, &format!("before{i}"), None, "stored").status,
            200
        );
    }
    lab.kill_daemon();
    for i in 0..20 {
        assert_eq!(
            send(&mut a, 2, &format!("during{i}"), None, "queued").status,
            202
        );
    }
    lab.restart_daemon();
    wait_status(&mut a, "alice logs in again", 60, |s| {
        s["connected"] == true && s["outbox_depth"] == 0
    });
    wait_status(&mut b, "bob logs in again", 60, |s| s["connected"] == true);
    let mut want: Vec<String> = (0..20).map(|i| format!("before{i}")).collect();
    want.extend((0..20).map(|i| format!("during{i}")));
    assert_eq!(receive_all(&mut b, 40), want);
}
