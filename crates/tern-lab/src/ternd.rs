//! The one launcher of the real `ternd` binary, for the chaos run, the
//! benchmarks, the peer bench and the integration tests.
//!
//! [`TerndConfig`] says how: `ternd serve --listen ADDR --quic ADDR|off
//! --data-dir DIR` (QUIC off unless asked for, or left to the daemon's own
//! configuration) plus extra arguments and environment, optionally behind
//! a command prefix (the peer bench runs it in a network namespace with
//! `ip netns exec NS`), stderr to a log file. [`Ternd`] is the running
//! daemon: the UDP address (and QUIC address, certificate fingerprint and
//! seal key) read from the lines `ternd serve` prints, any later line it
//! prints, SIGKILL, SIGTERM and a restart on the same data folder and ports.
//!
//! The `TERN_*` variables of the calling process are not passed on: a
//! launched daemon is configured only by its data folder and what the
//! caller sets.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use tern::client::SealKey;
use tern::config::QuicListen;
use thiserror::Error;

use crate::process::{next_to_exe, ChildProcess, OnDrop, ProcessError, Stderr};

/// Why `ternd` could not be found, started, stopped or restarted.
#[derive(Debug, Error)]
pub enum TerndError {
    /// Starting, waiting for or signalling the process failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// It printed an address that does not parse.
    #[error("ternd printed a bad address {0:?}")]
    BadAddress(String),
    /// It came up on another address than the one asked for.
    #[error("ternd came up on {got}, not {asked}")]
    Moved {
        /// The address asked for.
        asked: SocketAddr,
        /// The address it listens on.
        got: SocketAddr,
    },
    /// It is not running (killed or stopped).
    #[error("ternd is not running")]
    NotRunning,
    /// It is still running (a restart needs it stopped).
    #[error("ternd is still running")]
    StillRunning,
    /// No binary where one was expected.
    #[error("{0}")]
    NotFound(String),
    /// `ternd token` failed.
    #[error("ternd token: {0}")]
    Token(String),
}

/// How to start `ternd serve` (see the module documentation).
#[derive(Debug, Clone)]
pub struct TerndConfig {
    binary: PathBuf,
    data_dir: PathBuf,
    listen: SocketAddr,
    /// `--quic` (`None`: not passed, the daemon's configuration decides).
    quic: Option<QuicListen>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    prefix: Vec<OsString>,
    stderr: Stderr,
    ready_timeout: Duration,
    on_drop: OnDrop,
}

impl TerndConfig {
    /// `binary serve --listen 127.0.0.1:0 --quic off --data-dir data_dir`,
    /// stderr discarded, 30 s to come up, SIGKILLed when dropped.
    pub fn new(binary: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> TerndConfig {
        TerndConfig {
            binary: binary.into(),
            data_dir: data_dir.into(),
            listen: "127.0.0.1:0".parse().expect("literal"),
            quic: Some(QuicListen::Off),
            args: Vec::new(),
            env: Vec::new(),
            prefix: Vec::new(),
            stderr: Stderr::Null,
            ready_timeout: Duration::from_secs(30),
            on_drop: OnDrop::Kill,
        }
    }

    /// The raw UDP address (port 0 picks one).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Also serve QUIC here (port 0 picks one).
    pub fn quic(mut self, addr: SocketAddr) -> Self {
        self.quic = Some(QuicListen::At(addr));
        self
    }

    /// Leaves QUIC to the daemon's own configuration (its environment and
    /// defaults: on, next to raw UDP), as `scripts/serve.sh` starts it.
    pub fn quic_as_configured(mut self) -> Self {
        self.quic = None;
        self
    }

    /// One more argument after the others of `ternd serve`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An environment variable of the daemon (`RUST_LOG`, `TERN_…`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs `ternd` through these words, e.g. `ip netns exec NS`.
    pub fn prefix<S: Into<OsString>>(mut self, words: impl IntoIterator<Item = S>) -> Self {
        self.prefix = words.into_iter().map(Into::into).collect();
        self
    }

    /// Where its stderr (its log) goes.
    pub fn stderr(mut self, stderr: Stderr) -> Self {
        self.stderr = stderr;
        self
    }

    /// Appends its log to `path`.
    pub fn log_file(self, path: impl Into<PathBuf>) -> Self {
        self.stderr(Stderr::File(path.into()))
    }

    /// How long it may take to print its address.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// What happens if it is still running when the [`Ternd`] is dropped.
    pub fn on_drop(mut self, on_drop: OnDrop) -> Self {
        self.on_drop = on_drop;
        self
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn command(&self) -> Command {
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir);
        if let Some(q) = self.quic {
            cmd.arg("--quic").arg(q.to_string());
        }
        cmd.args(&self.args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TERN_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts the daemon and waits for its address lines.
    pub fn start(self) -> Result<Ternd, TerndError> {
        let process = ChildProcess::spawn(self.command(), "ternd", self.stderr.clone())?
            .on_drop(self.on_drop);
        let mut d = Ternd {
            config: self,
            process: Some(process),
            addr: "0.0.0.0:0".parse().expect("literal"),
            quic: None,
            fingerprint: None,
            seal_key: None,
            api: None,
        };
        d.read_addresses()?;
        Ok(d)
    }

    /// Starts it on exactly the configured addresses, retrying for up to
    /// `within` while they are not free yet (a restart after a crash).
    pub fn start_retrying(self, within: Duration) -> Result<Ternd, TerndError> {
        let deadline = Instant::now() + within;
        loop {
            match self.clone().start() {
                Ok(mut d) => {
                    let quic = match self.quic {
                        Some(QuicListen::At(a)) => Some(a),
                        _ => None,
                    };
                    for (asked, got) in [(Some(self.listen), Some(d.addr)), (quic, d.quic)] {
                        if let (Some(asked), Some(got)) = (asked, got) {
                            if asked.port() != 0 && got != asked {
                                let _ = d.kill();
                                return Err(TerndError::Moved { asked, got });
                            }
                        }
                    }
                    return Ok(d);
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// A running (or killed, ready to restart) `ternd serve`.
pub struct Ternd {
    config: TerndConfig,
    process: Option<ChildProcess>,
    addr: SocketAddr,
    quic: Option<SocketAddr>,
    fingerprint: Option<String>,
    seal_key: Option<SealKey>,
    api: Option<SocketAddr>,
}

/// What `ternd serve` prints at start, so far.
#[derive(Default)]
struct Printed {
    seal_key: Option<SealKey>,
    api: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    quic: Option<SocketAddr>,
    fingerprint: Option<String>,
    quic_off: bool,
}

fn parse_addr(a: &str) -> Result<SocketAddr, TerndError> {
    a.parse().map_err(|_| TerndError::BadAddress(a.to_string()))
}

impl Ternd {
    /// Reads the start lines: `seal key K` (first, when sealing is on),
    /// `listening on udp://A`, then `listening on quic://A` and `quic
    /// certificate sha256 FP`, or `quic off`.
    fn read_addresses(&mut self) -> Result<(), TerndError> {
        let timeout = self.config.ready_timeout;
        let process = self.process.as_mut().ok_or(TerndError::NotRunning)?;
        let mut p = Printed::default();
        let printed = process.wait_for("print its address", timeout, |line| {
            if let Some(k) = line.strip_prefix("seal key ") {
                p.seal_key = k.parse().ok();
            } else if let Some(a) = line.strip_prefix("listening on api http://") {
                p.api = a.parse().ok();
            } else if let Some(a) = line.strip_prefix("listening on udp://") {
                p.udp = Some(match parse_addr(a) {
                    Ok(a) => a,
                    Err(e) => return Some(Err(e)),
                });
            } else if let Some(a) = line.strip_prefix("listening on quic://") {
                p.quic = Some(match parse_addr(a) {
                    Ok(a) => a,
                    Err(e) => return Some(Err(e)),
                });
            } else if let Some(f) = line.strip_prefix("quic certificate sha256 ") {
                p.fingerprint = Some(f.to_string());
            } else if line.starts_with("quic off") {
                p.quic_off = true;
            }
            let done = p.udp.is_some() && (p.quic_off || p.fingerprint.is_some());
            done.then(|| Ok(std::mem::take(&mut p)))
        })??;
        self.addr = printed.udp.expect("waited for");
        self.quic = printed.quic;
        self.fingerprint = printed.fingerprint;
        self.seal_key = printed.seal_key;
        self.api = printed.api;
        Ok(())
    }

    /// The server API's address (`[api] listen`), when enabled.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api
    }

    /// Reads what it prints after its start lines until `ready` returns a
    /// value (it sees every line), for at most `timeout`; `what` names the
    /// awaited output in the error. On failure the process is SIGKILLed.
    pub fn wait_for_line<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        ready: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, TerndError> {
        let process = self.process.as_mut().ok_or(TerndError::NotRunning)?;
        Ok(process.wait_for(what, timeout, ready)?)
    }

    /// The raw UDP address clients send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The QUIC address, when started with one.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic
    }

    /// SHA-256 of the QUIC certificate (hex), when started with QUIC.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The key clients seal raw-UDP sessions with, as it printed it (none
    /// with `[seal] policy = "off"`).
    pub fn seal_key(&self) -> Option<SealKey> {
        self.seal_key
    }

    /// Its data folder.
    pub fn data_dir(&self) -> &Path {
        self.config.data_dir()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    /// Is a process running (or at least not reaped)?
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// CPU time the running process has used.
    pub fn cpu(&self) -> Duration {
        self.process
            .as_ref()
            .map_or(Duration::ZERO, ChildProcess::cpu)
    }

    /// Resident set size of the running process, in bytes.
    pub fn rss(&self) -> u64 {
        self.process.as_ref().map_or(0, ChildProcess::rss)
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(&mut self) -> Result<(), TerndError> {
        let mut p = self.process.take().ok_or(TerndError::NotRunning)?;
        p.kill()?;
        Ok(())
    }

    /// SIGTERM, then up to `timeout` for a graceful exit (SIGKILL after,
    /// and [`ProcessError::StopTimeout`]).
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, TerndError> {
        let mut p = self.process.take().ok_or(TerndError::NotRunning)?;
        Ok(p.terminate(timeout)?)
    }

    /// Starts again on the same data folder and addresses, retrying for up
    /// to `within` while the ports are not free yet.
    pub fn restart(&mut self, within: Duration) -> Result<(), TerndError> {
        if self.process.is_some() {
            return Err(TerndError::StillRunning);
        }
        let mut config = self.config.clone().listen(self.addr);
        if let Some(q) = self.quic {
            config = config.quic(q);
        }
        if let Some(a) = self.api {
            // The API comes back on its port too.
            config = config.env("TERN_API_LISTEN", a.to_string());
        }
        let d = config.start_retrying(within)?;
        *self = Ternd {
            config: self.config.clone(),
            ..d
        };
        Ok(())
    }
}

/// Finds `ternd`: `explicit` if given, else next to the current executable
/// (where cargo puts every binary of the workspace).
pub fn locate_ternd(explicit: Option<&Path>) -> Result<PathBuf, TerndError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(TerndError::NotFound(format!(
                "--ternd {}: no such file",
                p.display()
            )))
        };
    }
    let p = next_to_exe("ternd");
    if p.is_file() {
        Ok(p)
    } else {
        Err(TerndError::NotFound(format!(
            "no ternd at {}: build it (cargo build [--release] --bin ternd) or pass --ternd PATH",
            p.display()
        )))
    }
}

/// A token from `binary token --data-dir DIR --user U --device D` (the
/// secret is created on first use), as the hex it prints.
pub fn issue_token(
    binary: &Path,
    data_dir: &Path,
    user: u64,
    device: u32,
) -> Result<String, TerndError> {
    let out = Command::new(binary)
        .args(["token", "--data-dir"])
        .arg(data_dir)
        .args(["--user", &user.to_string(), "--device", &device.to_string()])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| TerndError::Token(e.to_string()))?;
    if !out.status.success() {
        return Err(TerndError::Token(format!("exit status {}", out.status)));
    }
    String::from_utf8(out.stdout)
        .map(|s| s.trim().to_string())
        .map_err(|e| TerndError::Token(e.to_string()))
}
