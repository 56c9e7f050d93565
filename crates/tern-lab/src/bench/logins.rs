//! Many sessions opened by crafting LOGIN packets directly over a handful
//! of UDP sockets (the daemon finds sessions by id, not by address, so many
//! sessions may share one socket), with the address-validation cookie each
//! socket gets.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::auth::TokenKeys;
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::{Frame, Header, Login, Packet, PacketBuilder};

use super::fleet::{client_socket, pollfds, send_all};
use super::util::token;
use super::{BenchError, Result};

/// A session a login phase opened, for a keeper to send its heartbeats:
/// its id, the next packet number its client would use, and its keys when
/// sealed.
pub struct Opened {
    /// Session id.
    pub sid: u64,
    /// Next client packet number.
    pub next_pn: u64,
    /// The session's keys (sealed sessions).
    pub channel: Option<tern_core::seal::Channel>,
}

/// What one login phase did.
#[derive(Debug, Clone, Copy)]
pub struct LoginReport {
    /// Sessions opened.
    pub opened: usize,
    /// LOGINs sent again after silence.
    pub retransmits: u64,
    /// Wall time.
    pub elapsed: Duration,
}

fn login_packet(token: Vec<u8>, cookie: Option<&Bytes>) -> Bytes {
    let mut pb = PacketBuilder::new(
        Header {
            session_id: 0,
            packet_number: 1,
            version: tern_core::wire::VERSION,
        },
        MAX_DATAGRAM,
    );
    if let Some(c) = cookie {
        pb.push(&Frame::Cookie(c.clone()))
            .expect("a cookie fits in a datagram");
    }
    pb.push(&Frame::Login(Login {
        token: Bytes::from(token),
        epoch: 0,
        checkpoint: 0,
    }))
    .expect("a LOGIN fits in a datagram");
    pb.finish()
}

/// Sockets the sessions share, with the address-validation cookie each one
/// got from the daemon (a cookie proves an address, so one serves every
/// session on that socket).
pub struct LoginSockets {
    pub(super) socks: Vec<UdpSocket>,
    pub(super) cookies: Vec<Option<Bytes>>,
    /// Bumped when a socket's cookie changes.
    generation: Vec<u32>,
    /// RETRY frames received.
    pub retries: u64,
}

impl LoginSockets {
    /// `n` sockets connected to `server`.
    pub fn new(server: SocketAddr, n: usize) -> Result<LoginSockets> {
        let socks = (0..n.max(1))
            .map(|_| client_socket(server).map_err(BenchError::io("binding a client socket")))
            .collect::<Result<Vec<_>>>()?;
        let n = socks.len();
        Ok(LoginSockets {
            socks,
            cookies: vec![None; n],
            generation: vec![0; n],
            retries: 0,
        })
    }
}

/// Opens `n` sessions: session `i` is device `1 + i % per_user` of user
/// `first_user + i / per_user`, over the shared sockets, at most `window` LOGINs unanswered at once. A LOGIN
/// unanswered for 300 ms is sent again; a RETRY (address validation) makes
/// every LOGIN of that socket go again at once with the cookie.
#[allow(clippy::too_many_arguments)]
pub fn login_many(
    ls: &mut LoginSockets,
    keys: &TokenKeys,
    first_user: u64,
    per_user: usize,
    n: usize,
    window: usize,
    max_time: Duration,
    mut keep: Option<&mut Vec<Opened>>,
) -> Result<LoginReport> {
    let per_user = per_user.max(1);
    let start = Instant::now();
    let k = ls.socks.len();
    let mut done = vec![false; n];
    // Cookie generation each LOGIN was last sent with (0: none).
    let mut sent_gen = vec![0u32; n];
    let mut opened = 0usize;
    let mut next = 0usize;
    let mut in_flight: VecDeque<(usize, Instant)> = VecDeque::new();
    let mut retransmits = 0u64;
    let mut buf = [0u8; 2048];
    let mut fds = pollfds(&ls.socks);
    let send = |ls: &LoginSockets, i: usize| -> Result<u32> {
        let sock = i % k;
        let p = login_packet(
            token(
                keys,
                first_user + (i / per_user) as u64,
                1 + (i % per_user) as u32,
            ),
            ls.cookies[sock].as_ref(),
        );
        send_all(&ls.socks[sock], &p).map_err(BenchError::io("sending a LOGIN"))?;
        Ok(ls.generation[sock])
    };
    let resend_after = Duration::from_millis(300);
    while opened < n {
        if start.elapsed() > max_time {
            return Err(BenchError::Failed(format!(
                "only {opened} of {n} sessions opened within {max_time:?}"
            )));
        }
        while in_flight.len() < window && next < n {
            sent_gen[next] = send(ls, next)?;
            in_flight.push_back((next, Instant::now()));
            next += 1;
        }
        // Resend the oldest unanswered LOGINs.
        let now = Instant::now();
        while let Some(&(i, at)) = in_flight.front() {
            if done[i] {
                in_flight.pop_front();
            } else if now.duration_since(at) >= resend_after {
                in_flight.pop_front();
                sent_gen[i] = send(ls, i)?;
                retransmits += 1;
                in_flight.push_back((i, now));
            } else {
                break;
            }
        }
        for f in &mut fds {
            f.revents = 0;
        }
        // SAFETY: valid pollfd array.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        if r <= 0 {
            continue;
        }
        for (sock, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            let mut new_cookie = false;
            loop {
                let len = match ls.socks[sock].recv(&mut buf) {
                    Ok(len) => len,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                };
                let Ok(p) = Packet::decode(Bytes::copy_from_slice(&buf[..len])) else {
                    continue;
                };
                for f in p.frames {
                    match f {
                        Frame::LoginOk(ok) => {
                            let i = (ok.user.wrapping_sub(first_user) as usize)
                                .wrapping_mul(per_user)
                                .wrapping_add((ok.device as usize).wrapping_sub(1));
                            if i < n && !done[i] {
                                done[i] = true;
                                opened += 1;
                                if let Some(k) = keep.as_deref_mut() {
                                    k.push(Opened {
                                        sid: p.header.session_id,
                                        next_pn: 2,
                                        channel: None,
                                    });
                                }
                            }
                        }
                        Frame::Retry(c) => {
                            ls.retries += 1;
                            if ls.cookies[sock].as_ref() != Some(&c) {
                                ls.cookies[sock] = Some(c);
                                ls.generation[sock] += 1;
                                new_cookie = true;
                            }
                        }
                        Frame::Error(e) => {
                            return Err(BenchError::Failed(format!(
                                "login refused: error code {} ({})",
                                e.code, e.reason
                            )))
                        }
                        _ => {}
                    }
                }
            }
            if new_cookie {
                // Every LOGIN of this socket sent with an older cookie (or
                // none) was answered by RETRY, not LOGIN_OK: send it again.
                let now = Instant::now();
                for (i, at) in in_flight.iter_mut() {
                    if !done[*i] && *i % k == sock && sent_gen[*i] < ls.generation[sock] {
                        sent_gen[*i] = send(ls, *i)?;
                        *at = now;
                    }
                }
            }
        }
    }
    Ok(LoginReport {
        opened,
        retransmits,
        elapsed: start.elapsed(),
    })
}
