//! A store that fails its commits (a full or failing disk): the broker
//! acknowledges nothing, tells the senders why (ERROR 12, transient), and
//! once commits work again every operation is stored exactly once and
//! delivered in order.

use tern_core::broker::BrokerConfig;
use tern_core::client::ClientEvent;
use tern_core::store::Store;
use tern_core::wire::ErrorCode;
use tern_sim::pair::{entries, Pair};

fn stored(events: &[ClientEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Stored { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

fn storage_errors(events: &[ClientEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ClientEvent::ServerError(f) if f.code == ErrorCode::StorageFailure as u64))
        .count()
}

#[test]
fn failed_commits_acknowledge_nothing_and_the_retries_count_once() {
    let mut p = Pair::new(BrokerConfig::default());
    let sender = p.connect(1, 1, |_| {});
    let receiver = p.connect(2, 1, |_| {});
    p.settle();

    let commits = p.store.commits();
    p.fail_commits = true;
    p.send(sender, 2, 3);
    let during = p.settle();
    assert_eq!(
        stored(&during[sender]),
        Vec::<u64>::new(),
        "nothing acknowledged"
    );
    assert!(
        storage_errors(&during[sender]) >= 1,
        "the sender is told why"
    );
    assert_eq!(
        entries(&during[receiver]),
        Vec::<u64>::new(),
        "nothing delivered"
    );
    assert!(p.broker.stats().commit_failures >= 1);
    assert_eq!(p.store.commits(), commits, "nothing reached the store");

    p.fail_commits = false;
    let after = p.settle();
    assert_eq!(
        stored(&after[sender]),
        vec![1, 2, 3],
        "each stored once, in order"
    );
    assert_eq!(
        entries(&after[receiver]),
        vec![1, 2, 3],
        "each delivered once, in order"
    );
}

/// A version 1 device whose login was in a batch that failed to commit is
/// still known as version 1 afterwards: its own sends never put entries
/// only version 2 knows (own copies) in its timeline. Found by the
/// broker_sessions fuzz target.
#[test]
fn a_version_1_login_lost_with_a_failed_commit_keeps_version_2_entries_out() {
    let mut p = Pair::new(BrokerConfig::default());
    p.fail_commits = true;
    let sender = p.connect(1, 1, |_| {});
    let receiver = p.connect(2, 1, |_| {});
    p.settle();
    p.fail_commits = false;
    p.settle();

    p.send(sender, 2, 2);
    let after = p.settle();
    assert_eq!(stored(&after[sender]), vec![1, 2]);
    let own_copies = after[sender]
        .iter()
        .filter(|e| matches!(e, ClientEvent::Entry(d) if d.from_user == 1))
        .count();
    assert_eq!(
        own_copies, 0,
        "a version 1 device gets no copy of its own messages"
    );
    assert_eq!(entries(&after[receiver]), vec![1, 2]);
}

/// Several batches may be out for commit at once (not the default).
fn pipelined() -> BrokerConfig {
    BrokerConfig {
        max_commits_in_flight: 4,
        ..BrokerConfig::default()
    }
}

/// Hands the broker what client `i` has to send, without committing.
fn uplink(p: &mut Pair, i: usize) {
    let now = p.now;
    let (addr, c) = &mut p.clients[i];
    while let Some(d) = c.poll_transmit(now) {
        p.broker.handle_datagram(now, *addr, d);
    }
}

/// Two batches out at once (the driver writes the second while the first
/// syncs): the first fails, so the second, built on it, is void even if the
/// driver reports it; nothing is acknowledged, and the resent operations
/// are stored once each, in order.
#[test]
fn a_failed_batch_voids_the_batches_handed_out_after_it() {
    let mut p = Pair::new(pipelined());
    let sender = p.connect(1, 1, |_| {});
    let receiver = p.connect(2, 1, |_| {});
    p.settle();
    let commits = p.store.commits();
    let done = p.broker.stats().commits;

    p.send(sender, 2, 1);
    uplink(&mut p, sender);
    let first = p.broker.poll_commit().expect("the first message staged");
    p.send(sender, 2, 1);
    uplink(&mut p, sender);
    let second = p
        .broker
        .poll_commit()
        .expect("a second batch while the first is out");
    assert!(second.id > first.id);

    p.broker
        .handle_committed(p.now, first.id, Err("Input/output error".into()));
    // A driver without a fence might even have applied the second batch;
    // the broker has already dropped it.
    p.broker.handle_committed(p.now, second.id, Ok(()));
    assert_eq!(p.broker.stats().commit_failures, 1);
    assert_eq!(
        p.broker.stats().commits,
        done,
        "the late success is ignored"
    );
    assert_eq!(p.store.commits(), commits);

    let after = p.settle();
    assert_eq!(stored(&after[sender]), vec![1, 2], "stored once, in order");
    assert_eq!(entries(&after[receiver]), vec![1, 2]);
}

/// Batches out at once complete in order, each releasing its own ACKs.
#[test]
fn batches_out_at_once_release_in_order() {
    let mut p = Pair::new(pipelined());
    let sender = p.connect(1, 1, |_| {});
    let receiver = p.connect(2, 1, |_| {});
    p.settle();
    let mut out = Vec::new();
    for _ in 0..3 {
        p.send(sender, 2, 1);
        uplink(&mut p, sender);
        out.push(p.broker.poll_commit().expect("one batch per message"));
    }
    assert!(p.broker.poll_commit().is_none(), "nothing more staged");
    for c in &out {
        p.store.commit(&c.batch).unwrap();
        p.broker.handle_committed(p.now, c.id, Ok(()));
    }
    let after = p.settle();
    assert_eq!(stored(&after[sender]), vec![1, 2, 3]);
    assert_eq!(entries(&after[receiver]), vec![1, 2, 3]);
}

/// The server may send a refusal before it is durable. If it crashes
/// before the batch lands, the operation is sent again to its next
/// incarnation, which may store it: the refusal heard on the old session
/// must not settle it (found by `sim_groups` seed 59 once batches were
/// pipelined: a member's post refused before it was added, stored after).
#[test]
fn a_refusal_heard_on_a_session_that_died_settles_nothing() {
    use tern_core::wire::{ErrorFrame, Frame, Header, Packet, PacketBuilder};
    let mut p = Pair::new(BrokerConfig::default());
    let sender = p.connect(1, 1, |_| {});
    p.connect(2, 1, |_| {});
    p.settle();

    p.send(sender, 2, 1);
    let now = p.now;
    let lost = p.clients[sender].1.poll_transmit(now).expect("the SEND");
    let header = Packet::decode(lost).expect("a clear packet").header;
    let mut refusal = PacketBuilder::new(
        Header {
            packet_number: 1_000,
            ..header
        },
        1200,
    );
    refusal
        .push(&Frame::Error(ErrorFrame {
            code: ErrorCode::NoSuchConversation as u64,
            frame_type: 0,
            seq: 1,
            reason: String::new(),
        }))
        .unwrap();
    p.clients[sender].1.handle_datagram(now, refusal.finish());
    // The refusal was never durable: the broker dies without it.
    p.restart_broker();

    let after = p.settle();
    assert_eq!(stored(&after[sender]), vec![1], "{:?}", after[sender]);
    assert!(
        !after[sender]
            .iter()
            .any(|e| matches!(e, ClientEvent::Rejected { .. })),
        "{:?}",
        after[sender]
    );
    let inbox = p.store.read_inbox(2, 0, 10).unwrap();
    assert_eq!(inbox.len(), 1, "stored for the receiver, once");
}
