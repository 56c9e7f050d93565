//! A kernel filter on the daemon's raw-UDP socket (classic BPF,
//! `SO_ATTACH_FILTER`): datagrams that cannot be a Tern packet are dropped
//! in the kernel, before they wake the broker loop or cost a system call.
//!
//! It drops only what `proto-spec/` lets a server drop unanswered
//! (`packet.md`, "Decoding" and "Versions"; `flows.md`, "Unauthenticated and
//! bad packets"):
//! - fewer than 15 bytes (the smallest valid packet; no answer is sent to a
//!   datagram under 20 bytes anyway) or more than `MAX_RECV_DATAGRAM`;
//! - version byte 0 (reserved, never sent) or above 15: another version may
//!   be answered `UnsupportedVersion` or dropped, and only low numbers can
//!   be a real client of a newer version that needs the answer;
//! - a version this server speaks with a flags byte other than 0 (clear)
//!   or 1 (sealed): malformed, and its ERROR is optional.
//!
//! Random bytes pass it about 1 time in 20, so under a garbage flood the
//! broker loop reads a twentieth of the datagrams. The kernel counts the
//! dropped ones as socket drops (the `drops` column of `/proc/net/udp`).
//! [`admits`] is the same rule in Rust; a test checks the two agree on a
//! real socket.

use std::io;

use tern_core::wire::limits::MAX_RECV_DATAGRAM;

/// Smallest valid packet: an 11-byte header and the 4-byte trailer.
pub const MIN_DATAGRAM: usize = 15;

/// Highest version byte answered; above it a datagram is dropped.
pub const MAX_ANSWERED_VERSION: u8 = 15;

/// Bytes of UDP header before the payload in what a socket filter sees.
const UDP_HEADER: u32 = 8;

/// Whether the filter lets `datagram` (a UDP payload) through.
pub fn admits(datagram: &[u8]) -> bool {
    if datagram.len() < MIN_DATAGRAM || datagram.len() > MAX_RECV_DATAGRAM {
        return false;
    }
    match datagram[0] {
        0 => false,
        v if tern_core::wire::is_supported_version(v) => datagram[1] <= 1,
        v => v <= MAX_ANSWERED_VERSION,
    }
}

/// The filter program. Offsets count from the UDP header, which a socket
/// filter on a UDP socket sees first.
fn program() -> Vec<libc::sock_filter> {
    const LD_LEN: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_LEN) as u16;
    const LDB_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let min = UDP_HEADER + MIN_DATAGRAM as u32;
    let max = UDP_HEADER + MAX_RECV_DATAGRAM as u32;
    // Jumps count from the next instruction; DROP is 11, KEEP 12.
    vec![
        /* 0 */ op(LD_LEN, 0, 0, 0),
        /* 1 */ op(JGE, 0, 9, min), // short: DROP
        /* 2 */ op(JGT, 8, 0, max), // long: DROP
        /* 3 */ op(LDB_ABS, 0, 0, UDP_HEADER), // the version byte
        /* 4 */ op(JEQ, 6, 0, 0), // reserved: DROP
        /* 5 */ op(JEQ, 3, 0, tern_core::wire::VERSION as u32), // to 9
        /* 6 */ op(JEQ, 2, 0, tern_core::wire::VERSION_2 as u32), // to 9
        /* 7 */ op(JGT, 3, 0, MAX_ANSWERED_VERSION as u32), // DROP
        /* 8 */ op(RET, 0, 0, u32::MAX), // another low version: keep
        /* 9 */ op(LDB_ABS, 0, 0, UDP_HEADER + 1), // the flags byte
        /* 10 */ op(JGT, 0, 1, 1), // not 0 or 1: DROP, else KEEP
        /* 11 */ op(RET, 0, 0, 0), // DROP
        /* 12 */ op(RET, 0, 0, u32::MAX), // KEEP
    ]
}

/// Attaches the filter to `socket` (a raw-UDP socket of the daemon).
pub fn attach(socket: &std::net::UdpSocket) -> io::Result<()> {
    socket2::SockRef::from(socket).attach_filter(&program())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Datagrams at every edge of the rule, and random bytes.
    fn samples() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for len in [0, 1, 2, 14, 15, 16, 20, 1200, 1500, 1501, 2000] {
            for first in [0u8, 1, 2, 3, 15, 16, 255] {
                for flags in [0u8, 1, 2, 255] {
                    let mut d = vec![0x5a; len];
                    if len > 0 {
                        d[0] = first;
                    }
                    if len > 1 {
                        d[1] = flags;
                    }
                    out.push(d);
                }
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 1600) as usize;
            out.push(
                (0..len)
                    .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
                    .collect(),
            );
        }
        out
    }

    #[tokio::test]
    async fn the_kernel_filter_admits_exactly_what_admits_says() {
        let rx = crate::transport::udp::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        attach(rx.socket()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let samples = samples();
        // A marker after each sample tells "dropped" from "not yet read".
        let marker = [
            1u8, 0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 1, 0, 0, 0, 0,
        ];
        let mut buf = vec![0u8; 4096];
        for (i, d) in samples.iter().enumerate() {
            tx.send_to(d, to).unwrap();
            tx.send_to(&marker, to).unwrap();
            let mut got = Vec::new();
            loop {
                let (n, _) = tokio::time::timeout(Duration::from_secs(5), rx.recv_from(&mut buf))
                    .await
                    .expect("the marker arrives")
                    .unwrap();
                if buf[..n] == marker {
                    break;
                }
                got.push(buf[..n].to_vec());
            }
            let passed = got.len() == 1 && got[0] == *d;
            assert_eq!(
                passed,
                admits(d),
                "sample {i}: {} bytes starting {:02x?}",
                d.len(),
                &d[..d.len().min(2)]
            );
            assert!(got.len() <= 1);
        }
        let kept = samples.iter().filter(|d| admits(d)).count();
        assert!(kept > 20 && kept < samples.len() / 2, "kept {kept}");
    }

    #[test]
    fn random_bytes_pass_about_one_time_in_twenty() {
        let mut x: u64 = 7;
        let mut kept = 0;
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = [
                (x >> 56) as u8,
                (x >> 48) as u8,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ];
            kept += admits(&d) as u32;
        }
        assert!((4_000..7_000).contains(&kept), "kept {kept} of 100000");
    }
}
