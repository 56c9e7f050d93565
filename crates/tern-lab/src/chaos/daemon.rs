//! The real `ternd` as a child process: started on a data folder, killed
//! with SIGKILL, restarted on the same folder and port, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Finds `ternd`: `explicit` if given, else next to the current executable
/// (where cargo puts every binary of the package).
pub fn locate_ternd(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--ternd {}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let candidate = exe
        .parent()
        .map(|d| d.join(format!("ternd{}", std::env::consts::EXE_SUFFIX)));
    match candidate {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(format!(
            "no ternd next to {}; build it (cargo build --bin ternd) or pass --ternd PATH",
            exe.display()
        )),
    }
}

/// A `ternd serve` child process.
pub struct Daemon {
    binary: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    addr: SocketAddr,
}

impl Daemon {
    /// Starts `ternd serve --listen 127.0.0.1:0 --data-dir DATA`, logging to
    /// `log`, with extra environment `env` (e.g. `RUST_LOG`; the `TERN_*`
    /// variables of this process are not passed on). Waits up to 20 s for its address.
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        let mut d = Daemon {
            binary: binary.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            addr: "127.0.0.1:0".parse().expect("literal"),
        };
        let (child, addr) = d.spawn(d.addr)?;
        d.child = Some(child);
        d.addr = addr;
        Ok(d)
    }

    /// The address clients (and the proxy) send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Is a process running (or at least not reaped)?
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&self, listen: SocketAddr) -> Result<(Child, SocketAddr), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, _) in std::env::vars() {
            if k.starts_with("TERN_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Reads to the end so the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.trim().strip_prefix("listening on udp://") {
                        match a.parse() {
                            Ok(addr) => return Ok((child, addr)),
                            Err(e) => {
                                let _ = child.kill();
                                let _ = child.wait();
                                return Err(format!("ternd printed a bad address {a:?}: {e}"));
                            }
                        }
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    return Err(format!(
                        "ternd did not report its address ({e:?}); exit status {status:?}; see {}",
                        self.log.display()
                    ));
                }
            }
        }
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(&mut self) -> Result<(), String> {
        let mut c = self.child.take().ok_or("ternd is not running")?;
        c.kill().map_err(|e| format!("SIGKILL ternd: {e}"))?;
        c.wait().map_err(|e| format!("reap ternd: {e}"))?;
        Ok(())
    }

    /// Starts again on the same data folder and address, retrying for up to
    /// `within` while the port is not free yet.
    pub fn restart(&mut self, within: Duration) -> Result<(), String> {
        if self.child.is_some() {
            return Err("ternd is still running".into());
        }
        let deadline = Instant::now() + within;
        loop {
            match self.spawn(self.addr) {
                Ok((child, addr)) if addr == self.addr => {
                    self.child = Some(child);
                    return Ok(());
                }
                Ok((mut child, addr)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("ternd restarted on {addr}, not {}", self.addr));
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// SIGTERM, then up to `timeout` for a graceful exit (SIGKILL after).
    /// Returns whether it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
