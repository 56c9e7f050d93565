//! The raw UDP side of the daemon: one socket, one Tern packet per datagram.

use std::net::SocketAddr;

use bytes::Bytes;
use tern_core::broker::{Broker, Peer};
use tern_core::time::Time;
use tokio::net::UdpSocket;

use crate::store::RocksStore;
use crate::transport::recv_batch::RecvBatch;

/// Hands one received datagram to the broker, tagged as a raw-UDP peer:
/// whatever its source address, it never passes for a QUIC connection.
pub fn deliver(broker: &mut Broker<RocksStore>, now: Time, from: SocketAddr, data: &[u8]) {
    broker.handle_datagram(now, Peer::udp(from), Bytes::copy_from_slice(data));
}

/// Reads up to about `max` more datagrams without waiting, a batch per
/// system call.
pub fn read_burst(
    socket: &UdpSocket,
    batch: &mut RecvBatch,
    broker: &mut Broker<RocksStore>,
    now: Time,
    max: usize,
) {
    let mut read = 0;
    while read < max {
        // An error (an ICMP report for an earlier send) ends the burst; the
        // loop's next receive sees what follows.
        let n = batch.recv(socket).unwrap_or(0);
        for i in 0..n {
            if let Some((from, data)) = batch.get(i) {
                deliver(broker, now, from, data);
            }
        }
        if n < crate::transport::recv_batch::BATCH {
            break;
        }
        read += n;
    }
}
