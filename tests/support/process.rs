//! The real `ternd` binary as a child process: started on a data folder,
//! its address read from the `listening on udp://ADDR` line it prints, and
//! stopped with SIGKILL (a crash) or SIGTERM (a graceful stop).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of the daemon binary built for this test run.
pub fn ternd() -> &'static str {
    env!("CARGO_BIN_EXE_ternd")
}

/// Issues a token with `ternd token` (creates the secret on first use).
pub fn token(data_dir: &Path, user: u64, device: u32) -> Vec<u8> {
    let out = Command::new(ternd())
        .args(["token", "--data-dir"])
        .arg(data_dir)
        .args(["--user", &user.to_string(), "--device", &device.to_string()])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .expect("ternd token runs");
    assert!(out.status.success(), "ternd token failed: {:?}", out.status);
    let text = String::from_utf8(out.stdout).expect("utf-8 token");
    hex::decode(text.trim()).expect("hex token")
}

/// A running `ternd serve`.
pub struct RealDaemon {
    child: Option<Child>,
    /// The UDP address it listens on.
    pub addr: SocketAddr,
    /// The key clients seal raw-UDP sessions with, as it printed it.
    pub seal_key: Option<tern::client::SealKey>,
    /// Its data folder.
    pub data_dir: PathBuf,
}

impl RealDaemon {
    /// Starts `ternd serve --listen LISTEN --data-dir DIR`, with extra
    /// environment (e.g. `TERN_TIMERS_HEARTBEAT`), logging to `log`
    /// (appended). Waits up to 15 s for the listening line.
    pub fn spawn(
        data_dir: &Path,
        listen: SocketAddr,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<RealDaemon, String> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(ternd());
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn ternd: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seal_key = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(k) = line.trim().strip_prefix("seal key ") {
                        seal_key = k.parse().ok();
                    }
                    if let Some(a) = line.trim().strip_prefix("listening on udp://") {
                        let addr = a.parse().map_err(|e| format!("bad address {a:?}: {e}"))?;
                        return Ok(RealDaemon {
                            child: Some(child),
                            addr,
                            seal_key,
                            data_dir: data_dir.to_path_buf(),
                        });
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    return Err(format!(
                        "ternd did not report its address ({e:?}); exit status {status:?}; log in {}",
                        log.display()
                    ));
                }
            }
        }
    }

    /// Starts on exactly `addr` (a restart on the port clients know),
    /// retrying for a few seconds if the port is not free yet.
    pub fn spawn_at(
        data_dir: &Path,
        addr: SocketAddr,
        env: &[(&str, &str)],
        log: &Path,
    ) -> RealDaemon {
        let mut last = String::new();
        for _ in 0..10 {
            match Self::spawn(data_dir, addr, env, log) {
                Ok(d) => {
                    assert_eq!(d.addr, addr, "restarted on the same address");
                    return d;
                }
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!("ternd could not restart on {addr}: {last}");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().expect("SIGKILL delivered");
        c.wait().expect("reaped");
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM delivered");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("ternd did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RealDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
