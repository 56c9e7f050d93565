//! The launcher of the real `tern sidecar` process, for the integration
//! tests, the sidecar benchmark and the example clients' CI runs: started
//! on a state folder against a `ternd`, its endpoint read from the
//! `listening on …` line it prints, SIGKILLed and restarted on the same
//! state folder (and the same TCP port, if it had one).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tern::client::SealKey;

use crate::http::{Endpoint, HttpClient};
use crate::process::{next_to_exe, ChildProcess, ProcessError, Stderr};

/// How to start `tern sidecar`.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    binary: PathBuf,
    server: SocketAddr,
    token: String,
    seal_key: Option<SealKey>,
    state_dir: PathBuf,
    tcp: Option<SocketAddr>,
    log: Option<PathBuf>,
    connect_timeout: Option<Duration>,
}

impl SidecarConfig {
    /// `binary sidecar --server SERVER --token TOKEN --state-dir DIR`, on
    /// the default Unix socket.
    pub fn new(
        binary: impl Into<PathBuf>,
        server: SocketAddr,
        token_hex: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> SidecarConfig {
        SidecarConfig {
            binary: binary.into(),
            server,
            token: token_hex.into(),
            seal_key: None,
            state_dir: state_dir.into(),
            tcp: None,
            log: None,
            connect_timeout: None,
        }
    }

    /// The server's seal key.
    pub fn seal_key(mut self, key: Option<SealKey>) -> Self {
        self.seal_key = key;
        self
    }

    /// Loopback TCP with a bearer token (port 0 picks one) instead of the
    /// Unix socket.
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp = Some(addr);
        self
    }

    /// How long it waits for its first login before serving anyway.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = Some(t);
        self
    }

    /// Appends its log (stderr) to `path`.
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Starts it and waits up to 30 s for its endpoint line.
    pub fn start(self) -> Result<Sidecar, ProcessError> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("sidecar")
            .arg("--server")
            .arg(self.server.to_string())
            .arg("--token")
            .arg(&self.token)
            .arg("--state-dir")
            .arg(&self.state_dir);
        if let Some(k) = self.seal_key {
            cmd.arg("--seal-key").arg(k.to_string());
        }
        if let Some(a) = self.tcp {
            cmd.arg("--listen").arg(a.to_string());
        }
        if let Some(t) = self.connect_timeout {
            cmd.arg("--connect-timeout")
                .arg(format!("{}ms", t.as_millis()));
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TERN_") {
                cmd.env_remove(k);
            }
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let stderr = match &self.log {
            Some(p) => Stderr::File(p.clone()),
            None => Stderr::Null,
        };
        let mut process = ChildProcess::spawn(cmd, "tern sidecar", stderr)?;
        let endpoint = process.wait_for("print its endpoint", Duration::from_secs(30), |l| {
            l.strip_prefix("listening on ").and_then(Endpoint::parse)
        })?;
        let bearer = match &endpoint {
            Endpoint::Tcp(_) => std::fs::read_to_string(self.state_dir.join("api.token"))
                .ok()
                .map(|t| t.trim().to_string()),
            Endpoint::Unix(_) => None,
        };
        Ok(Sidecar {
            config: self,
            process: Some(process),
            endpoint,
            bearer,
        })
    }
}

/// A running (or killed) sidecar.
pub struct Sidecar {
    config: SidecarConfig,
    process: Option<ChildProcess>,
    endpoint: Endpoint,
    bearer: Option<String>,
}

impl Sidecar {
    /// Where its API listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The bearer token (TCP only).
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// A new client of its API.
    pub fn client(&self) -> HttpClient {
        HttpClient::new(self.endpoint.clone(), self.bearer.clone())
    }

    /// Its state folder.
    pub fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    /// CPU time used so far.
    pub fn cpu(&self) -> Duration {
        self.process
            .as_ref()
            .map_or(Duration::ZERO, ChildProcess::cpu)
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> u64 {
        self.process.as_ref().map_or(0, ChildProcess::rss)
    }

    /// SIGKILL.
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        if let Some(mut p) = self.process.take() {
            p.kill()?;
        }
        Ok(())
    }

    /// SIGTERM and up to `timeout` to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Result<(), ProcessError> {
        if let Some(mut p) = self.process.take() {
            p.terminate(timeout)?;
        }
        Ok(())
    }

    /// Starts again on the same state folder (and TCP port), retrying for
    /// a few seconds while the port is not free yet.
    pub fn restart(&mut self) -> Result<(), ProcessError> {
        let _ = self.kill();
        let mut config = self.config.clone();
        if let (Some(_), Endpoint::Tcp(a)) = (config.tcp, &self.endpoint) {
            config.tcp = Some(*a);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match config.clone().start() {
                Ok(s) => {
                    *self = Sidecar {
                        config: self.config.clone(),
                        ..s
                    };
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// Finds `tern` next to the current executable (where cargo puts every
/// binary of the workspace), or `explicit`.
pub fn locate_tern(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(|| next_to_exe("tern"), Path::to_path_buf)
}
