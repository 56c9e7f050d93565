//! The two servers under test, each a real separate process started fresh
//! for every workload: `ternd` (embedded RocksDB in a temporary data folder,
//! raw UDP) and `mosquitto` (generated config, persistence on), plus the
//! optional `tern-proxy` in front of ternd for added delay.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tern_core::auth::TokenKeys;

use tern_lab::bench::seal::Sealing;
use tern_lab::bench::util::ScratchDir;
use tern_lab::process::{ChildProcess, OnDrop, Stderr};
use tern_lab::ternd::TerndConfig;

use crate::lab::{scratch, Lab};

/// How long a server may take to stop on SIGTERM when dropped.
const STOP: OnDrop = OnDrop::Terminate(Duration::from_secs(10));

/// A running ternd, started by the lab's one launcher.
pub struct Ternd {
    daemon: tern_lab::ternd::Ternd,
    /// UDP address.
    pub addr: SocketAddr,
    /// Keys of its data folder, to sign tokens.
    pub keys: TokenKeys,
    /// The seal key its clients pin (`None`: clear sessions).
    pub seal_key: Option<tern::client::SealKey>,
    /// Data folder (removed on drop, after the process).
    _dir: ScratchDir,
}

impl Ternd {
    /// Starts `ternd serve` on `lab.server_ip:0` with a fresh data folder,
    /// in the server namespace: sealing required (its default) and clients
    /// sealed, or with `Sealing::Clear` sealing off and clients clear.
    pub fn start(lab: &Lab, ternd: &Path, sealing: Sealing) -> Result<Ternd> {
        let dir = scratch("ternd")?;
        let data = dir.path().join("data");
        let daemon = TerndConfig::new(ternd, &data)
            // QUIC as a user runs it: on, next to raw UDP.
            .quic_as_configured()
            .prefix(lab.server_prefix())
            .listen(SocketAddr::new(lab.server_ip, 0))
            .log_file(dir.path().join("ternd.log"))
            .env("RUST_LOG", "warn")
            .env("TERN_SEAL_POLICY", sealing.policy_env())
            .on_drop(STOP)
            .start()?;
        let mut cfg = tern::config::Config::default();
        cfg.server.data_dir = data;
        let keys = tern::server::load_keys(&cfg).context("reading ternd's token secret")?;
        let seal_key = match sealing {
            Sealing::Sealed => Some(
                daemon
                    .seal_key()
                    .context("ternd printed no seal key with sealing required")?,
            ),
            Sealing::Clear => None,
        };
        Ok(Ternd {
            seal_key,
            addr: daemon.addr(),
            daemon,
            keys,
            _dir: dir,
        })
    }

    /// CPU time the daemon has used.
    pub fn cpu(&self) -> Duration {
        self.daemon.cpu()
    }
}

/// A running tern-proxy in front of a ternd.
pub struct TernProxy {
    /// The process (stopped on drop).
    _proc: ChildProcess,
    /// Where clients send.
    pub addr: SocketAddr,
    _dir: ScratchDir,
}

impl TernProxy {
    /// `tern-proxy --listen IP:0 --upstream UP --both SPEC`.
    pub fn start(lab: &Lab, bin: &Path, upstream: SocketAddr, spec: &str) -> Result<TernProxy> {
        let dir = scratch("proxy")?;
        let mut cmd = lab.server_command(bin);
        cmd.arg("--listen")
            .arg(SocketAddr::new(lab.server_ip, 0).to_string())
            .arg("--upstream")
            .arg(upstream.to_string())
            .arg("--seed")
            .arg("7")
            .arg("--both")
            .arg(spec)
            .arg("--stats-every")
            .arg("off")
            .env("RUST_LOG", "warn");
        let log = Stderr::File(dir.path().join("proxy.log"));
        let mut proc = ChildProcess::spawn(cmd, "tern-proxy", log)?.on_drop(STOP);
        let addr = proc.wait_for("print its address", Duration::from_secs(30), |l| {
            l.strip_prefix("listening on ")
                .and_then(|a| a.parse::<SocketAddr>().ok())
        })?;
        Ok(TernProxy {
            _proc: proc,
            addr,
            _dir: dir,
        })
    }
}

/// Settings of the generated mosquitto.conf.
#[derive(Debug, Clone)]
pub struct MosquittoSettings {
    /// `max_inflight_messages` (broker to subscriber, QoS 1 in flight).
    pub max_inflight: u16,
}

/// A running mosquitto.
pub struct Mosquitto {
    /// The process.
    pub proc: ChildProcess,
    /// TCP address.
    pub addr: SocketAddr,
    /// The config it runs with (for the record).
    pub config: String,
    dir: ScratchDir,
}

impl Mosquitto {
    /// Writes a config (persistence to a temp folder, queues unbounded so
    /// that nothing is dropped, TCP_NODELAY) and starts `mosquitto -c`.
    pub fn start(lab: &Lab, bin: &Path, s: &MosquittoSettings) -> Result<Mosquitto> {
        let dir = scratch("mosquitto")?;
        let persist = dir.path().join("persist");
        std::fs::create_dir_all(&persist)?;
        let port = free_port(lab.server_ip)?;
        let config = format!(
            "# generated by tern-peerbench\n\
             listener {port} {ip}\n\
             allow_anonymous true\n\
             # QoS 1 state and offline queues of persistent sessions are kept,\n\
             # and saved to this folder (mosquitto.db) every autosave_interval\n\
             # seconds and at exit: a PUBACK does not mean \"on disk\".\n\
             persistence true\n\
             persistence_location {persist}/\n\
             autosave_interval 1800\n\
             # Unbounded queues: the default (1000) would DROP messages for an\n\
             # offline subscriber, which Tern never does.\n\
             max_queued_messages 0\n\
             max_queued_bytes 0\n\
             max_inflight_messages {inflight}\n\
             set_tcp_nodelay true\n\
             user root\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n",
            ip = lab.server_ip,
            persist = persist.display(),
            inflight = s.max_inflight,
        );
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, &config)?;
        let mut cmd = lab.server_command(bin);
        cmd.arg("-c").arg(&conf);
        let log = dir.path().join("mosquitto.log");
        let mut proc = ChildProcess::spawn_logged(cmd, "mosquitto", &log)?.on_drop(STOP);
        let addr = SocketAddr::new(lab.server_ip, port);
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if !proc.alive() || Instant::now() >= end {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("mosquitto did not start on {addr}: {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Mosquitto {
            proc,
            addr,
            config,
            dir,
        })
    }

    /// The persistence folder.
    pub fn persist_dir(&self) -> PathBuf {
        self.dir.path().join("persist")
    }
}

/// A TCP port that is free on `ip` right now. In the namespace lab the
/// server's address is not ours to bind, so a fixed range is probed by
/// connecting: nothing else listens in our private namespace.
fn free_port(ip: IpAddr) -> Result<u16> {
    if let Ok(l) = std::net::TcpListener::bind(SocketAddr::new(ip, 0)) {
        return Ok(l.local_addr()?.port());
    }
    for port in 18830..18930u16 {
        if TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_millis(100))
            .is_err()
        {
            return Ok(port);
        }
    }
    bail!("no free port on {ip}")
}
