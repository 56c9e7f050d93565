//! Datagrams waiting in the delay queue, the per-client mapping (upstream
//! socket and one impairment model per direction), and the seeds of those
//! models.

use std::cmp::Ordering;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tern_sim::impairment::Link;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Up,
    Down,
}

impl Dir {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }
}

/// Where a scheduled datagram goes.
pub(super) enum Target {
    /// To the server, through this (possibly since replaced) upstream socket.
    Upstream(Arc<UdpSocket>),
    /// To the client, through the listen socket.
    Client,
}

pub(super) struct Scheduled {
    pub(super) at_us: u64,
    pub(super) seq: u64,
    pub(super) dir: Dir,
    pub(super) client: SocketAddr,
    pub(super) target: Target,
    pub(super) data: Bytes,
    pub(super) received_us: u64,
    pub(super) duplicate: bool,
    pub(super) reordered: bool,
    pub(super) corrupted: bool,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest (then first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

pub(super) struct Client {
    pub(super) index: u64,
    pub(super) up: Link,
    pub(super) down: Link,
    pub(super) upstream: Arc<UdpSocket>,
    pub(super) upstream_port: u16,
    pub(super) reader: JoinHandle<()>,
    pub(super) last_seen_us: u64,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of the model for client number `index` in direction `dir`.
pub(super) fn link_seed(seed: u64, index: u64, dir: Dir) -> u64 {
    let d = match dir {
        Dir::Up => 0,
        Dir::Down => 1,
    };
    mix(seed ^ mix(index.wrapping_mul(2).wrapping_add(d)))
}
