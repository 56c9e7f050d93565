//! The raw UDP side of the daemon: one socket, one Tern packet per datagram.

use std::net::SocketAddr;

use bytes::Bytes;
use tern_core::broker::{Broker, Peer};
use tern_core::time::Time;

use crate::store::RocksStore;
use crate::transport::udp::UdpIo;

/// Hands one received datagram to the broker, tagged as a raw-UDP peer:
/// whatever its source address, it never passes for a QUIC connection.
pub fn deliver(broker: &mut Broker<RocksStore>, now: Time, from: SocketAddr, data: &[u8]) {
    broker.handle_datagram(now, Peer::udp(from), Bytes::copy_from_slice(data));
}

/// Reads up to `max` more datagrams without waiting.
pub fn read_burst(
    socket: &UdpIo,
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
