//! The NFQUEUE delayers of a series with added round trip: one
//! `tern-peerbench delay` in each namespace, started before the loss rules
//! send packets to their queue (without a reader the kernel drops them),
//! and taken out of the rules again when dropped.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use tern_lab::bench::util::ScratchDir;
use tern_lab::process::{ChildProcess, OnDrop, Stderr};

use crate::lab::{self, Lab};

/// NFQUEUE number the delayers read.
const QUEUE: u16 = 7;

/// The two delayers (stopped on drop, after the rules stop using them).
pub struct Delayers<'a> {
    lab: &'a Lab,
    procs: Vec<ChildProcess>,
    _scratch: ScratchDir,
}

/// Starts `tern-peerbench delay` in both namespaces, `rtt / 2` ms each, and
/// routes what survives the loss rule through them (loss 0 until set).
pub fn start(lab: &Lab, rtt_ms: u64) -> Result<Delayers<'_>> {
    let me = std::env::current_exe()?;
    let one_way = (rtt_ms / 2).to_string();
    let scratch = lab::scratch("delay")?;
    let mut procs = Vec::new();
    for (side, mut cmd) in [
        ("server", lab.server_command(&me)),
        ("client", std::process::Command::new(&me)),
    ] {
        cmd.args(["delay", "--queue", &QUEUE.to_string(), "--ms", &one_way]);
        let log = Stderr::File(scratch.path().join(format!("delay-{side}.log")));
        let mut p = ChildProcess::spawn(cmd, &format!("delay ({side})"), log)?
            .on_drop(OnDrop::Terminate(Duration::from_secs(10)));
        p.wait_for("start delaying", Duration::from_secs(10), |l| {
            l.starts_with("delaying").then_some(())
        })?;
        procs.push(p);
    }
    lab.delay_queue
        .store(u32::from(QUEUE) + 1, Ordering::Relaxed);
    lab.set_loss(0.0)?;
    Ok(Delayers {
        lab,
        procs,
        _scratch: scratch,
    })
}

impl Drop for Delayers<'_> {
    fn drop(&mut self) {
        self.lab.delay_queue.store(0, Ordering::Relaxed);
        if let Err(e) = self.lab.set_loss(0.0) {
            eprintln!("removing the delay from the loss rules: {e:#}");
        }
        self.procs.clear();
    }
}
