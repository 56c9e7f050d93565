//! The heartbeats of many idle sessions, sent from a thread of their own
//! (the keeper) while more sessions log in: each session gets one HEARTBEAT
//! per interval, spread evenly over it, as idle phones would send them.
//!
//! The keeper sends from its own few sockets, not the ones the sessions
//! logged in over: the daemon finds a session by id and follows the
//! address of its newest packet (a NAT rebinding, `proto-spec/flows.md`),
//! so the login sockets can be closed once a wave of logins is handed
//! over. Answers are counted, not decrypted: a sealed datagram from the
//! daemon on a keeper socket is a HEARTBEAT_ACK (the sessions are idle);
//! a clear one is decoded, and an ERROR (an unknown session: one the
//! daemon dropped) is counted apart.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::sync::mpsc::{Receiver, Sender};
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::{Frame, Header, Packet, PacketBuilder, FLAG_SEALED};

use super::fleet::{client_socket, send_all};
use super::logins::Opened;
use super::{BenchError, Result};

/// A sealed client packet is padded to this before sealing (as the client
/// library does).
const MIN_CLIENT_PACKET: usize = 24;

/// What the keeper counted so far.
#[derive(Default)]
pub struct KeeperCounts {
    /// HEARTBEATs sent.
    pub sent: AtomicU64,
    /// HEARTBEAT_ACKs received (sealed answers, or clear ones decoded).
    pub acked: AtomicU64,
    /// ERROR answers (a session the daemon no longer knows).
    pub errors: AtomicU64,
    /// Sessions handed to the keeper.
    pub sessions: AtomicU64,
}

/// Sends every session's heartbeats until dropped.
pub struct Keeper {
    tx: Option<Sender<Vec<Opened>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    /// Live counters.
    pub counts: Arc<KeeperCounts>,
}

struct Kept {
    sid: u64,
    pn: u64,
    channel: Option<tern_core::seal::Channel>,
}

impl Keeper {
    /// A keeper sending to `server` over `sockets` sockets, one HEARTBEAT
    /// per session every `interval`.
    pub fn start(server: SocketAddr, sockets: usize, interval: Duration) -> Result<Keeper> {
        let socks = (0..sockets.max(1))
            .map(|_| client_socket(server).map_err(BenchError::io("binding a keeper socket")))
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(KeeperCounts::default());
        let thread = {
            let (stop, counts) = (stop.clone(), counts.clone());
            std::thread::Builder::new()
                .name("keeper".into())
                .spawn(move || run(socks, rx, interval, &stop, &counts))
                .map_err(BenchError::io("starting the keeper thread"))?
        };
        Ok(Keeper {
            tx: Some(tx),
            stop,
            thread: Some(thread),
            counts,
        })
    }

    /// Hands over sessions just opened.
    pub fn add(&self, sessions: Vec<Opened>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(sessions);
        }
    }

    /// Stops the keeper; its error, if it failed.
    pub fn stop(mut self) -> Result<()> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.tx.take());
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(BenchError::Failed("the keeper thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

/// A HEARTBEAT packet of session `sid` numbered `pn`, sealed under
/// `channel` (padded first, as the client library does) or clear.
pub(super) fn heartbeat_packet(
    sid: u64,
    pn: u64,
    channel: Option<&tern_core::seal::Channel>,
) -> Bytes {
    let room = match channel {
        Some(_) => MAX_DATAGRAM - tern_core::seal::SEAL_OVERHEAD,
        None => MAX_DATAGRAM,
    };
    let mut pb = PacketBuilder::new(
        Header {
            session_id: sid,
            packet_number: pn,
            version: tern_core::wire::VERSION,
        },
        room,
    );
    // A HEARTBEAT always fits an empty packet.
    let _ = pb.push(&Frame::Heartbeat(pn));
    match channel {
        Some(ch) => {
            pb.pad_to(MIN_CLIENT_PACKET);
            ch.seal(&pb.finish())
        }
        None => pb.finish(),
    }
}

fn heartbeat(k: &mut Kept) -> Bytes {
    let p = heartbeat_packet(k.sid, k.pn, k.channel.as_ref());
    k.pn += 1;
    p
}

fn drain(socks: &[UdpSocket], buf: &mut [u8], counts: &KeeperCounts) {
    for s in socks {
        while let Ok(n) = s.recv(buf) {
            if buf.get(1) == Some(&FLAG_SEALED) {
                counts.acked.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Ok(p) = Packet::decode(Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            for f in p.frames {
                match f {
                    Frame::HeartbeatAck(_) => counts.acked.fetch_add(1, Ordering::Relaxed),
                    Frame::Error(_) => counts.errors.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
            }
        }
    }
}

fn run(
    socks: Vec<UdpSocket>,
    rx: Receiver<Vec<Opened>>,
    interval: Duration,
    stop: &AtomicBool,
    counts: &KeeperCounts,
) -> Result<()> {
    let mut kept: Vec<Kept> = Vec::new();
    let mut cursor = 0usize;
    // Heartbeats owed but not yet sent (fractional).
    let mut owed = 0.0f64;
    let mut last = Instant::now();
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        while let Ok(wave) = rx.try_recv() {
            counts
                .sessions
                .fetch_add(wave.len() as u64, Ordering::Relaxed);
            // Next in turn: a wave's first sessions logged in as long ago
            // as the wave took, and must be heard from before the idle
            // timeout.
            cursor = cursor.min(kept.len());
            kept.splice(
                cursor..cursor,
                wave.into_iter().map(|o| Kept {
                    sid: o.sid,
                    pn: o.next_pn,
                    channel: o.channel,
                }),
            );
        }
        let now = Instant::now();
        // Every session once per interval: len / interval per second.
        owed += kept.len() as f64 * now.duration_since(last).as_secs_f64() / interval.as_secs_f64();
        last = now;
        let mut n = owed as usize;
        owed -= n as f64;
        while n > 0 && !kept.is_empty() {
            cursor %= kept.len();
            let p = heartbeat(&mut kept[cursor]);
            send_all(&socks[cursor % socks.len()], &p)
                .map_err(BenchError::io("sending a HEARTBEAT"))?;
            counts.sent.fetch_add(1, Ordering::Relaxed);
            cursor += 1;
            n -= 1;
            if n.is_multiple_of(256) {
                drain(&socks, &mut buf, counts);
            }
        }
        drain(&socks, &mut buf, counts);
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
