//! Raw UDP: one Tern packet per datagram, on a socket from the shared
//! setup (`crate::transport::udp`).

use std::net::SocketAddr;

use bytes::Bytes;

use super::{unspecified_near, Recv};
use crate::transport::udp::{self, UdpIo};

pub(in crate::client) struct UdpLink {
    socket: UdpIo,
    server: SocketAddr,
    buf: Vec<u8>,
}

impl UdpLink {
    pub(super) fn open(server: SocketAddr) -> std::io::Result<UdpLink> {
        Ok(UdpLink {
            socket: udp::bind_udp(unspecified_near(server))?,
            server,
            buf: vec![0u8; 2048],
        })
    }

    pub(super) async fn recv(&mut self) -> Recv {
        loop {
            // Errors (ICMP unreachable after a send) and strangers are ignored.
            if let Ok((n, from)) = self.socket.recv_from(&mut self.buf).await {
                if from == self.server {
                    return Recv::Datagram(Bytes::copy_from_slice(&self.buf[..n]));
                }
            }
        }
    }

    /// A send error (no route, network switch) is retried by the timers.
    pub(super) async fn send(&mut self, data: &[u8]) {
        udp::send(&self.socket, self.server, data).await;
    }

    /// Moves to a new local port.
    pub(super) fn rebind(&mut self) -> std::io::Result<SocketAddr> {
        self.socket = udp::bind_udp(unspecified_near(self.server))?;
        self.socket.local_addr()
    }
}
