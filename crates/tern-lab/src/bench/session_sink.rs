//! The baseline of `tern-bench sessions`: a minimal session server
//! (`tern-bench session-sink`, a separate process) that checks the same
//! tokens, keeps a hash map of {address, user, device, packet numbers, last
//! heard} per session and answers LOGIN_OK and heartbeats. What the daemon
//! spends beyond that is its overhead.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use tern_core::auth::TokenKeys;
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::{Frame, Header, LoginOk, Packet, PacketBuilder};

use super::{BenchError, Result};

/// Starts the baseline server (this executable's `session-sink`) with the
/// token secret at `secret_file`; it stops when the handle is dropped.
pub fn spawn_session_sink(
    secret_file: &Path,
) -> Result<(crate::process::ChildProcess, SocketAddr)> {
    use crate::process::{ChildProcess, OnDrop, Stderr};
    use std::time::Duration;
    let exe = std::env::current_exe().map_err(BenchError::io("locating this executable"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("session-sink")
        .arg("--secret-file")
        .arg(secret_file);
    let mut sink = ChildProcess::spawn(cmd, "the session sink", Stderr::Inherit)
        .map_err(|e| BenchError::Failed(e.to_string()))?
        .on_drop(OnDrop::Terminate(Duration::from_secs(10)));
    let addr = sink
        .wait_for("print its address", Duration::from_secs(30), |l| {
            l.strip_prefix("listening on udp://")
                .and_then(|a| a.parse::<SocketAddr>().ok())
        })
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    Ok((sink, addr))
}

struct MiniSession {
    _user: u64,
    _device: u32,
    addr: SocketAddr,
    _highest_pn: u64,
    next_pn: u64,
    _last_heard: Instant,
}

/// The baseline server (`tern-bench session-sink`): answers LOGIN with
/// LOGIN_OK after checking the token, keeping a minimal session table;
/// answers heartbeats. Runs until killed.
pub fn session_sink(secret_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(secret_file)
        .map_err(BenchError::io(format!("reading {}", secret_file.display())))?;
    let secret = hex::decode(text.trim())
        .map_err(|e| BenchError::Failed(format!("secret is not hex: {e}")))?;
    let keys = TokenKeys::new(secret, Vec::new());
    let sock = {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(BenchError::io("socket"))?;
        let _ = s.set_recv_buffer_size(8 << 20);
        let _ = s.set_send_buffer_size(8 << 20);
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("literal");
        s.bind(&addr.into()).map_err(BenchError::io("bind"))?;
        UdpSocket::from(s)
    };
    let addr = sock.local_addr().map_err(BenchError::io("local address"))?;
    println!("listening on udp://{addr}");
    let _ = std::io::stdout().flush();
    let mut sessions: HashMap<u64, MiniSession> = HashMap::new();
    let mut by_device: HashMap<(u64, u32), u64> = HashMap::new();
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let Ok(p) = Packet::decode(Bytes::copy_from_slice(&buf[..n])) else {
            continue;
        };
        let now = Instant::now();
        if p.header.session_id == 0 {
            let Some(Frame::Login(l)) = p.frames.into_iter().next() else {
                continue;
            };
            let now_secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let Ok(c) = keys.verify(&l.token, now_secs) else {
                continue;
            };
            let sid = *by_device.entry((c.user, c.device)).or_insert_with(|| {
                let mut id: u64 = rand::random();
                while id == 0 || sessions.contains_key(&id) {
                    id = rand::random();
                }
                id
            });
            let s = sessions.entry(sid).or_insert(MiniSession {
                _user: c.user,
                _device: c.device,
                addr: from,
                _highest_pn: 1,
                next_pn: 1,
                _last_heard: now,
            });
            let pn = s.next_pn;
            s.next_pn += 1;
            let mut pb = PacketBuilder::new(
                Header {
                    session_id: sid,
                    packet_number: pn,
                    version: tern_core::wire::VERSION,
                },
                MAX_DATAGRAM,
            );
            let _ = pb.push(&Frame::LoginOk(LoginOk {
                user: c.user,
                device: c.device,
                epoch: 1,
                head: 0,
                checkpoint: 0,
                next_send_seq: 1,
                heartbeat_ms: 15_000,
                idle_timeout_ms: 45_000,
                server_time_ms: now_secs * 1000,
            }));
            let _ = sock.send_to(&pb.finish(), from);
        } else if let Some(s) = sessions.get_mut(&p.header.session_id) {
            s._last_heard = now;
            s.addr = from;
            for f in p.frames {
                if let Frame::Heartbeat(nonce) = f {
                    let pn = s.next_pn;
                    s.next_pn += 1;
                    let mut pb = PacketBuilder::new(
                        Header {
                            session_id: p.header.session_id,
                            packet_number: pn,
                            version: tern_core::wire::VERSION,
                        },
                        MAX_DATAGRAM,
                    );
                    let _ = pb.push(&Frame::HeartbeatAck(nonce));
                    let _ = sock.send_to(&pb.finish(), s.addr);
                }
            }
        }
    }
}
