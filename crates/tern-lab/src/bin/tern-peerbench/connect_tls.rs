//! The connect bench's TCP + TLS 1.3 baseline: a self-signed certificate
//! made with rcgen, a listener (`tern-peerbench tls-listen`, started in the
//! server namespace) that completes each handshake and then waits for the
//! client to close, and the client side: a new TCP socket per login
//! (Linux defaults: SYN retried after 1 s, doubling), timed from
//! `connect()` to the TLS handshake complete. Full handshakes only (no
//! resumption: each login is a new device), X25519 first, so one round
//! trip for TCP and one for TLS.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use tern_lab::bench::util::ScratchDir;
use tern_lab::process::{ChildProcess, OnDrop, Stderr};

use crate::connect_stats::Lane;
use crate::lab::{scratch, Lab};

/// The name in the certificate, and the name the client asks for.
const NAME: &str = "tern-lab";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A running `tern-peerbench tls-listen` and a client configuration that
/// trusts its certificate.
pub struct TlsListener {
    _proc: ChildProcess,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Trusts the listener's certificate only; no resumption.
    pub client: Arc<ClientConfig>,
    _dir: ScratchDir,
}

impl TlsListener {
    /// Makes a certificate and starts the listener on `lab.server_ip:0`
    /// where the servers run, for at most `max_time`.
    pub fn start(lab: &Lab, max_time: Duration) -> Result<TlsListener> {
        let dir = scratch("tls")?;
        let ck = rcgen::generate_simple_self_signed(vec![NAME.to_string()])
            .map_err(|e| anyhow!("making a certificate: {e}"))?;
        let (cert, key) = (dir.path().join("cert.der"), dir.path().join("key.der"));
        std::fs::write(&cert, ck.cert.der())?;
        std::fs::write(&key, ck.signing_key.serialize_der())?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ck.cert.der().clone())
            .context("trusting the certificate")?;
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.resumption = rustls::client::Resumption::disabled();
        let me = std::env::current_exe()?;
        let mut cmd = lab.server_command(&me);
        cmd.arg("tls-listen")
            .arg("--listen")
            .arg(SocketAddr::new(lab.server_ip, 0).to_string())
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--max-time")
            .arg(format!("{}s", max_time.as_secs().max(1)));
        let log = Stderr::File(dir.path().join("tls-listen.log"));
        let mut proc = ChildProcess::spawn(cmd, "tls-listen", log)?
            .on_drop(OnDrop::Terminate(Duration::from_secs(5)));
        let addr = proc.wait_for("print its address", Duration::from_secs(10), |l| {
            l.strip_prefix("listening on ")
                .and_then(|a| a.parse::<SocketAddr>().ok())
        })?;
        Ok(TlsListener {
            _proc: proc,
            addr,
            client: Arc::new(client),
            _dir: dir,
        })
    }
}

/// `tern-peerbench tls-listen`: accepts TLS 1.3 connections on `listen`
/// with the certificate and PKCS#8 key in DER files, one thread each,
/// until `max_time` has passed.
pub fn serve(listen: SocketAddr, cert: &Path, key: &Path, max_time: Duration) -> Result<()> {
    let cert = CertificateDer::from(std::fs::read(cert).context("reading the certificate")?);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        std::fs::read(key).context("reading the key")?,
    ));
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .context("certificate and key")?;
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    std::thread::spawn(move || {
        std::thread::sleep(max_time);
        eprintln!("tls-listen: {max_time:?} passed, stopping");
        std::process::exit(0);
    });
    for sock in listener.incoming() {
        match sock {
            Ok(sock) => {
                let cfg = cfg.clone();
                std::thread::spawn(move || serve_one(sock, cfg));
            }
            Err(e) => eprintln!("tls-listen: accept: {e}"),
        }
    }
    Ok(())
}

/// One connection: the handshake, its tickets, then read until the client
/// closes. Whatever the peer sends, this only returns.
fn serve_one(mut sock: TcpStream, cfg: Arc<ServerConfig>) {
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(120)));
    let _ = sock.set_write_timeout(Some(Duration::from_secs(120)));
    let Ok(mut conn) = ServerConnection::new(cfg) else {
        return;
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            return;
        }
    }
    while conn.wants_write() {
        if conn.write_tls(&mut sock).is_err() {
            return;
        }
    }
    let _ = sock.flush();
    let mut buf = [0u8; 4096];
    while matches!(sock.read(&mut buf), Ok(n) if n > 0) {}
}

/// One login: `Some(time)` from `connect()` to the handshake complete, or
/// `None` if not within `end`.
fn handshake(addr: SocketAddr, cfg: &Arc<ClientConfig>, end: Instant) -> Result<Option<Duration>> {
    let t0 = Instant::now();
    let left = |now: Instant| end.saturating_duration_since(now);
    let timed_out =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock);
    let mut sock = match TcpStream::connect_timeout(&addr, left(t0)) {
        Ok(s) => s,
        Err(e) if timed_out(&e) => return Ok(None),
        Err(e) => bail!("TCP connect to {addr}: {e}"),
    };
    sock.set_nodelay(true)?;
    let name = ServerName::try_from(NAME)?;
    let mut conn = ClientConnection::new(cfg.clone(), name)?;
    while conn.is_handshaking() {
        let wait = left(Instant::now());
        if wait.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(wait))?;
        sock.set_write_timeout(Some(wait))?;
        match conn.complete_io(&mut sock) {
            Ok(_) => {}
            Err(e) if timed_out(&e) => return Ok(None),
            Err(e) => bail!("TLS handshake with {addr}: {e}"),
        }
    }
    let took = t0.elapsed();
    // Close at once (the listener's tickets may be unread: a reset is fine).
    conn.send_close_notify();
    let _ = conn.write_tls(&mut sock);
    Ok(Some(took))
}

/// `plan.logins` handshakes, one at a time, each from a new socket.
pub fn logins(
    name: &str,
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    plan: crate::connect_tern::Plan,
) -> Result<Lane> {
    let mut lane = Lane::new(name);
    for i in 0..plan.logins {
        if plan.out_of_time(&mut lane, i) {
            break;
        }
        let t = handshake(addr, cfg, Instant::now() + plan.bound)
            .with_context(|| format!("{name}: login {i}"))?;
        lane.times.push(t);
    }
    Ok(lane)
}
