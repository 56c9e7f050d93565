//! Where the peers run: in the server namespace of `scripts/netns-lab.sh`
//! (kernel-level loss by iptables), or on loopback without loss. Also the
//! wire counters, what a phase used, and scratch folders.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tern_lab::bench::util::{process_cpu_now, ScratchDir};

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
    /// The namespace lab of prefix `netns` (servers in PREFIX-s, this
    /// process in PREFIX-c, the wire PREFIX-c0, `script` changes the loss),
    /// or loopback without it; `server_ip` defaults to 10.77.0.1 in the lab
    /// and 127.0.0.1 on loopback.
    pub fn new(netns: Option<&str>, script: &Path, server_ip: Option<IpAddr>) -> Result<Lab> {
        let default_ip = if netns.is_some() {
            IpAddr::from([10, 77, 0, 1])
        } else {
            IpAddr::from([127, 0, 0, 1])
        };
        let lab = Lab {
            server_ns: netns.map(|p| format!("{p}-s")),
            script: netns.map(|_| script.to_path_buf()),
            server_ip: server_ip.unwrap_or(default_ip),
            iface: netns.map_or_else(|| "lo".to_string(), |p| format!("{p}-c0")),
            delay_queue: Default::default(),
        };
        if lab.server_ns.is_some() && !Path::new(&format!("/sys/class/net/{}", lab.iface)).exists()
        {
            bail!(
                "interface {} not found: run this inside the client namespace (scripts/netns-lab.sh exec client -- ...)",
                lab.iface
            );
        }
        Ok(lab)
    }

    /// True when packet loss can be applied.
    pub fn can_lose(&self) -> bool {
        self.server_ns.is_some() && self.script.is_some()
    }

    /// The words that run a program where the servers live (`ip netns
    /// exec NS`, or nothing on loopback).
    pub fn server_prefix(&self) -> Vec<String> {
        match &self.server_ns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
            None => Vec::new(),
        }
    }

    /// A command that runs `program` where the servers live.
    pub fn server_command(&self, program: &Path) -> Command {
        match self.server_prefix().split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
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

/// The wire counters and CPU times at the start of a phase.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    wire: Wire,
    server_cpu: Duration,
    client_cpu: Duration,
}

/// What a phase used: wall time, wire, server and load-generator CPU.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Wall time of the phase.
    pub wall: Duration,
    /// Frames and bytes on the wire.
    pub wire: Wire,
    /// CPU of the server process.
    pub server_cpu: Duration,
    /// CPU of this process (the load generator).
    pub client_cpu: Duration,
}

impl Meter {
    /// Starts measuring now; `server_cpu` is the server's CPU time so far.
    pub fn start(lab: &Lab, server_cpu: Duration) -> Meter {
        Meter {
            wire: lab.wire(),
            server_cpu,
            client_cpu: process_cpu_now(),
        }
    }

    /// What was used since the start, over `wall`; `server_cpu` is the
    /// server's CPU time now.
    pub fn usage(&self, lab: &Lab, server_cpu: Duration, wall: Duration) -> Usage {
        Usage {
            wall,
            wire: lab.wire().since(self.wire),
            server_cpu: server_cpu.saturating_sub(self.server_cpu),
            client_cpu: process_cpu_now().saturating_sub(self.client_cpu),
        }
    }
}

/// CPU over wall time, in % of one core.
pub fn pct(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

/// A scratch folder for one server or baseline, removed on drop.
pub fn scratch(what: &str) -> Result<ScratchDir> {
    Ok(ScratchDir::new(None, &format!("peerbench-{what}"), false)?)
}
