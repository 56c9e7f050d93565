//! Inbox entries are deleted once every registered device has passed them,
//! or when the retention time ends even if a device never read them.

use std::time::Duration;

use tern_core::broker::BrokerConfig;
use tern_core::store::Store;
use tern_sim::pair::Pair;

fn pair(retention: Duration) -> Pair {
    Pair::new(BrokerConfig {
        retention,
        ..BrokerConfig::default()
    })
}

#[test]
fn entries_read_by_every_device_are_trimmed() {
    let mut net = pair(Duration::from_secs(3600));
    let a = net.connect(1, 1, |_| {});
    let b1 = net.connect(2, 1, |_| {});
    let b2 = net.connect(2, 2, |_| {});
    net.settle();
    net.send(a, 2, 1);
    net.settle();
    // Both devices of user 2 got and acknowledged it (plus alice's receipts).
    let meta = net.store.inbox_meta(2).unwrap().unwrap();
    assert_eq!(meta.head, 1);
    net.now += Duration::from_secs(1);
    net.settle();
    let meta = net.store.inbox_meta(2).unwrap().unwrap();
    assert_eq!(
        meta.trimmed, 1,
        "both devices passed entry 1, so it is deleted"
    );
    assert!(net.store.read_inbox(2, 0, 10).unwrap().is_empty());
    let _ = (b1, b2);
}

#[test]
fn entry_waiting_for_an_absent_device_stays_until_retention_ends() {
    let mut net = pair(Duration::from_secs(120));
    let a = net.connect(1, 1, |_| {});
    let b1 = net.connect(2, 1, |_| {});
    let b2 = net.connect(2, 2, |_| {});
    net.settle();
    // Device 2 of user 2 goes away for good.
    net.clients.remove(b2);
    net.send(a, 2, 1);
    net.settle();
    net.now += Duration::from_secs(60);
    net.send(a, 2, 1);
    net.settle();
    assert_eq!(
        net.store.read_inbox(2, 0, 10).unwrap().len(),
        2,
        "kept for the absent device"
    );
    // Past retention, the next activity on the inbox sweeps the old entries.
    net.now += Duration::from_secs(100);
    net.send(a, 2, 1);
    net.settle();
    let left: Vec<u64> = net
        .store
        .read_inbox(2, 0, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        left,
        vec![2, 3],
        "entry 1 is older than 120 s and was deleted"
    );
    let _ = b1;
}
