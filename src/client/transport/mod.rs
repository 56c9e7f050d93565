//! How a client's Tern packets reach the server: a raw UDP socket
//! (`udp.rs`), or one QUIC connection whose DATAGRAM frames each carry one
//! Tern packet (`quic.rs`, `proto-spec/quic.md`, with the server trust of
//! `trust.rs`). The driver sees the same thing either way: datagrams in,
//! datagrams out, and a way to move to a new local port. Server addresses
//! are in `addr.rs`.

mod addr;
mod quic;
mod trust;
mod udp;

pub use addr::{AddrParseError, ServerAddr, Transport};
pub use trust::{QuicOptions, ServerTrust};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

use super::{ClientError, ClientOptions};
use quic::QuicLink;
use udp::UdpLink;

/// What a transport hands the driver.
pub(super) enum Recv {
    /// One Tern packet from the server.
    Datagram(Bytes),
    /// A QUIC handshake failed for a reason other than silence (a
    /// certificate that does not verify, a refused ALPN…). The transport
    /// retries with backoff; before the first login this fails `connect`.
    Failed(String),
}

/// The transport of one client.
pub(super) enum Link {
    Udp(UdpLink),
    Quic(QuicLink),
}

impl Link {
    /// Binds (UDP), or connects (QUIC: one handshake, within `timeout`).
    pub(super) async fn open(opts: &ClientOptions) -> Result<Link, ClientError> {
        match opts.transport {
            Transport::Udp => Ok(Link::Udp(UdpLink::open(opts.server)?)),
            Transport::Quic => Ok(Link::Quic(QuicLink::open(opts).await?)),
        }
    }

    /// The largest Tern packet this transport carries.
    pub(super) fn max_packet(&self) -> usize {
        match self {
            Link::Udp(_) => tern_core::wire::limits::MAX_DATAGRAM,
            Link::Quic(_) => {
                crate::transport::quic::MAX_PACKET.min(tern_core::wire::limits::MAX_DATAGRAM)
            }
        }
    }

    /// Next thing from the server. Cancel-safe: nothing is lost when the
    /// future is dropped.
    pub(super) async fn recv(&mut self) -> Recv {
        match self {
            Link::Udp(u) => u.recv().await,
            Link::Quic(q) => q.recv().await,
        }
    }

    /// Sends one Tern packet; losses are the reliability layer's business.
    pub(super) async fn send(&mut self, data: Bytes) {
        match self {
            Link::Udp(u) => u.send(&data).await,
            Link::Quic(q) => q.send(data),
        }
    }

    /// Lets the last packets (a LOGOUT) leave, then closes the connection.
    pub(super) async fn close(&mut self) {
        if let Link::Quic(q) = self {
            q.close().await;
        }
    }

    /// Moves to a new local port. Over QUIC the connection migrates.
    pub(super) async fn rebind(&mut self) -> std::io::Result<SocketAddr> {
        match self {
            Link::Udp(u) => u.rebind(),
            Link::Quic(q) => q.rebind(),
        }
    }
}

/// Any local address of the server's family, on a port the system picks.
fn unspecified_near(server: SocketAddr) -> SocketAddr {
    let ip: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}
