//! A flood of junk is not reflected: the broker answers bad datagrams with
//! stateless ERRORs only within a global budget, and counts the rest; a
//! datagram over the receive limit is not answered at all.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tern_core::auth::TokenKeys;
use tern_core::broker::{Broker, BrokerConfig};
use tern_core::store::MemStore;
use tern_core::time::Time;

fn broker(rate: f64) -> Broker<MemStore> {
    let cfg = BrokerConfig {
        stateless_reply_rate: rate,
        ..BrokerConfig::default()
    };
    let keys = TokenKeys::new(b"k".to_vec(), vec![]);
    Broker::new(cfg, Arc::new(MemStore::new()), keys, 1_700_000_000_000, 1)
}

/// A datagram that does not decode (bad trailer), large enough to be answered.
fn junk(i: u32) -> Bytes {
    let mut v = vec![1u8, 0];
    v.extend_from_slice(&[0xee; 40]);
    v.extend_from_slice(&i.to_be_bytes());
    Bytes::from(v)
}

fn answers(b: &mut Broker<MemStore>) -> usize {
    std::iter::from_fn(|| b.poll_transmit()).count()
}

#[test]
fn junk_beyond_the_budget_gets_no_answer_and_is_counted() {
    let mut b = broker(10.0);
    let from: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    for i in 0..50 {
        b.handle_datagram(Time::ZERO, from, junk(i));
    }
    assert_eq!(answers(&mut b), 10, "the burst allowance only");
    assert_eq!(b.stats().replies_suppressed, 40);
    assert_eq!(b.stats().malformed, 50, "every datagram is still counted");

    // The budget refills with time.
    let later = Time::ZERO + Duration::from_millis(500);
    for i in 0..50 {
        b.handle_datagram(later, from, junk(100 + i));
    }
    assert_eq!(answers(&mut b), 5, "half a second at 10 per second");
    assert_eq!(b.stats().replies_suppressed, 85);
}

#[test]
fn within_the_budget_every_bad_datagram_is_answered() {
    let mut b = broker(10_000.0);
    let from: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    for i in 0..500 {
        b.handle_datagram(Time::ZERO, from, junk(i));
    }
    assert_eq!(answers(&mut b), 500);
    assert_eq!(b.stats().replies_suppressed, 0);
}

#[test]
fn a_datagram_over_the_receive_limit_is_dropped_unread() {
    use tern_core::wire::limits::MAX_RECV_DATAGRAM;
    let mut b = broker(10_000.0);
    let from: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let sized = |len: usize| {
        let mut v = junk(0).to_vec();
        v.resize(len, 0xee);
        Bytes::from(v)
    };
    b.handle_datagram(Time::ZERO, from, sized(MAX_RECV_DATAGRAM + 1));
    assert_eq!(
        answers(&mut b),
        0,
        "no ERROR naming a length it may not know"
    );
    assert_eq!(b.stats().malformed, 1, "counted");
    b.handle_datagram(Time::ZERO, from, sized(MAX_RECV_DATAGRAM));
    assert_eq!(
        answers(&mut b),
        1,
        "the largest accepted size is read and answered"
    );
}

/// A cookieless LOGIN, as a client's first datagram is.
fn cookieless_login() -> Bytes {
    let token = Bytes::from_static(b"not checked before the cookie");
    let mut c = tern_core::client::ClientConn::new(
        tern_core::client::ClientConfig::new(token),
        Time::ZERO,
        1,
    );
    c.poll_transmit(Time::ZERO).expect("a LOGIN")
}

#[test]
fn retry_answers_to_cookieless_logins_have_their_own_budget() {
    let mut b = broker(10.0);
    let from: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let login = cookieless_login();
    for _ in 0..50 {
        b.handle_datagram(Time::ZERO, from, login.clone());
    }
    assert_eq!(answers(&mut b), 10, "the burst allowance only");
    assert_eq!(b.stats().retries_sent, 10);
    assert_eq!(b.stats().replies_suppressed, 40);
    // Junk still gets its ERRORs: the two budgets are apart.
    for i in 0..5 {
        b.handle_datagram(Time::ZERO, from, junk(i));
    }
    assert_eq!(answers(&mut b), 5);
    // The budget refills with time.
    let later = Time::ZERO + Duration::from_millis(500);
    for _ in 0..50 {
        b.handle_datagram(later, from, login.clone());
    }
    assert_eq!(answers(&mut b), 5, "half a second at 10 per second");
}
