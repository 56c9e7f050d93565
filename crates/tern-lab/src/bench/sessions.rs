//! `tern-bench sessions`: memory per logged-in idle session. The daemon runs
//! as a separate process (the real `ternd` next to `tern`) so the resident
//! set measured is the daemon's alone. Sessions are opened by crafting LOGIN
//! packets directly over a handful of UDP sockets: the daemon finds sessions
//! by id, not by address, so many sessions may share one socket.
//!
//! The baseline is a minimal session server (`tern-bench session-sink`, a
//! separate process too): it checks the same tokens, keeps a hash map of
//! {address, user, device, packet numbers, last heard} per session and
//! answers LOGIN_OK. What the daemon spends beyond that is its overhead.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_core::auth::TokenKeys;
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::{Frame, Header, Login, LoginOk, Packet, PacketBuilder};

use super::flow::client_socket;
use super::util::{machine_line, rss_bytes, si, token, ScratchDir};
use super::{BenchError, Result};
use crate::process::{ChildProcess, OnDrop, Stderr};
use crate::ternd::{locate_ternd, TerndConfig};
use tern::config::Config;

/// Options of `tern-bench sessions`.
#[derive(Debug, Clone)]
pub struct SessionsOpts {
    /// Sessions to open (after the warm-up).
    pub sessions: usize,
    /// UDP sockets the sessions share.
    pub sockets: usize,
    /// LOGINs outstanding at once.
    pub window: usize,
    /// Devices per user (1: every session is a different user).
    pub devices_per_user: usize,
    /// Time limit of each login phase.
    pub max_time: Duration,
    /// The `ternd` binary (default: next to this executable).
    pub ternd: Option<PathBuf>,
    /// Folder for the daemon's data.
    pub dir: Option<PathBuf>,
    /// Keep the data folder.
    pub keep: bool,
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
    socks: Vec<UdpSocket>,
    cookies: Vec<Option<Bytes>>,
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
pub fn login_many(
    ls: &mut LoginSockets,
    keys: &TokenKeys,
    first_user: u64,
    per_user: usize,
    n: usize,
    window: usize,
    max_time: Duration,
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
    let mut fds: Vec<libc::pollfd> = ls
        .socks
        .iter()
        .map(|s| libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(s),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
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
        let s = &ls.socks[sock];
        loop {
            match s.send(&p) {
                Ok(_) => return Ok(ls.generation[sock]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    return Ok(ls.generation[sock])
                }
                Err(e) => {
                    return Err(BenchError::Io {
                        what: "sending a LOGIN".into(),
                        source: e,
                    })
                }
            }
        }
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

/// RSS figures of one server under the session load.
#[derive(Debug, Clone, Copy)]
pub struct RssReport {
    /// Right after start.
    pub idle: u64,
    /// After the warm-up sessions.
    pub warm: u64,
    /// After every session.
    pub full: u64,
    /// Warm-up sessions.
    pub warmup: usize,
    /// Measured sessions.
    pub sessions: usize,
    /// The measured login phase.
    pub login: LoginReport,
    /// RETRY frames (address validation) received in all.
    pub retries: u64,
}

impl RssReport {
    /// Bytes per measured session.
    pub fn per_session(&self) -> f64 {
        self.full.saturating_sub(self.warm) as f64 / self.sessions.max(1) as f64
    }
}

/// Opens the sessions on the server at `addr` (process `pid`), measuring
/// its resident set before, after the warm-up and after all.
fn measure(addr: SocketAddr, pid: u32, keys: &TokenKeys, opts: &SessionsOpts) -> Result<RssReport> {
    let mut socks = LoginSockets::new(addr, opts.sockets)?;
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_bytes(pid)?;
    let warmup = (opts.sessions / 100).clamp(1, 1000);
    login_many(
        &mut socks,
        keys,
        1,
        opts.devices_per_user,
        warmup,
        opts.window,
        opts.max_time,
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let warm = rss_bytes(pid)?;
    // The warm-up used users 1 ..= warmup / devices_per_user + 1.
    let login = login_many(
        &mut socks,
        keys,
        2 + (warmup / opts.devices_per_user.max(1)) as u64,
        opts.devices_per_user,
        opts.sessions,
        opts.window,
        opts.max_time,
    )?;
    // Let the daemon commit the device records and go idle.
    std::thread::sleep(Duration::from_millis(500));
    let full = rss_bytes(pid)?;
    Ok(RssReport {
        idle,
        warm,
        full,
        warmup,
        sessions: opts.sessions,
        login,
        retries: socks.retries,
    })
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / (1024.0 * 1024.0))
}

fn print_rss(label: &str, r: &RssReport) {
    println!(
        "  {label}: RSS {} idle, {} after {} warm-up sessions, {} after {} more -> {:.0} bytes/session; {} logins/s ({} LOGIN retransmits, {} RETRY cookies, {:.2?})",
        mb(r.idle),
        mb(r.warm),
        r.warmup,
        mb(r.full),
        r.sessions,
        r.per_session(),
        si(r.login.opened as f64 / r.login.elapsed.as_secs_f64().max(1e-9)),
        r.login.retransmits,
        r.retries,
        r.login.elapsed,
    );
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &SessionsOpts) -> Result<()> {
    let ternd =
        locate_ternd(opts.ternd.as_deref()).map_err(|e| BenchError::Failed(e.to_string()))?;
    let scratch = ScratchDir::new(opts.dir.as_deref(), "sessions", opts.keep)?;
    let data = scratch.path().join("ternd");
    let mut cfg = Config::default();
    cfg.server.data_dir = data.clone();
    // Creates the secret, which the daemon then reads.
    let keys = tern::server::load_keys(&cfg)?;

    println!("tern-bench sessions: {}", machine_line());
    println!(
        "  {} idle sessions ({} per user) over {} UDP sockets, {} LOGINs outstanding; daemon {} (separate process)",
        opts.sessions,
        opts.devices_per_user.max(1),
        opts.sockets,
        opts.window,
        ternd.display()
    );

    let mut server = TerndConfig::new(&ternd, &data)
        .stderr(Stderr::Inherit)
        .env("RUST_LOG", "warn")
        // All sessions come from one IP here: lift the per-source pre-login
        // rate limit (5,000/s by default), which is not what is measured.
        .env("TERN_LIMITS_PRELOGIN_RATE", "10000000")
        // Clear sessions, as measured so far (sealed ones add ~200 B each).
        .env("TERN_SEAL_POLICY", "optional")
        .on_drop(OnDrop::Terminate(Duration::from_secs(10)))
        .start()
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let pid = server.pid().expect("just started");
    let tern = measure(server.addr(), pid, &keys, opts)?;
    let _ = server.terminate(Duration::from_secs(10));
    print_rss(&format!("ternd (pid {pid})"), &tern);

    // The sink is this executable (`tern-bench session-sink`).
    let exe = std::env::current_exe().map_err(BenchError::io("locating this executable"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("session-sink")
        .arg("--secret-file")
        .arg(cfg.secret_path());
    let mut sink = ChildProcess::spawn(cmd, "the session sink", Stderr::Inherit)
        .map_err(|e| BenchError::Failed(e.to_string()))?
        .on_drop(OnDrop::Terminate(Duration::from_secs(10)));
    let sink_addr = sink
        .wait_for("print its address", Duration::from_secs(30), |l| {
            l.strip_prefix("listening on udp://")
                .and_then(|a| a.parse::<SocketAddr>().ok())
        })
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let base = measure(sink_addr, sink.pid(), &keys, opts)?;
    let _ = sink.terminate(Duration::from_secs(10));
    print_rss("baseline minimal session table", &base);

    let per = tern.per_session();
    println!(
        "  ternd: {per:.0} bytes per idle session (target <= 2048 at {}: {}); baseline {:.0} bytes; ratio ternd / baseline {:.1}",
        opts.sessions,
        if per <= 2048.0 { "met" } else { "missed" },
        base.per_session(),
        per / base.per_session().max(1.0)
    );
    if tern.login.elapsed > Duration::from_secs(40) {
        println!("  warning: logins took over 40 s; the first sessions may have neared the 45 s idle timeout");
    }
    Ok(())
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
