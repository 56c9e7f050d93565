//! Address tokens (`proto-spec/address-tokens.md`), over a perfect network
//! in virtual time: a device that comes back from the IP address it last
//! logged in from proves that address with the token the server gave it,
//! and logs in in one round trip instead of two (no RETRY). From anywhere
//! else, or with a token that is forged, expired or made with another key,
//! it gets the RETRY as before and still logs in.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent};
use tern_core::seal::StaticKey;
use tern_sim::pair::Pair;

const TOKEN_KEY: [u8; 32] = [5; 32];

fn config() -> BrokerConfig {
    BrokerConfig {
        validate_addresses: true,
        address_token_key: Some(TOKEN_KEY),
        ..BrokerConfig::default()
    }
}

fn sealed() -> (BrokerConfig, impl Fn(&mut ClientConfig) + Clone) {
    let key = StaticKey::from_secret([9; 32]);
    let public = key.public();
    let cfg = BrokerConfig {
        seal_key: Some(key),
        ..config()
    };
    (cfg, move |c: &mut ClientConfig| c.server_key = Some(public))
}

/// Client `i`'s first login; returns the address token it was given.
fn first_login(net: &mut Pair, i: usize) -> Bytes {
    let ev = net.settle();
    assert!(
        ev[i]
            .iter()
            .any(|e| matches!(e, ClientEvent::LoggedIn { .. })),
        "logged in"
    );
    ev[i]
        .iter()
        .find_map(|e| match e {
            ClientEvent::AddressToken(t) => Some(t.clone()),
            _ => None,
        })
        .expect("an address token comes with the login")
}

/// The app restarts with `token` from its state folder, at `addr`: a new
/// connection. Returns how many datagrams it sent until it was logged in,
/// and how many RETRYs the server sent meanwhile.
fn restart_at(
    net: &mut Pair,
    i: usize,
    addr: SocketAddr,
    token: Option<Bytes>,
    tune: impl FnOnce(&mut ClientConfig),
) -> (usize, u64) {
    let mut cfg = ClientConfig::new(Pair::token(1, 1));
    cfg.address_token = token;
    tune(&mut cfg);
    net.clients[i] = (addr, ClientConn::new(cfg, net.now, 99));
    let sent_before = net.sent.len();
    let retries_before = net.broker.stats().retries_sent;
    let ev = net.settle();
    assert!(
        ev[i]
            .iter()
            .any(|e| matches!(e, ClientEvent::LoggedIn { .. })),
        "logged in again"
    );
    let sent = net.sent[sent_before..]
        .iter()
        .filter(|(a, _)| *a == addr)
        .count();
    (sent, net.broker.stats().retries_sent - retries_before)
}

fn port(net: &Pair, i: usize, port: u16) -> SocketAddr {
    SocketAddr::new(net.clients[i].0.ip(), port)
}

#[test]
fn a_returning_device_at_the_same_ip_logs_in_without_a_retry_even_from_another_port() {
    let (sealed_cfg, sealed_tune) = sealed();
    for (name, cfg, tune) in [
        ("clear", config(), None),
        ("sealed", sealed_cfg, Some(sealed_tune)),
    ] {
        let mut net = Pair::new(cfg);
        let alice = net.connect(1, 1, |c| {
            if let Some(t) = &tune {
                t(c)
            }
        });
        let token = first_login(&mut net, alice);
        assert_eq!(net.broker.stats().retries_sent, 1, "{name}: first login");
        net.now += Duration::from_secs(3600);
        // A NAT gave the device another port.
        let addr = port(&net, alice, 40_000);
        let (sent, retries) = restart_at(&mut net, alice, addr, Some(token), |c| {
            if let Some(t) = &tune {
                t(c)
            }
        });
        assert_eq!(retries, 0, "{name}: no RETRY");
        // The answer comes before the next copy is due: none goes out.
        assert_eq!(sent, 1, "{name}: one login datagram, one round trip");
        assert_eq!(net.broker.stats().address_tokens_accepted, 1, "{name}");
    }
}

#[test]
fn a_token_shown_from_another_ip_gets_a_retry_and_the_login_still_succeeds() {
    let mut net = Pair::new(config());
    let alice = net.connect(1, 1, |_| {});
    let token = first_login(&mut net, alice);
    let elsewhere: SocketAddr = "127.0.0.2:10000".parse().expect("address");
    let (sent, retries) = restart_at(&mut net, alice, elsewhere, Some(token), |_| {});
    assert_eq!(retries, 1);
    assert_eq!(sent, 2, "LOGIN, then LOGIN echoing the RETRY's cookie");
    assert_eq!(net.broker.stats().address_tokens_accepted, 0);
}

#[test]
fn an_expired_or_forged_token_gets_a_retry() {
    let mut net = Pair::new(BrokerConfig {
        address_token_lifetime: Duration::from_secs(60),
        ..config()
    });
    let alice = net.connect(1, 1, |_| {});
    let token = first_login(&mut net, alice);
    let mut forged = token.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let addr = port(&net, alice, 40_001);
    let (_, retries) = restart_at(&mut net, alice, addr, Some(forged.into()), |_| {});
    assert_eq!(retries, 1, "forged");
    net.now += Duration::from_secs(61);
    let addr = port(&net, alice, 40_002);
    let (_, retries) = restart_at(&mut net, alice, addr, Some(token), |_| {});
    assert_eq!(retries, 1, "expired");
    assert_eq!(net.broker.stats().address_tokens_accepted, 0);
}

#[test]
fn a_token_outlives_a_server_restart_with_the_same_key_but_not_a_new_key() {
    let mut net = Pair::new(config());
    let alice = net.connect(1, 1, |_| {});
    let token = first_login(&mut net, alice);
    net.restart_broker();
    let addr = port(&net, alice, 40_003);
    let (sent, retries) = restart_at(&mut net, alice, addr, Some(token.clone()), |_| {});
    assert_eq!((sent, retries), (1, 0), "same key: one round trip");

    let mut net = Pair::new(BrokerConfig {
        address_token_key: Some([6; 32]),
        ..config()
    });
    let alice = net.connect(1, 1, |_| {});
    net.settle();
    let addr = port(&net, alice, 40_004);
    let (_, retries) = restart_at(&mut net, alice, addr, Some(token), |_| {});
    assert_eq!(retries, 1, "a token of another key is refused");
}

#[test]
fn a_connection_relogging_in_echoes_the_token_it_was_given() {
    let mut net = Pair::new(config());
    let alice = net.connect(1, 1, |_| {});
    first_login(&mut net, alice);
    // The server forgets every session (a crash); the client finds out from
    // UNKNOWN_SESSION and logs in again on the same connection.
    net.restart_broker();
    let retries_before = net.broker.stats().retries_sent;
    net.send(alice, 2, 1);
    let ev = net.settle();
    assert!(
        ev[alice]
            .iter()
            .any(|e| matches!(e, ClientEvent::LoggedIn { .. })),
        "logged in again"
    );
    assert_eq!(net.broker.stats().retries_sent, retries_before, "no RETRY");
    assert_eq!(net.broker.stats().address_tokens_accepted, 1);
}

#[test]
fn no_token_is_issued_without_address_validation_or_with_tokens_off() {
    for cfg in [
        BrokerConfig {
            validate_addresses: false,
            ..config()
        },
        BrokerConfig {
            address_token_lifetime: Duration::ZERO,
            ..config()
        },
    ] {
        let mut net = Pair::new(cfg);
        let alice = net.connect(1, 1, |_| {});
        let ev = net.settle();
        assert!(!ev[alice]
            .iter()
            .any(|e| matches!(e, ClientEvent::AddressToken(_))));
        assert_eq!(net.broker.stats().address_tokens_issued, 0);
    }
}
