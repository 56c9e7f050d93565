//! The floor under a relay's CPU at a chat rate, measured in the same run
//! as Tern and Mosquitto: a relay of one thread and a blocking UDP socket,
//! with the shape of a QoS 1 hop (the sender's message in, its ACK out, the
//! message out to the receiver, the receiver's ACK in), and nothing else: no
//! sessions, sealing, ordering, retransmission or timers.
//!
//! In its durable form it appends each message to a file and `fdatasync`s
//! it before the ACK, which is what "an ACK means durable" costs at the
//! least when messages come one at a time. The CPU counted is the relay
//! thread's own (`CLOCK_THREAD_CPUTIME_ID`), as Tern's and Mosquitto's are
//! their whole process's.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::arrivals::{payload, Arrivals};
use crate::lab::{Usage, Wire};
use crate::results::LatencyResult;

const DATA: u8 = 1;
const ACK: u8 = 2;

/// One paced run of `n` messages, one every `interval`, through the raw
/// relay; `durable` names the folder of its log file.
pub fn run(
    peer: &str,
    n: u64,
    interval: Duration,
    payload_len: usize,
    grace: Duration,
    durable: Option<&Path>,
) -> Result<LatencyResult> {
    let relay = UdpSocket::bind("127.0.0.1:0")?;
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    let relay_addr = relay.local_addr()?;
    let log = match durable {
        Some(dir) => Some(File::create(dir.join("raw-relay.log"))?),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let relay_thread = {
        let (stop, sender_addr, receiver_addr) =
            (stop.clone(), sender.local_addr()?, receiver.local_addr()?);
        std::thread::Builder::new()
            .name("raw-relay".into())
            .spawn(move || relay_loop(relay, log, sender_addr, receiver_addr, &stop))?
    };
    let epoch = Instant::now();
    let recv_thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("raw-recv".into())
            .spawn(move || receive(receiver, relay_addr, n, epoch, &stop))?
    };
    let interval_us = interval.as_micros() as u64;
    let mut ack = [0u8; 16];
    sender.set_read_timeout(Some(Duration::from_millis(200)))?;
    for i in 0..n {
        let at = Duration::from_micros(i * interval_us);
        if let Some(wait) = at.checked_sub(epoch.elapsed()) {
            std::thread::sleep(wait);
        }
        let mut d = vec![DATA];
        d.extend_from_slice(&payload(at.as_micros() as u64, i, payload_len));
        sender.send_to(&d, relay_addr)?;
        // Loopback loses nothing; the ACK is read so the hop has its shape.
        let _ = sender.recv_from(&mut ack);
    }
    std::thread::sleep(grace.min(Duration::from_secs(1)));
    stop.store(true, Ordering::Relaxed);
    let arrivals = recv_thread
        .join()
        .map_err(|_| anyhow!("raw relay receiver panicked"))?;
    let (cpu, wire) = relay_thread
        .join()
        .map_err(|_| anyhow!("raw relay panicked"))??;
    let usage = Usage {
        wall: epoch.elapsed(),
        wire,
        server_cpu: cpu,
        client_cpu: Duration::ZERO,
    };
    Ok(LatencyResult::new(peer, 0.0, 0, n, arrivals, 0, usage))
}

/// The relay: a message is logged (and synced) before its ACK and its
/// forward; the receiver's ACK is read and dropped. Returns the thread's
/// CPU time and what it received and sent.
fn relay_loop(
    sock: UdpSocket,
    mut log: Option<File>,
    sender: SocketAddr,
    receiver: SocketAddr,
    stop: &AtomicBool,
) -> Result<(Duration, Wire)> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let start = thread_cpu();
    let mut wire = Wire::default();
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        wire.tx_packets += 1;
        wire.tx_bytes += len as u64;
        if from != sender || len < 17 || buf[0] != DATA {
            continue;
        }
        if let Some(f) = log.as_mut() {
            f.write_all(&buf[..len])?;
            f.sync_data()?;
        }
        let mut ack = [ACK; 9];
        ack[1..].copy_from_slice(&buf[9..17]);
        sock.send_to(&ack, sender)?;
        sock.send_to(&buf[..len], receiver)?;
        wire.rx_packets += 2;
        wire.rx_bytes += (ack.len() + len) as u64;
    }
    Ok((thread_cpu().saturating_sub(start), wire))
}

/// The receiver: every message is an arrival, and is ACKed to the relay.
fn receive(
    sock: UdpSocket,
    relay: SocketAddr,
    n: u64,
    epoch: Instant,
    stop: &AtomicBool,
) -> Arrivals {
    let mut arrivals = Arrivals::new(n);
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if len < 17 || buf[0] != DATA {
            continue;
        }
        arrivals.arrive(epoch.elapsed().as_micros() as u64, &buf[1..len]);
        let mut ack = [ACK; 9];
        ack[1..].copy_from_slice(&buf[9..17]);
        let _ = sock.send_to(&ack, relay);
    }
    arrivals
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_arrives_once_in_order_and_the_durable_relay_writes_each() {
        let dir = tempfile::tempdir().unwrap();
        for durable in [None, Some(dir.path())] {
            let r = run(
                "raw",
                50,
                Duration::from_millis(1),
                64,
                Duration::ZERO,
                durable,
            )
            .unwrap();
            assert_eq!((r.delivered, r.duplicates, r.out_of_order), (50, 0, 0));
            assert!(r.server_cpu_ms < 5_000);
        }
        let logged = std::fs::metadata(dir.path().join("raw-relay.log"))
            .unwrap()
            .len();
        assert_eq!(logged, 50 * 65);
    }
}
