//! Writes nothing waits for (a device's delivery checkpoint, a DELIVERED
//! receipt) go with the next batch that must be durable, or after
//! `checkpoint_delay` / `receipt_delay` (`docs/design.md`, "Writes nothing
//! waits for"): at a chat rate that saves a commit cycle per message, and
//! a crash that loses them only sends a device entries it drops as
//! duplicates, and issues their receipts again.

use std::time::Duration;

use tern_core::broker::BrokerConfig;
use tern_core::store::Store;
use tern_sim::pair::{entries, Pair};

fn pair(delay: Duration) -> (Pair, usize, usize) {
    let mut net = Pair::new(BrokerConfig {
        checkpoint_delay: delay,
        receipt_delay: delay.min(Duration::from_millis(10)),
        ..BrokerConfig::default()
    });
    let alice = net.connect(1, 1, |_| {});
    let bob = net.connect(2, 1, |_| {});
    net.settle();
    (net, alice, bob)
}

/// The durable checkpoint of device 1 of `user`.
fn durable_checkpoint(net: &Pair, user: u64) -> u64 {
    net.store
        .devices(user)
        .unwrap()
        .into_iter()
        .find(|(d, _)| *d == 1)
        .map_or(0, |(_, s)| s.checkpoint)
}

/// Commits while Alice sends Bob `n` messages 100 ms apart (a chat rate
/// for one pair), each settled before the next; checks each arrived once
/// and its DELIVERED receipt came back.
fn commits_for(net: &mut Pair, alice: usize, bob: usize, n: u64) -> u64 {
    let before = net.broker.stats().commits;
    let (mut got, mut receipts) = (Vec::new(), 0);
    for _ in 0..n {
        net.send(alice, 2, 1);
        let ev = net.step_for(Duration::from_millis(100));
        got.extend(entries(&ev[bob]));
        // Alice's entries are Bob's DELIVERED receipts.
        receipts += entries(&ev[alice]).len();
    }
    assert_eq!(
        got,
        (1..=n).collect::<Vec<_>>(),
        "every message arrives once"
    );
    assert_eq!(receipts as u64, n, "one receipt per message");
    net.broker.stats().commits - before
}

#[test]
fn checkpoints_ride_with_the_next_batch_at_a_chat_rate() {
    let (mut eager, a, b) = pair(Duration::ZERO);
    let eager_commits = commits_for(&mut eager, a, b, 20);
    let (mut lazy, a, b) = pair(Duration::from_secs(1));
    let lazy_commits = commits_for(&mut lazy, a, b, 20);
    assert!(
        lazy_commits * 3 <= eager_commits * 2,
        "batches saved: {lazy_commits} commits against {eager_commits}"
    );
    assert!(lazy_commits >= 20, "each message is still committed");
}

/// Milliseconds from Bob's delivery of one message to Alice's receipt.
fn receipt_latency(delay: Duration) -> u64 {
    let (mut net, alice, bob) = pair(delay);
    net.send(alice, 2, 1);
    let mut delivered_at = None;
    for ms in 0..200u64 {
        let ev = net.step_for(Duration::from_millis(1));
        if !entries(&ev[bob]).is_empty() {
            delivered_at = Some(ms);
        }
        if !entries(&ev[alice]).is_empty() {
            return ms - delivered_at.expect("the receipt follows the delivery");
        }
    }
    panic!("no receipt within 200 ms");
}

#[test]
fn a_receipt_waits_no_longer_than_its_delay() {
    let at_once = receipt_latency(Duration::ZERO);
    let waited = receipt_latency(Duration::from_secs(1));
    assert!(
        waited >= at_once && waited <= at_once + 10 + 1,
        "receipt {waited} ms after the delivery, {at_once} ms without the delay"
    );
}

#[test]
fn a_crash_that_loses_a_waiting_receipt_issues_it_again() {
    let (mut net, alice, bob) = pair(Duration::from_secs(1));
    net.send(alice, 2, 1);
    // Until Bob has the message and its receipt is staged, not durable.
    let mut delivered = false;
    for _ in 0..100 {
        let ev = net.step_for(Duration::from_millis(1));
        delivered |= !entries(&ev[bob]).is_empty();
        assert!(entries(&ev[alice]).is_empty(), "crash before the receipt");
        if delivered && net.broker.stats().commits >= 1 && net.broker.poll_timeout().is_some() {
            let head = net.store.inbox_meta(1).unwrap().map_or(0, |m| m.head);
            if head == 0 && durable_checkpoint(&net, 2) == 0 {
                break;
            }
        }
    }
    assert!(delivered);
    net.restart_broker();
    let (mut receipts, mut again) = (0, Vec::new());
    for _ in 0..40 {
        let ev = net.step_for(Duration::from_millis(250));
        receipts += entries(&ev[alice]).len();
        again.extend(entries(&ev[bob]));
    }
    assert!(again.is_empty(), "Bob is not given the message twice");
    assert_eq!(receipts, 1, "Alice gets the receipt, once");
    assert_eq!(durable_checkpoint(&net, 2), 1);
}

/// Alice sends Bob three messages and reads his DELIVERED receipt; returns
/// the pair and Alice's inbox head, which her durable checkpoint has not
/// reached: nothing else is staged, so it waits.
fn receipt_read_checkpoint_waiting() -> (Pair, usize, usize, u64) {
    let (mut net, alice, bob) = pair(Duration::from_secs(1));
    net.send(alice, 2, 3);
    assert_eq!(entries(&net.settle()[bob]), vec![1, 2, 3]);
    net.settle();
    let head = net.store.inbox_meta(1).unwrap().unwrap().head;
    assert!(
        durable_checkpoint(&net, 1) < head,
        "Alice's checkpoint waits"
    );
    (net, alice, bob, head)
}

#[test]
fn a_checkpoint_alone_is_written_once_its_delay_ends() {
    let (mut net, _, _, alice_head) = receipt_read_checkpoint_waiting();
    net.step_for(Duration::from_millis(1100));
    assert_eq!(
        durable_checkpoint(&net, 2),
        3,
        "Bob's checkpoint is durable"
    );
    assert_eq!(
        durable_checkpoint(&net, 1),
        alice_head,
        "and Alice's, after the delay"
    );
}

#[test]
fn a_crash_before_the_checkpoint_is_written_sends_nothing_twice() {
    let (mut net, alice, bob, alice_head) = receipt_read_checkpoint_waiting();
    // The broker crashes: the waiting checkpoint is gone.
    net.restart_broker();
    net.now += Duration::from_secs(2);
    let mut again = Vec::new();
    for _ in 0..50 {
        let ev = net.settle();
        again.extend(entries(&ev[alice]));
        again.extend(entries(&ev[bob]));
        net.now += Duration::from_millis(500);
    }
    assert!(again.is_empty(), "nothing delivered twice: {again:?}");
    // Both devices logged in again and were sent what the store said they
    // had not acknowledged; their acknowledgements are durable now.
    assert_eq!(durable_checkpoint(&net, 1), alice_head);
    assert_eq!(durable_checkpoint(&net, 2), 3);
    // The session works after the crash.
    net.send(alice, 2, 1);
    assert_eq!(entries(&net.settle()[bob]), vec![4]);
}
