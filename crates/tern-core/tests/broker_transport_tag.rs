//! The broker tells QUIC peers from raw-UDP ones by the transport tag the
//! driver gives each datagram, never by the address: a QUIC peer skips the
//! RETRY round trip and may log in in the clear when sealing is required,
//! and a UDP source with the very same address gets neither.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tern_core::auth::{Claims, TokenKeys};
use tern_core::broker::{Broker, BrokerConfig, Peer, SealPolicy, Transport};
use tern_core::client::{ClientConfig, ClientConn};
use tern_core::store::MemStore;
use tern_core::time::Time;

const SECRET: &[u8] = b"transport tag test secret";

fn broker() -> Broker<MemStore> {
    let cfg = BrokerConfig {
        seal_policy: SealPolicy::Required,
        validate_addresses: true,
        ..BrokerConfig::default()
    };
    let keys = TokenKeys::new(SECRET.to_vec(), vec![]);
    Broker::new(cfg, Arc::new(MemStore::new()), keys, 1_700_000_000_000, 1)
}

/// The first datagram of a clear client: its LOGIN.
fn clear_login() -> Bytes {
    let token = TokenKeys::new(SECRET.to_vec(), vec![]).sign(Claims {
        user: 1,
        device: 1,
        expires: u64::MAX,
    });
    let mut c = ClientConn::new(ClientConfig::new(token.into()), Time::ZERO, 7);
    c.poll_transmit(Time::ZERO).expect("a LOGIN")
}

fn key() -> SocketAddr {
    "[fd54:6572:6e00::1]:1".parse().unwrap()
}

#[test]
fn a_quic_peer_logs_in_clear_without_retry_and_is_answered_over_quic() {
    let mut b = broker();
    b.handle_datagram(Time::ZERO, Peer::quic(key()), clear_login());
    assert_eq!(b.stats().logins, 1);
    assert_eq!(b.stats().retries_sent, 0);
    assert_eq!(b.stats().seal_required, 0);
    let (to, _) = b.poll_transmit().expect("LOGIN_OK");
    assert_eq!(to, Peer::quic(key()));
    assert_eq!(to.transport, Transport::Quic);
}

#[test]
fn a_udp_source_with_the_same_address_is_held_to_the_seal_policy() {
    let mut b = broker();
    b.handle_datagram(Time::ZERO, key(), clear_login());
    assert_eq!(b.stats().logins, 0);
    assert_eq!(b.stats().seal_required, 1);
    let (to, _) = b.poll_transmit().expect("ERROR SEAL_REQUIRED");
    assert_eq!(to, Peer::udp(key()));
}
