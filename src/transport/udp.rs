//! UDP socket setup and sending, shared by the daemon and the client
//! library (raw UDP, and the socket under QUIC).

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Binds a UDP socket with large kernel buffers (raw UDP and QUIC alike).
pub fn bind_with_buffers(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Bursts of small datagrams overflow the default buffers long before the CPU is busy.
    let _ = sock.set_recv_buffer_size(8 << 20);
    let _ = sock.set_send_buffer_size(8 << 20);
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// Binds the non-blocking raw-UDP socket.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let sock = bind_with_buffers(addr)?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock)
}

/// Sends one datagram, waiting for buffer space if the kernel has none.
pub async fn send(socket: &UdpSocket, to: SocketAddr, data: &[u8]) {
    match socket.try_send_to(data, to) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let _ = socket.send_to(data, to).await;
        }
        // An unreachable peer is the reliability layer's business.
        Err(e) => tracing::debug!(%to, error = %e, "send failed"),
    }
}
