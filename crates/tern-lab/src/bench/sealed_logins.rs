//! Many sealed sessions opened by crafting the Noise handshake directly
//! (`proto-spec/sealed.md`): a HANDSHAKE (with the socket's cookie once it
//! has one) per session, then, once the HANDSHAKE_REPLY verifies, one sealed
//! HEARTBEAT, as a real client's first sealed packet, so the daemon drops
//! the reply it keeps for retransmission and the session is what an idle
//! client leaves behind.
//!
//! A HANDSHAKE_REPLY does not say which handshake it answers (only the
//! keys do), so each socket has at most one handshake outstanding: the
//! sockets are the window.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::auth::TokenKeys;
use tern_core::seal::{Entropy, Initiator, PublicKey};
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::{Frame, Header, Login, Packet, PacketBuilder};

use super::fleet::{pollfds, send_all};
use super::keepalive::heartbeat_packet;
use super::logins::{LoginReport, LoginSockets};
use super::util::token;
use super::{BenchError, Result};

/// A HANDSHAKE packet is padded to this, as the client library does, so
/// the answer is never larger than the question.
const MIN_HANDSHAKE_PACKET: usize = 256;
/// An unanswered HANDSHAKE goes again after this: longer than the clear
/// LOGIN's 300 ms, because with a thousand handshakes outstanding the
/// daemon's Diffie-Hellman work alone keeps the last one waiting about that
/// long, and each resend is answered again.
const RESEND_AFTER: Duration = Duration::from_millis(1000);

/// The handshake outstanding on one socket.
struct Pending {
    /// Session index.
    index: usize,
    initiator: Initiator,
    packet: Bytes,
    sent_at: Instant,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Message 1 for session `index` under `cookie`, in its padded packet.
fn handshake(
    entropy: &mut Entropy,
    server: &PublicKey,
    cookie: Option<&Bytes>,
    tok: Vec<u8>,
    index: usize,
) -> Result<Pending> {
    let login = Login {
        token: Bytes::from(tok),
        epoch: 0,
        checkpoint: 0,
    };
    let version = tern_core::wire::VERSION;
    let (initiator, msg1) = Initiator::start(
        entropy,
        server,
        cookie.map(|c| &c[..]),
        unix_ms(),
        &login,
        version,
    )
    .map_err(|e| BenchError::Failed(format!("handshake: {e}")))?;
    let mut pb = PacketBuilder::new(
        Header {
            session_id: 0,
            packet_number: 1,
            version,
        },
        MAX_DATAGRAM,
    );
    if let Some(c) = cookie {
        pb.push(&Frame::Cookie(c.clone()))
            .map_err(|e| BenchError::Failed(format!("cookie frame: {e}")))?;
    }
    pb.push(&Frame::Handshake(msg1))
        .map_err(|e| BenchError::Failed(format!("handshake frame: {e}")))?;
    pb.pad_to(MIN_HANDSHAKE_PACKET);
    Ok(Pending {
        index,
        initiator,
        packet: pb.finish(),
        sent_at: Instant::now(),
    })
}

fn send(sock: &std::net::UdpSocket, p: &[u8]) -> Result<()> {
    send_all(sock, p).map_err(BenchError::io("sending a HANDSHAKE"))
}

/// Opens `n` sealed sessions: session `i` is device `1 + i % per_user` of
/// user `first_user + i / per_user`, one handshake outstanding per socket
/// of `ls`, pinning the daemon's `server` key.
#[allow(clippy::too_many_arguments)]
pub fn login_many_sealed(
    ls: &mut LoginSockets,
    keys: &TokenKeys,
    server: &PublicKey,
    first_user: u64,
    per_user: usize,
    n: usize,
    max_time: Duration,
    mut keep: Option<&mut Vec<super::logins::Opened>>,
) -> Result<LoginReport> {
    let per_user = per_user.max(1);
    let start = Instant::now();
    let mut entropy = Entropy::from_seed(rand::random());
    let tok = |i: usize| {
        token(
            keys,
            first_user + (i / per_user) as u64,
            1 + (i % per_user) as u32,
        )
    };
    let k = ls.socks.len();
    let mut pending: Vec<Option<Pending>> = (0..k).map(|_| None).collect();
    let (mut next, mut opened, mut retransmits) = (0usize, 0usize, 0u64);
    let mut stale_replies = 0u64;
    let mut opened_ids = std::collections::HashSet::new();
    let mut buf = [0u8; 2048];
    let mut fds = pollfds(&ls.socks);
    // A new handshake for session `index` on socket `s`, sent at once
    // (under the socket's newest cookie).
    let restart = |entropy: &mut Entropy, ls: &LoginSockets, s: usize, index: usize| {
        let p = handshake(entropy, server, ls.cookies[s].as_ref(), tok(index), index)?;
        send(&ls.socks[s], &p.packet)?;
        Ok::<_, BenchError>(p)
    };
    while opened < n {
        if start.elapsed() > max_time {
            return Err(BenchError::Failed(format!(
                "only {opened} of {n} sealed sessions opened within {max_time:?}"
            )));
        }
        let now = Instant::now();
        for (s, slot) in pending.iter_mut().enumerate() {
            match slot {
                None if next < n => {
                    let p = handshake(
                        &mut entropy,
                        server,
                        ls.cookies[s].as_ref(),
                        tok(next),
                        next,
                    )?;
                    send(&ls.socks[s], &p.packet)?;
                    *slot = Some(p);
                    next += 1;
                }
                Some(p) if now.duration_since(p.sent_at) >= RESEND_AFTER => {
                    send(&ls.socks[s], &p.packet)?;
                    p.sent_at = now;
                    retransmits += 1;
                }
                _ => {}
            }
        }
        for f in &mut fds {
            f.revents = 0;
        }
        // SAFETY: valid pollfd array of its own length.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        if r <= 0 {
            continue;
        }
        for s in 0..k {
            if fds[s].revents == 0 {
                continue;
            }
            while let Ok(len) = ls.socks[s].recv(&mut buf) {
                // Sealed answers (a HEARTBEAT_ACK) are not ours to read.
                let Ok(packet) = Packet::decode(Bytes::copy_from_slice(&buf[..len])) else {
                    continue;
                };
                for f in packet.frames.clone() {
                    match f {
                        Frame::Retry(c) => {
                            ls.retries += 1;
                            if ls.cookies[s].as_ref() == Some(&c) {
                                continue; // a late RETRY for an older message 1
                            }
                            ls.cookies[s] = Some(c);
                            // The cookie is bound into the prologue: a new
                            // handshake under it.
                            if let Some(p) = pending[s].take() {
                                pending[s] = Some(restart(&mut entropy, ls, s, p.index)?);
                            }
                        }
                        Frame::HandshakeReply(msg2) => {
                            // A late copy of an opened session's reply (the
                            // daemon answers a resent message 1 again): its
                            // clear header names that session.
                            if opened_ids.contains(&packet.header.session_id) {
                                continue;
                            }
                            let Some(p) = pending[s].take() else { continue };
                            let Ok((welcome, channel)) = p.initiator.finish(&msg2) else {
                                stale_replies += 1;
                                pending[s] = Some(restart(&mut entropy, ls, s, p.index)?);
                                continue;
                            };
                            if !welcome
                                .frames
                                .iter()
                                .any(|f| matches!(f, Frame::LoginOk(_)))
                            {
                                return Err(BenchError::Failed(format!(
                                    "sealed login refused: {:?}",
                                    welcome.frames
                                )));
                            }
                            // The first sealed packet: the daemon stops
                            // keeping its answer.
                            let first = heartbeat_packet(welcome.session_id, 2, Some(&channel));
                            send(&ls.socks[s], &first)?;
                            opened_ids.insert(welcome.session_id);
                            opened += 1;
                            if let Some(k) = keep.as_deref_mut() {
                                k.push(super::logins::Opened {
                                    sid: welcome.session_id,
                                    next_pn: 3,
                                    channel: Some(channel),
                                });
                            }
                        }
                        Frame::Error(e) => {
                            return Err(BenchError::Failed(format!(
                                "sealed login refused: error code {} ({})",
                                e.code, e.reason
                            )))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    if stale_replies > 0 {
        tracing::debug!(stale_replies, "HANDSHAKE_REPLYs that did not verify");
    }
    Ok(LoginReport {
        opened,
        retransmits,
        elapsed: start.elapsed(),
    })
}
