//! The raw UDP side of the daemon: one socket, one Tern packet per datagram.

use std::net::SocketAddr;

use bytes::Bytes;
use tern_core::broker::Broker;
use tern_core::time::Time;
use tokio::net::UdpSocket;

use super::quic::is_synthetic;
use crate::store::RocksStore;

/// Hands one received datagram to the broker. A source inside the QUIC
/// bridge's synthetic prefix is dropped: only QUIC connections own those keys.
pub fn deliver(broker: &mut Broker<RocksStore>, now: Time, from: SocketAddr, data: &[u8]) {
    if is_synthetic(&from) {
        return;
    }
    broker.handle_datagram(now, from, Bytes::copy_from_slice(data));
}

/// Reads up to `max` more datagrams without waiting.
pub fn read_burst(
    socket: &UdpSocket,
    buf: &mut [u8],
    broker: &mut Broker<RocksStore>,
    now: Time,
    max: usize,
) {
    for _ in 0..max {
        match socket.try_recv_from(buf) {
            Ok((n, from)) => deliver(broker, now, from, &buf[..n]),
            Err(_) => break,
        }
    }
}
