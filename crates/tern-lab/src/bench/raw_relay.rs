//! The baseline of `tern-bench relay`: a naive raw-UDP relay in the same
//! process, the physical floor of the path: client → relay → sink and the
//! sink's ACK back through the relay, one message per datagram, several in
//! flight, three threads, no storage, no reliability, no sessions.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::util::{fmt_latency, histogram, rate, si, thread_cpu_now};
use super::{BenchError, Result};

/// What the raw relay measured.
#[derive(Debug)]
pub struct RawRelayReport {
    /// Messages whose ACK came back.
    pub completed: u64,
    /// Retransmissions after a 200 ms silence (loss).
    pub retransmits: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Send to ACK, microseconds.
    pub rtt: Histogram<u64>,
    /// CPU of the client, relay and sink threads.
    pub cpu: [Duration; 3],
}

impl RawRelayReport {
    /// Messages per second.
    pub fn rate(&self) -> f64 {
        rate(self.completed, self.elapsed)
    }
}

const STOP: &[u8] = b"STOP";

fn bind_local() -> Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(BenchError::io("creating a baseline socket"))?;
    // The same large buffers as the daemon's, so a deep window does not
    // overflow them.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    s.bind(&addr.into())
        .map_err(BenchError::io("binding a baseline socket"))?;
    let s = UdpSocket::from(s);
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(BenchError::io("setting a read timeout"))?;
    Ok(s)
}

/// The naive raw-UDP relay: `messages` datagrams of `size` bytes, `window`
/// in flight, client → relay → sink → relay → client (4 datagrams each).
pub fn raw_relay(
    messages: u64,
    window: usize,
    size: usize,
    max_time: Duration,
) -> Result<RawRelayReport> {
    let sink = bind_local()?;
    let relay = bind_local()?;
    let client = bind_local()?;
    let sink_addr = sink.local_addr().map_err(BenchError::io("local address"))?;
    let relay_addr = relay
        .local_addr()
        .map_err(BenchError::io("local address"))?;
    let stop = Arc::new(AtomicBool::new(false));

    let sink_t = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("base-sink".into())
            .spawn(move || {
                let cpu0 = thread_cpu_now();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    match sink.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if &buf[..n] == STOP {
                                break;
                            }
                            // The ACK: the message's index and timestamp.
                            let _ = sink.send_to(&buf[..n.min(16)], from);
                        }
                        Err(_) => continue,
                    }
                }
                thread_cpu_now().saturating_sub(cpu0)
            })
            .map_err(BenchError::io("spawning the sink"))?
    };
    let relay_t = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("base-relay".into())
            .spawn(move || {
                let cpu0 = thread_cpu_now();
                let mut buf = [0u8; 2048];
                let mut client: Option<SocketAddr> = None;
                while !stop.load(Ordering::Relaxed) {
                    match relay.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if &buf[..n] == STOP {
                                break;
                            }
                            if from == sink_addr {
                                if let Some(c) = client {
                                    let _ = relay.send_to(&buf[..n], c);
                                }
                            } else {
                                client = Some(from);
                                let _ = relay.send_to(&buf[..n], sink_addr);
                            }
                        }
                        Err(_) => continue,
                    }
                }
                thread_cpu_now().saturating_sub(cpu0)
            })
            .map_err(BenchError::io("spawning the relay"))?
    };
    let client_t = std::thread::Builder::new()
        .name("base-client".into())
        .spawn(
            move || -> Result<(u64, u64, Duration, Histogram<u64>, Duration)> {
                let cpu0 = thread_cpu_now();
                let start = Instant::now();
                let deadline = start + max_time;
                let size = size.max(16);
                let mut acked = vec![false; messages as usize];
                let mut sent_at = vec![0u64; messages as usize];
                let mut rtt = histogram();
                let mut msg = vec![0u8; size];
                let mut next = 0u64;
                let mut completed = 0u64;
                let mut lowest = 0u64;
                let mut retransmits = 0u64;
                let mut buf = [0u8; 64];
                let now_us = || start.elapsed().as_micros() as u64;
                let send = |idx: u64, msg: &mut Vec<u8>, t: u64| {
                    msg[..8].copy_from_slice(&idx.to_be_bytes());
                    msg[8..16].copy_from_slice(&t.to_be_bytes());
                    let _ = client.send_to(msg, relay_addr);
                };
                client
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .map_err(BenchError::io("setting a read timeout"))?;
                while completed < messages && Instant::now() < deadline {
                    while next < messages && (next - completed) < window as u64 {
                        let t = now_us();
                        sent_at[next as usize] = t;
                        send(next, &mut msg, t);
                        next += 1;
                    }
                    match client.recv_from(&mut buf) {
                        Ok((n, _)) if n >= 16 => {
                            let idx = u64::from_be_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                            if (idx as usize) < acked.len() && !acked[idx as usize] {
                                acked[idx as usize] = true;
                                completed += 1;
                                rtt.saturating_record(
                                    now_us().saturating_sub(sent_at[idx as usize]),
                                );
                            }
                        }
                        Ok(_) => {}
                        Err(_) => {
                            // Silence: resend whatever is unacknowledged.
                            while lowest < next && acked[lowest as usize] {
                                lowest += 1;
                            }
                            for i in lowest..next {
                                if !acked[i as usize] {
                                    retransmits += 1;
                                    let t = now_us();
                                    sent_at[i as usize] = t;
                                    send(i, &mut msg, t);
                                }
                            }
                        }
                    }
                }
                let elapsed = start.elapsed();
                let _ = client.send_to(STOP, relay_addr);
                let _ = client.send_to(STOP, sink_addr);
                Ok((
                    completed,
                    retransmits,
                    elapsed,
                    rtt,
                    thread_cpu_now().saturating_sub(cpu0),
                ))
            },
        )
        .map_err(BenchError::io("spawning the client"))?;
    let r = client_t
        .join()
        .map_err(|_| BenchError::Failed("baseline client panicked".into()))?;
    stop.store(true, Ordering::Relaxed);
    let relay_cpu = relay_t
        .join()
        .map_err(|_| BenchError::Failed("baseline relay panicked".into()))?;
    let sink_cpu = sink_t
        .join()
        .map_err(|_| BenchError::Failed("baseline sink panicked".into()))?;
    let (completed, retransmits, elapsed, rtt, client_cpu) = r?;
    Ok(RawRelayReport {
        completed,
        retransmits,
        elapsed,
        rtt,
        cpu: [client_cpu, relay_cpu, sink_cpu],
    })
}

/// Prints one baseline run as a report line.
pub fn print_raw(label: &str, r: &RawRelayReport) {
    let w = r.elapsed.as_secs_f64().max(1e-9);
    println!(
        "  {label}: {} msg/s ({} messages in {:.2?}, {} retransmits); RTT {}; cpu client {:.0}%, relay {:.0}%, sink {:.0}%",
        si(r.rate()),
        r.completed,
        r.elapsed,
        r.retransmits,
        fmt_latency(&r.rtt),
        100.0 * r.cpu[0].as_secs_f64() / w,
        100.0 * r.cpu[1].as_secs_f64() / w,
        100.0 * r.cpu[2].as_secs_f64() / w,
    );
}
