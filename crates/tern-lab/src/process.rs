//! A child process the lab starts and watches: its stdout read line by line
//! (so a test can wait for "listening on …"), its stderr to a log file,
//! stopped with SIGKILL (a crash) or SIGTERM (a graceful stop), and its CPU
//! time and resident set read from `/proc`. [`crate::ternd`] starts `ternd`
//! with it; the peer bench starts Mosquitto and `tern-proxy` with it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use thiserror::Error;

/// Why a child process could not be started, or did not do what was waited for.
#[derive(Debug, Error)]
pub enum ProcessError {
    /// The log file could not be opened.
    #[error("log file {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("starting {name}: {source}")]
    Spawn {
        /// What was started.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The expected line did not come in time, or the process exited first.
    #[error("{name} did not {what} within {timeout:?} (exit status {status:?}){log}")]
    NotReady {
        /// The process.
        name: String,
        /// What it was expected to print.
        what: String,
        /// How long it had.
        timeout: Duration,
        /// Its exit status, if it had exited.
        status: Option<ExitStatus>,
        /// `; log in PATH`, when there is a log.
        log: String,
    },
    /// A signal could not be sent, or the process could not be reaped.
    #[error("{what} {name}: {source}")]
    Signal {
        /// `SIGKILL`, `SIGTERM` or `reaping`.
        what: &'static str,
        /// The process.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// SIGTERM did not stop it in time (it was SIGKILLed then).
    #[error("{name} did not exit within {timeout:?} of SIGTERM; killed")]
    StopTimeout {
        /// The process.
        name: String,
        /// How long it had.
        timeout: Duration,
    },
}

/// Where a child's stderr goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stderr {
    /// Appended to this file.
    File(PathBuf),
    /// Discarded.
    Null,
    /// This process's stderr.
    Inherit,
}

/// What happens to a child still running when its handle is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrop {
    /// SIGKILL, at once.
    Kill,
    /// SIGTERM, then SIGKILL after this long.
    Terminate(Duration),
}

/// A running child process (see the module documentation).
pub struct ChildProcess {
    child: Child,
    name: String,
    log: Option<PathBuf>,
    lines: Option<mpsc::Receiver<String>>,
    on_drop: OnDrop,
    reaped: bool,
}

fn open_log(path: &Path) -> Result<std::fs::File, ProcessError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ProcessError::Log {
            path: path.to_path_buf(),
            source,
        })
}

impl ChildProcess {
    /// Starts `cmd` (called `name` in errors) with stdin closed, stdout read
    /// line by line on a thread (see [`ChildProcess::wait_for`]; read to the
    /// end, so the child never blocks on a full pipe) and stderr as `stderr`
    /// says. Dropped while running, it is SIGKILLed (see [`ChildProcess::on_drop`]).
    pub fn spawn(mut cmd: Command, name: &str, stderr: Stderr) -> Result<Self, ProcessError> {
        let log = match &stderr {
            Stderr::File(p) => Some(p.clone()),
            _ => None,
        };
        let err = match &stderr {
            Stderr::File(p) => Stdio::from(open_log(p)?),
            Stderr::Null => Stdio::null(),
            Stderr::Inherit => Stdio::inherit(),
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err);
        let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            name: name.to_string(),
            source,
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Nobody listening any more: keep draining the pipe anyway.
                let _ = tx.send(line);
            }
        });
        Ok(ChildProcess {
            child,
            name: name.to_string(),
            log,
            lines: Some(rx),
            on_drop: OnDrop::Kill,
            reaped: false,
        })
    }

    /// Starts `cmd` with stdout and stderr both appended to `log` (nothing
    /// to wait for on stdout).
    pub fn spawn_logged(mut cmd: Command, name: &str, log: &Path) -> Result<Self, ProcessError> {
        let out = open_log(log)?;
        let err = out.try_clone().map_err(|source| ProcessError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            name: name.to_string(),
            source,
        })?;
        Ok(ChildProcess {
            child,
            name: name.to_string(),
            log: Some(log.to_path_buf()),
            lines: None,
            on_drop: OnDrop::Kill,
            reaped: false,
        })
    }

    /// What to do when dropped while running (default: SIGKILL).
    pub fn on_drop(mut self, on_drop: OnDrop) -> Self {
        self.on_drop = on_drop;
        self
    }

    /// Reads stdout lines until `ready` returns a value (it sees every line,
    /// so it can collect several), for at most `timeout`. `what` names the
    /// awaited output in the error. On failure the process is SIGKILLed.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, ProcessError> {
        let deadline = Instant::now() + timeout;
        if let Some(rx) = &self.lines {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => {
                        if let Some(v) = ready(line.trim()) {
                            return Ok(v);
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        self.reaped = true;
        Err(ProcessError::NotReady {
            name: self.name.clone(),
            what: what.to_string(),
            timeout,
            status,
            log: self
                .log
                .as_ref()
                .map_or(String::new(), |p| format!("; log in {}", p.display())),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs (not exited, or exited but not reaped).
    pub fn alive(&mut self) -> bool {
        !self.reaped && matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: the process dies at once, whatever it was doing; reaped.
    pub fn kill(&mut self) -> Result<ExitStatus, ProcessError> {
        if !self.reaped {
            self.child.kill().map_err(|source| ProcessError::Signal {
                what: "SIGKILL",
                name: self.name.clone(),
                source,
            })?;
        }
        self.reap()
    }

    fn reap(&mut self) -> Result<ExitStatus, ProcessError> {
        let status = self.child.wait().map_err(|source| ProcessError::Signal {
            what: "reaping",
            name: self.name.clone(),
            source,
        })?;
        self.reaped = true;
        Ok(status)
    }

    /// SIGTERM, then up to `timeout` for the process to exit by itself;
    /// after that it is SIGKILLed and the answer is
    /// [`ProcessError::StopTimeout`].
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.reaped = true;
            return Ok(status);
        }
        // SAFETY: kill(2) on our own child's pid, which has not been reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        if rc != 0 {
            return Err(ProcessError::Signal {
                what: "SIGTERM",
                name: self.name.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = true;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.kill();
                return Err(ProcessError::StopTimeout {
                    name: self.name.clone(),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time (user + system) the process has used.
    pub fn cpu(&self) -> Duration {
        proc_cpu(self.pid())
    }

    /// Resident set size in bytes (0 if it cannot be read).
    pub fn rss(&self) -> u64 {
        proc_rss(self.pid()).unwrap_or(0)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        match self.on_drop {
            OnDrop::Kill => {
                let _ = self.kill();
            }
            OnDrop::Terminate(t) => {
                if let Err(ProcessError::StopTimeout { .. }) = self.terminate(t) {
                    eprintln!("{} did not stop on SIGTERM; killed it", self.name);
                }
            }
        }
    }
}

/// CPU time of process `pid` (utime + stime from `/proc/PID/stat`); zero
/// if it cannot be read.
pub fn proc_cpu(pid: u32) -> Duration {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros((ticks(14) + ticks(15)) * 1_000_000 / hz)
}

/// Resident set size of process `pid` in bytes (`VmRSS`), if readable.
pub fn proc_rss(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// `name` in the folder of the running executable (where cargo puts every
/// binary of a build), or just `name` if that cannot be known.
pub fn next_to_exe(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| {
            p.parent()
                .map(|d| d.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
        })
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_line_and_stops_gracefully() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; echo ready 42; exec sleep 30"]);
        let mut p = ChildProcess::spawn(cmd, "sh", Stderr::Null).expect("sh starts");
        let n = p
            .wait_for("say ready", Duration::from_secs(10), |l| {
                l.strip_prefix("ready ").and_then(|n| n.parse::<u32>().ok())
            })
            .expect("ready line");
        assert_eq!(n, 42);
        assert!(p.alive());
        assert!(p.rss() > 0);
        let status = p.terminate(Duration::from_secs(10)).expect("stops");
        assert!(!status.success(), "ended by SIGTERM");
        assert!(!p.alive());
    }

    #[test]
    fn a_process_that_exits_first_is_not_ready() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo nothing"]);
        let mut p = ChildProcess::spawn(cmd, "sh", Stderr::Null).expect("sh starts");
        let e = p
            .wait_for("say ready", Duration::from_secs(10), |l| {
                l.starts_with("ready").then_some(())
            })
            .expect_err("never ready");
        assert!(matches!(e, ProcessError::NotReady { .. }), "{e}");
    }
}
