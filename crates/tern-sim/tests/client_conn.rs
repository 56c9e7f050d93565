//! The client session machine against a real broker over a perfect network
//! in virtual time: manual-release pulls and pings after an address change.

use std::time::Duration;

use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent, Release, ReleaseBatch};
use tern_core::time::Time;
use tern_sim::pair::{entries, Pair};

fn page_ends(events: &[ClientEvent]) -> Vec<(u64, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::PageEnd(p) => Some((p.last, p.end)),
            _ => None,
        })
        .collect()
}

/// With manual release, the PULL for the next page acknowledges the page
/// before it, so it waits for the application's release; sent earlier it
/// would start from the old checkpoint and fetch the same page forever.
#[test]
fn manual_release_holds_the_next_pull_until_the_page_is_released() {
    let mut net = Pair::new(BrokerConfig {
        page_entries: 25,
        ..BrokerConfig::default()
    });
    let alice = net.connect(1, 1, |_| {});
    net.settle();
    net.send(alice, 2, 80);
    net.settle();
    let bob = net.connect(2, 1, |c| {
        c.release = Release::ByApplication(ReleaseBatch::IMMEDIATE)
    });
    let ev = net.settle();
    assert!(
        ev[bob].iter().any(|e| matches!(
            e,
            ClientEvent::LoggedIn {
                pull_mode: true,
                ..
            }
        )),
        "a backlog of 80 is pulled: {:?}",
        ev[bob]
    );

    let mut got = entries(&ev[bob]);
    let mut pages = page_ends(&ev[bob]);
    assert_eq!(got, (1..=25).collect::<Vec<_>>(), "the first page");
    assert_eq!(
        pages,
        vec![(25, false)],
        "one page, and no second PULL before the release"
    );
    // The application is slow to store the page: nothing happens meanwhile.
    net.now += Duration::from_secs(5);
    let ev = net.settle();
    assert_eq!(entries(&ev[bob]), Vec::<u64>::new());
    assert_eq!(
        page_ends(&ev[bob]),
        vec![],
        "no PULL while the page is held"
    );

    while pages.last().is_some_and(|(_, end)| !end) {
        assert!(pages.len() < 10, "pages do not progress: {pages:?}");
        let last = pages.last().unwrap().0;
        // A partial release does not send the next PULL yet.
        net.clients[bob].1.release(net.now, last - 1);
        let ev = net.settle();
        assert_eq!(page_ends(&ev[bob]), vec![], "partial release");
        net.clients[bob].1.release(net.now, last);
        let ev = net.settle();
        let page = page_ends(&ev[bob]);
        assert_eq!(page.len(), 1, "one page per release: {page:?}");
        got.extend(entries(&ev[bob]));
        pages.extend(page);
    }
    assert_eq!(
        pages,
        vec![(25, false), (50, false), (75, false), (80, true)]
    );
    assert_eq!(
        got,
        (1..=80).collect::<Vec<_>>(),
        "every entry exactly once"
    );
    net.clients[bob].1.release(net.now, 80);
    net.settle();
    assert_eq!(net.clients[bob].1.checkpoint().seq, 80);
}

/// After the local address changes, `ping` tells the server the new address
/// at once, so pushes follow it with no application traffic.
#[test]
fn ping_after_an_address_change_moves_pushes_to_the_new_address() {
    for ping in [false, true] {
        let mut net = Pair::new(BrokerConfig::default());
        let alice = net.connect(1, 1, |_| {});
        let bob = net.connect(2, 1, |_| {});
        net.settle();
        net.clients[bob].0 = "127.0.0.1:20000".parse().unwrap();
        if ping {
            net.clients[bob].1.ping(net.now);
        }
        net.settle();
        net.send(alice, 2, 1);
        let ev = net.settle();
        let expected = if ping { vec![1] } else { vec![] };
        assert_eq!(
            entries(&ev[bob]),
            expected,
            "ping {ping}: pushed to the address the server knows"
        );
        assert_eq!(net.broker.stats().migrations, u64::from(ping));
    }
}

/// A ping while logging in resends the LOGIN at once (from the new address)
/// instead of waiting for the login backoff.
#[test]
fn ping_while_logging_in_resends_the_login_at_once() {
    let mut cfg = ClientConfig::new(Pair::token(1, 1));
    cfg.login_copies = 2;
    let mut c = ClientConn::new(cfg, Time::ZERO, 7);
    let first = c.poll_transmit(Time::ZERO).expect("first LOGIN");
    assert!(c.poll_transmit(Time::ZERO).is_none());
    let gap = Time::ZERO + Duration::from_millis(10);
    assert_eq!(c.poll_timeout(), Some(gap), "its copy is due");
    assert_eq!(c.poll_transmit(gap), Some(first), "the same datagram again");
    let t = Time::ZERO + Duration::from_millis(100);
    assert!(c.poll_transmit(t).is_none(), "backoff");
    c.ping(t);
    assert!(c.poll_transmit(t).is_some(), "LOGIN again at once");
    assert!(c.poll_transmit(t).is_none());
}

/// A login exchange on a lossy link fails only when every copy or every
/// answer is lost; with one copy (`login_copies = 1`) nothing is repeated.
#[test]
fn each_login_datagram_goes_out_login_copies_times() {
    for copies in [1u8, 2, 3] {
        let mut cfg = ClientConfig::new(Pair::token(1, 1));
        cfg.login_copies = copies;
        let mut c = ClientConn::new(cfg, Time::ZERO, 7);
        let mut sent = Vec::new();
        let mut now = Time::ZERO;
        while now < Time::ZERO + Duration::from_millis(400) {
            while let Some(d) = c.poll_transmit(now) {
                sent.push(d);
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(sent.len(), usize::from(copies), "copies {copies}");
        assert!(sent.windows(2).all(|w| w[0] == w[1]), "identical copies");
    }
}

/// A NOTIFY from the old session, arriving while the client logs in again
/// (the server has not noticed that session is gone), starts no PULL: such
/// a PULL would carry the old session's point into the new one, acknowledge
/// entries the server is about to send again, and the client would then
/// pull forever for entries the server no longer sends (simulator seed 128
/// of `devices_agree_through_loss_crashes_moves_and_long_absences`, with
/// two login copies, did exactly that).
#[test]
fn a_notify_while_logging_in_starts_no_pull() {
    use tern_core::wire::{Frame, Header, Packet};
    let mut c = ClientConn::new(ClientConfig::new(Pair::token(1, 1)), Time::ZERO, 7);
    assert!(c.poll_transmit(Time::ZERO).is_some(), "LOGIN");
    let notify = Packet {
        header: Header {
            session_id: 77,
            packet_number: 9,
            version: tern_core::wire::VERSION,
        },
        frames: vec![Frame::Notify(500)],
    }
    .encode();
    let t = Time::ZERO + Duration::from_millis(50);
    c.handle_datagram(t, notify);
    // The new session: nothing waiting, so nothing to pull.
    let ok = Packet {
        header: Header {
            session_id: 88,
            packet_number: 1,
            version: tern_core::wire::VERSION,
        },
        frames: vec![Frame::LoginOk(tern_core::wire::LoginOk {
            user: 1,
            device: 1,
            epoch: 5,
            head: 0,
            checkpoint: 0,
            next_send_seq: 1,
            heartbeat_ms: 15_000,
            idle_timeout_ms: 45_000,
            server_time_ms: 0,
        })],
    }
    .encode();
    c.handle_datagram(t, ok);
    let later = Time::ZERO + Duration::from_millis(60);
    while let Some(d) = c.poll_transmit(later) {
        let p = Packet::decode(d).expect("clear");
        assert!(
            !p.frames.iter().any(|f| matches!(f, Frame::Pull(_))),
            "no PULL carried into the new session: {p:?}"
        );
    }
}
