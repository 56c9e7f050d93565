//! The client's delivery state in the core, against a real broker over a
//! perfect network in virtual time: no entry handed twice across a
//! re-login, the server told nothing before the checkpoint is saved, and
//! summary pages collected into one answer.

use std::time::Duration;

use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientEvent, Outgoing, Release, ReleaseBatch};
use tern_core::store::Store;
use tern_sim::pair::{entries, Pair};

/// The library's mode: the application releases, at once.
fn app_releases(c: &mut ClientConfig) {
    c.release = Release::ByApplication(ReleaseBatch::IMMEDIATE);
}

/// Settles twice: an ACK owed after the first round (coalesced) goes out in
/// the second. Then lets the checkpoint it moved be written: alone, it
/// waits up to `checkpoint_delay` for company.
fn settle_acks(net: &mut Pair) {
    net.settle();
    net.settle();
    net.step_for(BrokerConfig::default().checkpoint_delay + Duration::from_millis(10));
}

/// The checkpoint the server holds for (user, device).
fn server_checkpoint(net: &Pair, user: u64, device: u32) -> u64 {
    let devices = net.store.devices(user).expect("memory store");
    devices
        .iter()
        .find(|(d, _)| *d == device)
        .map_or(0, |(_, s)| s.checkpoint)
}

/// A re-login restarts the downlink at the server's checkpoint (what was
/// released), below what the application was handed: those entries come
/// again from the server but are not handed again, and a release of them
/// still counts.
#[test]
fn a_relogin_below_what_was_handed_hands_nothing_twice() {
    let mut net = Pair::new(BrokerConfig::default());
    let alice = net.connect(1, 1, |_| {});
    let bob = net.connect(2, 1, app_releases);
    net.settle();
    net.send(alice, 2, 5);
    let ev = net.settle();
    assert_eq!(entries(&ev[bob]), vec![1, 2, 3, 4, 5]);
    net.clients[bob].1.release(net.now, 2);
    settle_acks(&mut net);
    assert_eq!(server_checkpoint(&net, 2, 1), 2);

    net.restart_broker();
    let now = net.now;
    net.clients[bob].1.ping(now);
    let ev = net.settle();
    assert!(
        ev[bob]
            .iter()
            .any(|e| matches!(e, ClientEvent::LoggedIn { checkpoint: 2, .. })),
        "bob logged in again from checkpoint 2: {:?}",
        ev[bob]
    );
    assert_eq!(entries(&ev[bob]), Vec::<u64>::new(), "3..=5 not again");

    net.clients[bob].1.release(net.now, 5);
    net.send(alice, 2, 1);
    let ev = net.settle();
    assert_eq!(entries(&ev[bob]), vec![6], "only the new one");
    settle_acks(&mut net);
    assert_eq!(server_checkpoint(&net, 2, 1), 5);
}

/// With a persisted checkpoint, released entries are acknowledged only
/// once the driver has confirmed the checkpoint that covers them is saved.
#[test]
fn the_server_is_told_nothing_before_the_checkpoint_is_saved() {
    let mut net = Pair::new(BrokerConfig::default());
    let alice = net.connect(1, 1, |_| {});
    let bob = net.connect(2, 1, |c| {
        app_releases(c);
        c.persist = true;
    });
    net.settle();
    // The first login: a new inbox, saved at 0.
    let first = net.clients[bob].1.poll_persist().expect("the new epoch");
    assert_eq!(first.seq, 0);
    net.clients[bob].1.persisted(net.now, first);

    net.send(alice, 2, 3);
    net.settle();
    net.clients[bob].1.release(net.now, 3);
    settle_acks(&mut net);
    assert_eq!(server_checkpoint(&net, 2, 1), 0, "not saved yet");
    let cp = net.clients[bob]
        .1
        .poll_persist()
        .expect("a checkpoint to save");
    assert_eq!((cp.epoch, cp.seq), (first.epoch, 3));
    assert_eq!(
        net.clients[bob].1.poll_persist(),
        Some(cp),
        "until confirmed"
    );

    net.clients[bob].1.persisted(net.now, cp);
    settle_acks(&mut net);
    assert_eq!(net.clients[bob].1.poll_persist(), None);
    assert_eq!(server_checkpoint(&net, 2, 1), 3);
}

/// Summary pages are asked for with the previous page's cursor until the
/// last, and come as one answer.
#[test]
fn summary_pages_come_as_one_answer() {
    let mut net = Pair::new(BrokerConfig::default());
    let alice = net.connect(1, 1, |_| {});
    // Bob releases nothing: every entry stays unread on the server.
    let bob = net.connect(2, 1, app_releases);
    net.settle();
    let convs = 70u64;
    for conv in 1..=convs {
        let op = Outgoing::Send {
            to: 2,
            conv,
            msg_type: 0,
            payload: "x".into(),
        };
        net.clients[alice].1.submit(net.now, op).expect("room");
    }
    net.settle();
    net.clients[bob].1.request_summary(net.now);
    net.clients[bob].1.request_summary(net.now); // served by the same answer
    let ev = net.settle();
    let answers: Vec<_> = ev[bob]
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Summaries(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    let all = answers[0];
    let got: Vec<u64> = all.convs.iter().map(|s| s.conv).collect();
    assert_eq!(got, (1..=convs).collect::<Vec<_>>());
    assert_eq!((all.pages, all.end.next_cursor), (2, 0));
    assert_eq!((all.end.conv_count, all.end.total_unread), (convs, convs));
}
