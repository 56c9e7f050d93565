//! Batched UDP receive (`recvmmsg`): up to [`BATCH`] datagrams per system
//! call, so that a burst, or a flood, costs one kernel entry per batch
//! rather than per datagram.
//!
//! The buffers, addresses and message headers are allocated once, and the
//! headers point into the others' heap storage, which never moves.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call.
pub const BATCH: usize = 32;

/// Receive buffers for one socket's batches.
pub struct RecvBatch {
    /// `BATCH` buffers of `slot` bytes, back to back.
    bufs: Box<[u8]>,
    slot: usize,
    names: Box<[libc::sockaddr_storage]>,
    /// Read by the kernel through `msgs`; owned here.
    _iovecs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
    /// Datagrams in the last batch.
    len: usize,
}

// SAFETY: the raw pointers in `iovecs` and `msgs` point only into this
// value's own heap buffers, which move with it between threads; through a
// shared reference they are only read (`get`), and the kernel writes
// through them only in `recv`, which takes `&mut self`.
unsafe impl Send for RecvBatch {}
unsafe impl Sync for RecvBatch {}

impl RecvBatch {
    /// Buffers for datagrams of up to `slot` bytes (a longer one is cut to
    /// `slot` bytes, so make it one more than the longest accepted).
    pub fn new(slot: usize) -> RecvBatch {
        let mut bufs = vec![0u8; BATCH * slot].into_boxed_slice();
        // SAFETY: all-zero is a valid sockaddr_storage, iovec and mmsghdr.
        let mut names: Box<[libc::sockaddr_storage]> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        let mut iovecs: Box<[libc::iovec]> = (0..BATCH)
            .map(|i| libc::iovec {
                iov_base: bufs[i * slot..].as_mut_ptr().cast(),
                iov_len: slot,
            })
            .collect();
        let msgs: Box<[libc::mmsghdr]> = (0..BATCH)
            .map(|i| {
                // SAFETY: as above.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
                m.msg_hdr.msg_iov = &mut iovecs[i];
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        RecvBatch {
            bufs,
            slot,
            names,
            _iovecs: iovecs,
            msgs,
            len: 0,
        }
    }

    /// Reads up to `BATCH` datagrams that are already waiting, without
    /// blocking; returns how many (0: none waiting).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.len = 0;
        for m in self.msgs.iter_mut() {
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            m.msg_len = 0;
        }
        let fd = socket.as_raw_fd();
        let msgs = self.msgs.as_mut_ptr();
        let got = socket.try_io(Interest::READABLE, || {
            // SAFETY: `msgs` holds BATCH headers whose buffers and names
            // belong to `self` and outlive the call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs,
                    BATCH as _,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match got {
            Ok(n) => {
                self.len = n;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Datagram `i` of the last batch: its source and bytes (`None` for a
    /// source address that is neither IPv4 nor IPv6).
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.len {
            return None;
        }
        let m = &self.msgs[i];
        let len = (m.msg_len as usize).min(self.slot);
        // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes
        // into `names[i]`, which is a sockaddr_storage.
        let addr =
            unsafe { socket2::SockAddr::new(self.names[i], m.msg_hdr.msg_namelen).as_socket() }?;
        Some((addr, &self.bufs[i * self.slot..i * self.slot + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_returns_every_waiting_datagram_with_its_source() {
        let rx = crate::transport::udp::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = rx.local_addr().unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = RecvBatch::new(1501);
        assert_eq!(batch.recv(&rx).unwrap(), 0, "nothing waiting");
        let mut sent = Vec::new();
        for i in 0..(BATCH + 5) {
            let (s, len) = if i % 2 == 0 { (&a, i + 1) } else { (&b, 1400) };
            let d = vec![i as u8; len];
            s.send_to(&d, to).unwrap();
            sent.push((s.local_addr().unwrap(), d));
        }
        // A datagram longer than the slot is cut to the slot.
        a.send_to(&[9u8; 2000], to).unwrap();
        rx.readable().await.unwrap();
        let mut got = Vec::new();
        while got.len() < sent.len() + 1 {
            let n = batch.recv(&rx).unwrap();
            assert!(n <= BATCH);
            for i in 0..n {
                let (from, d) = batch.get(i).unwrap();
                got.push((from, d.to_vec()));
            }
            if n == 0 {
                rx.readable().await.unwrap();
            }
        }
        assert_eq!(got[..sent.len()], sent[..]);
        assert_eq!(got[sent.len()].1.len(), 1501, "cut to the slot");
        assert!(batch.get(BATCH).is_none());
    }
}
