//! A store that fails its commits (a full or failing disk): the broker
//! acknowledges nothing, tells the senders why (ERROR 12, transient), and
//! once commits work again every operation is stored exactly once and
//! delivered in order.

use tern_core::broker::BrokerConfig;
use tern_core::client::ClientEvent;
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
