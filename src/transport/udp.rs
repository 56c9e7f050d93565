//! UDP socket setup and sending, shared by the daemon and the client
//! library (raw UDP, and the socket under QUIC).
//!
//! The raw-UDP socket is registered with the runtime for **read readiness
//! only** ([`UdpIo`]). tokio's own `UdpSocket` registers both directions,
//! edge-triggered, and Linux signals write readiness again each time the
//! buffer of a sent datagram is freed (on loopback, when the peer reads
//! it). On a quiet socket every datagram sent then cost the loop a
//! wake-up that found nothing to do: about one per message at a chat rate
//! (issue 14, item 3, measured with `strace`). A send is tried at once;
//! only a full send buffer registers for write readiness, for as long as
//! it lasts.

use std::io;
use std::net::SocketAddr;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Binds a UDP socket with large kernel buffers (raw UDP and QUIC alike).
pub fn bind_with_buffers(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Bursts of small datagrams overflow the default buffers long before the CPU is busy.
    let _ = sock.set_recv_buffer_size(8 << 20);
    let _ = sock.set_send_buffer_size(8 << 20);
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// Binds the non-blocking raw-UDP socket. Must be called within a tokio
/// runtime.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpIo> {
    UdpIo::new(bind_with_buffers(addr)?)
}

/// A non-blocking UDP socket that wakes its task for datagrams to read,
/// never for room to write (see the module's documentation).
#[derive(Debug)]
pub struct UdpIo {
    fd: AsyncFd<std::net::UdpSocket>,
}

impl UdpIo {
    /// Registers `sock` for read readiness. Must be called within a tokio
    /// runtime.
    pub fn new(sock: std::net::UdpSocket) -> io::Result<UdpIo> {
        sock.set_nonblocking(true)?;
        // SAFETY: the socket owns its descriptor, and `UdpIo` neither
        // replaces nor closes it while the registration lives.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE)? };
        Ok(UdpIo { fd })
    }

    /// The socket itself, for options and the address.
    pub fn socket(&self) -> &std::net::UdpSocket {
        self.fd.get_ref()
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket().local_addr()
    }

    /// Waits for the next datagram.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|s| s.get_ref().recv_from(buf)) {
                Ok(r) => return r,
                // Readiness was stale: cleared by `try_io`, wait again.
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads a datagram if one is waiting (`WouldBlock` if not, which also
    /// clears the readiness, so the next wait sleeps at once).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.fd.try_io(Interest::READABLE, |s| s.recv_from(buf))
    }

    /// Sends one datagram, waiting for buffer space if the kernel has none.
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self.socket().send_to(data, to) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.send_when_room(data, to).await,
            r => r,
        }
    }

    /// The slow path of [`UdpIo::send_to`]: a duplicate of the socket is
    /// registered for write readiness until the datagram is sent.
    async fn send_when_room(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        let dup = self.socket().try_clone()?;
        // SAFETY: `dup` owns its own descriptor, closed only when `writer`
        // drops, after its registration.
        let writer = unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE)? };
        loop {
            let mut ready = writer.writable().await?;
            match ready.try_io(|s| s.get_ref().send_to(data, to)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Sends one datagram, waiting for buffer space if the kernel has none.
pub async fn send(socket: &UdpIo, to: SocketAddr, data: &[u8]) {
    match socket.send_to(data, to).await {
        Ok(_) => {}
        // An unreachable peer is the reliability layer's business.
        Err(e) => tracing::debug!(%to, error = %e, "send failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn datagrams_go_both_ways_without_write_interest() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            a.try_recv_from(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        for i in 0..100u8 {
            send(&a, b.local_addr().unwrap(), &[i; 10]).await;
            let (n, from) = tokio::time::timeout(Duration::from_secs(5), b.recv_from(&mut buf))
                .await
                .expect("the datagram arrives")
                .unwrap();
            assert_eq!((n, from, buf[0]), (10, a.local_addr().unwrap(), i));
        }
    }

    /// The path taken when the kernel's send buffer is full (a loopback
    /// send never fills it, so the path is driven directly): it registers
    /// a duplicate of the socket beside the read registration, sends, and
    /// leaves the socket readable as before.
    #[tokio::test]
    async fn the_full_buffer_path_registers_a_writer_beside_the_reader() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        for i in 0..3u8 {
            let n = a
                .send_when_room(&[i; 5], b.local_addr().unwrap())
                .await
                .unwrap();
            assert_eq!(n, 5);
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), b.recv_from(&mut buf))
                .await
                .expect("the datagram arrives")
                .unwrap();
            assert_eq!((n, buf[0]), (5, i));
        }
        send(&b, a.local_addr().unwrap(), b"back").await;
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), a.recv_from(&mut buf))
            .await
            .expect("the sender still reads")
            .unwrap();
        assert_eq!(&buf[..n], b"back");
    }
}
