//! Where the peers run: in the server namespace of `scripts/netns-lab.sh`
//! (kernel-level loss by iptables), or on loopback without loss. Also the
//! wire counters and the child processes (ternd, mosquitto, tern-proxy).

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

/// The network the benchmark runs on.
#[derive(Debug)]
pub struct Lab {
    /// Server namespace (None: everything on loopback in this namespace).
    pub server_ns: Option<String>,
    /// `scripts/netns-lab.sh`, to change the loss.
    pub script: Option<PathBuf>,
    /// Address the servers listen on.
    pub server_ip: IpAddr,
    /// Interface whose counters are the wire (the client end of the veth,
    /// or `lo`).
    pub iface: String,
    /// NFQUEUE that delays packets after the loss rule (0: none; else
    /// queue number + 1).
    pub delay_queue: std::sync::atomic::AtomicU32,
}

/// Frames and bytes that crossed the interface, both directions.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Wire {
    /// Frames sent by this side (client to server).
    pub tx_packets: u64,
    /// Bytes sent (Ethernet frames on a veth).
    pub tx_bytes: u64,
    /// Frames received (before the input loss rule).
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
}

impl Wire {
    /// Counters moved since `before`.
    pub fn since(self, before: Wire) -> Wire {
        Wire {
            tx_packets: self.tx_packets.saturating_sub(before.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(before.tx_bytes),
            rx_packets: self.rx_packets.saturating_sub(before.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(before.rx_bytes),
        }
    }
}

impl Lab {
    /// True when packet loss can be applied.
    pub fn can_lose(&self) -> bool {
        self.server_ns.is_some() && self.script.is_some()
    }

    /// A command that runs `program` where the servers live.
    pub fn server_command(&self, program: &Path) -> Command {
        match &self.server_ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// Sets the random loss of both directions.
    pub fn set_loss(&self, p: f64) -> Result<()> {
        match (&self.server_ns, &self.script) {
            (Some(_), Some(script)) => {
                let mut cmd = Command::new(script);
                cmd.args(["loss", &format!("{p}")]);
                let q = self.delay_queue.load(std::sync::atomic::Ordering::Relaxed);
                if q > 0 {
                    cmd.args(["--queue", &format!("{}", q - 1)]);
                }
                let out = cmd
                    .stdin(Stdio::null())
                    .output()
                    .with_context(|| format!("running {} loss {p}", script.display()))?;
                if !out.status.success() {
                    bail!(
                        "{} loss {p} failed: {}",
                        script.display(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(())
            }
            _ if p == 0.0 && self.delay_queue.load(std::sync::atomic::Ordering::Relaxed) == 0 => {
                Ok(())
            }
            _ => bail!("loss {p} or delay needs the namespace lab (--netns)"),
        }
    }

    /// The interface counters now. On loopback every frame is counted once
    /// as sent and once as received, so only the sent side is kept there.
    pub fn wire(&self) -> Wire {
        let read = |what: &str| -> u64 {
            std::fs::read_to_string(format!("/sys/class/net/{}/statistics/{what}", self.iface))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let mut w = Wire {
            tx_packets: read("tx_packets"),
            tx_bytes: read("tx_bytes"),
            rx_packets: read("rx_packets"),
            rx_bytes: read("rx_bytes"),
        };
        if self.iface == "lo" {
            w.rx_packets = 0;
            w.rx_bytes = 0;
        }
        w
    }
}

/// A child process stopped (SIGTERM, then SIGKILL) on drop.
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    /// Starts `cmd` with stdout piped and stderr to `log`; returns the
    /// process and the first stdout line for which `ready` gives a value.
    pub fn spawn_until<T: Send + 'static>(
        mut cmd: Command,
        name: &str,
        log: &Path,
        timeout: Duration,
        ready: impl Fn(&str) -> Option<T> + Send + 'static,
    ) -> Result<(Proc, T)> {
        let err =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(Stdio::piped()).stderr(err).stdin(Stdio::null());
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(v) = ready(&line) {
                        let _ = tx.send(v);
                        sent = true;
                    }
                }
            }
        });
        let mut p = Proc {
            child,
            name: name.to_string(),
        };
        match rx.recv_timeout(timeout) {
            Ok(v) => Ok((p, v)),
            Err(_) => {
                p.stop();
                bail!(
                    "{name} did not become ready within {timeout:?} (log: {})",
                    log.display()
                )
            }
        }
    }

    /// Starts `cmd` with stdout and stderr to `log`.
    pub fn spawn(mut cmd: Command, name: &str, log: &Path) -> Result<Proc> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdout(out).stderr(err).stdin(Stdio::null());
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            child,
            name: name.to_string(),
        })
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// CPU time (user + system) the process has used.
    pub fn cpu(&self) -> Duration {
        proc_cpu(self.child.id())
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time of process `pid` (utime + stime from /proc/PID/stat).
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

/// A scratch folder removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh folder under the temp folder.
    pub fn new(what: &str) -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "tern-peerbench-{what}-{}-{nanos:09}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
