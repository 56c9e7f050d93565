//! `tern-peerbench run`: the same-run baselines, the throughput phases and
//! the latency series for both peers, then the summary, the saved results,
//! the charts and (with `--check`) the verdict.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use tern_lab::bench::seal::Sealing;
use tern_lab::process::next_to_exe;

use crate::args::{RunArgs, Shape};
use crate::check::check;
use crate::files::save;
use crate::lab::{self, Lab};
use crate::results::{BaselineResult, RunResults};
use crate::servers::{Mosquitto, MosquittoSettings, TernProxy, Ternd};
use crate::summary::{fmt_rate, lat_line, summary, tp_line, Out};
use crate::{charts, delayers, mqtt_load, raw_paced, tern_load};

/// One run: where, how big, with which binaries, and what it printed and
/// measured so far.
struct Bench {
    a: RunArgs,
    lab: Lab,
    shape: Shape,
    losses: Vec<f64>,
    ternd: PathBuf,
    proxy: PathBuf,
    mosquitto: MosquittoSettings,
    rt: tokio::runtime::Runtime,
    out: Out,
    res: RunResults,
}

/// `git describe` of the working tree, for the record.
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs every workload against both peers and saves the results.
pub fn run(mut a: RunArgs) -> Result<()> {
    a.apply_quick();
    let lab = a.lab()?;
    let losses: Vec<f64> = if lab.can_lose() {
        a.losses.clone()
    } else {
        eprintln!("no namespace lab: latency at 0% loss only");
        vec![0.0]
    };
    let shape = a.shape();
    let ternd = a.lab_args.ternd();
    let proxy = a.proxy.clone().unwrap_or_else(|| next_to_exe("tern-proxy"));
    for (what, p) in [("ternd", &ternd), ("mosquitto", &a.mosquitto)] {
        if !p.exists() {
            bail!("{what} not found at {}", p.display());
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mosquitto = MosquittoSettings {
        max_inflight: shape.window.min(u16::MAX as usize) as u16,
    };
    let t0 = Instant::now();
    let mut out = Out(String::new());
    let machine = tern_lab::bench::util::machine_line();
    let commit = commit();
    out.line(format!("tern-peerbench: {machine}"));
    out.line(format!("  commit {commit}; network: {}", match &lab.server_ns {
        Some(ns) => format!("namespaces {ns} <-> this one over veth {} (MTU 1500, offloads off), loss by iptables on input both ways", lab.iface),
        None => "loopback (no loss)".into(),
    }));
    out.line(format!(
        "  ternd: {}; mosquitto: plain TCP (MQTT QoS 1, no TLS)",
        if a.clear {
            Sealing::Clear
        } else {
            Sealing::Sealed
        }
        .describe()
    ));
    out.line(format!(
        "  throughput: {} pairs, {} in flight per sender, {} online + {} offline messages of {} bytes; latency: 1 sender -> 1 receiver, {} messages every {:?} at loss {:?}",
        shape.pairs, shape.window, shape.messages, shape.offline_messages, shape.payload,
        shape.latency_messages, shape.latency_interval, losses
    ));
    lab.set_loss(0.0)?;
    let res = RunResults {
        machine,
        commit,
        options: format!("{a:?}"),
        network: if lab.server_ns.is_some() {
            "netns".into()
        } else {
            "loopback".into()
        },
        throughput: Vec::new(),
        latency: Vec::new(),
        baselines: Vec::new(),
    };
    let mut b = Bench {
        a,
        lab,
        shape,
        losses,
        ternd,
        proxy,
        mosquitto,
        rt,
        out,
        res,
    };
    if !b.a.skip_baselines {
        b.baselines()?;
    }
    if !b.a.skip_throughput {
        b.throughput()?;
    }
    for (si, series) in b.latency_series().into_iter().enumerate() {
        b.latency(si, series)?;
    }
    b.finish(t0)
}

impl Bench {
    /// Tern's configuration in this run: the default (sealed) unless `--clear`.
    fn sealing(&self) -> Sealing {
        if self.a.clear {
            Sealing::Clear
        } else {
            Sealing::Sealed
        }
    }

    /// Prints a baseline's line (`what: RATE`) and keeps it for the results.
    fn baseline(&mut self, what: &str, (rate, unit): (f64, &str), name: &str, note: String) {
        self.out
            .line(format!("  {what}: {} {unit}", fmt_rate(rate)));
        self.res.baselines.push(BaselineResult {
            name: name.into(),
            rate,
            note,
        });
    }

    /// The raw UDP relay and raw RocksDB, in this process.
    fn baselines(&mut self) -> Result<()> {
        let shape = self.shape.clone();
        self.out
            .line("== Same-run baselines (this process, loopback of the client namespace)");
        let r = tern_lab::bench::raw_relay::raw_relay(
            shape.messages,
            64,
            shape.payload + 16,
            Duration::from_secs(30),
        )
        .map_err(|e| anyhow!("raw relay: {e}"))?;
        self.baseline(
            "raw UDP relay (client -> relay -> sink -> relay -> client, 64 in flight, no storage)",
            (r.rate(), "msg/s"),
            "raw UDP relay, 64 in flight",
            format!("{} messages, {} retransmits", r.completed, r.retransmits),
        );
        let dir = lab::scratch("rocks")?;
        let db = dir.path().join("db");
        let rr = tern_lab::bench::store::raw_rocks(
            &db,
            shape.offline_messages,
            1024,
            91,
            shape.pairs as u64,
        )
        .map_err(|e| anyhow!("raw rocksdb: {e}"))?;
        self.baseline(
            "raw RocksDB, synced WriteBatches of 1024 x 91-byte values",
            (rr.rate(), "entries/s"),
            "raw RocksDB, sync batches of 1024",
            format!("{} entries in {:.2?}", rr.entries, rr.elapsed),
        );
        Ok(())
    }

    /// Online, offline-store and offline-drain, each peer a fresh server.
    fn throughput(&mut self) -> Result<()> {
        let (lab, shape) = (&self.lab, &self.shape);
        self.out.line("== Throughput (0% loss)");
        let d = Ternd::start(lab, &self.ternd, self.sealing())?;
        let t = tern_load::online(lab, &d, shape)?;
        drop(d);
        let m = Mosquitto::start(lab, &self.a.mosquitto, &self.mosquitto)?;
        let mt = self
            .rt
            .block_on(mqtt_load::online(lab, &m.proc, m.addr, shape))?;
        drop(m);
        for t in [t, mt] {
            self.out.line(tp_line(&t));
            self.res.throughput.push(t);
        }
        let d = Ternd::start(lab, &self.ternd, self.sealing())?;
        let (s, dr) = tern_load::offline(lab, &d, shape)?;
        drop(d);
        for t in [s, dr] {
            self.out.line(tp_line(&t));
            self.res.throughput.push(t);
        }
        let m = Mosquitto::start(lab, &self.a.mosquitto, &self.mosquitto)?;
        let (s, dr) = self
            .rt
            .block_on(mqtt_load::offline(lab, &m.proc, m.addr, shape))?;
        self.out.line("  mosquitto.conf (generated):");
        for l in m.config.lines().filter(|l| !l.starts_with('#')) {
            self.out.line(format!("    {l}"));
        }
        let rss = m.proc.rss();
        let db = m.persist_dir().join("mosquitto.db");
        for t in [s, dr] {
            self.out.line(tp_line(&t));
            self.res.throughput.push(t);
        }
        self.out.line(format!(
            "  mosquitto after the drain: RSS {:.1} MB; {} (persistence writes only every autosave_interval = 1800 s and at exit)",
            rss as f64 / 1e6,
            if db.exists() { "mosquitto.db exists" } else { "no mosquitto.db on disk yet" }
        ));
        Ok(())
    }

    /// The latency series: (added RTT, Tern's name, Mosquitto's name).
    fn latency_series(&self) -> Vec<(u64, &'static str, &'static str)> {
        if self.a.skip_latency {
            Vec::new()
        } else if self.a.delay_rtt_ms > 0 && self.lab.can_lose() {
            let mut v = vec![(self.a.delay_rtt_ms, "tern-rtt", "mosquitto-rtt")];
            if !self.a.skip_no_delay {
                v.insert(0, (0, "tern", "mosquitto"));
            }
            v
        } else {
            vec![(0, "tern", "mosquitto")]
        }
    }

    /// Series `si`: one latency run per loss level and peer (and through
    /// tern-proxy, if asked for).
    fn latency(&mut self, si: usize, (rtt, tern_name, mosq_name): (u64, &str, &str)) -> Result<()> {
        let delay = if rtt > 0 {
            Some(delayers::start(&self.lab, rtt)?)
        } else {
            None
        };
        let shape = self.shape.clone();
        self.out.line(format!(
            "== Delivery latency under random loss, {} ({} messages, one every {:?}, 1 sender -> 1 online receiver)",
            if rtt > 0 {
                format!("+{rtt} ms RTT for both peers (NFQUEUE delay of {} ms on input in each namespace)", rtt / 2)
            } else {
                "no added delay".to_string()
            },
            shape.latency_messages,
            shape.latency_interval
        ));
        for (li, &loss) in self.losses.clone().iter().enumerate() {
            let lab = &self.lab;
            let users = (
                100 * si as u64 + 10 + li as u64,
                100 * si as u64 + 20 + li as u64,
            );
            let d = Ternd::start(lab, &self.ternd, self.sealing())?;
            let r = tern_load::latency(lab, &d, d.addr, loss, tern_name, rtt, &shape, users);
            drop(d);
            let _ = lab.set_loss(0.0);
            let r = r?;
            self.out.line(lat_line(&r));
            self.res.latency.push(r);

            let m = Mosquitto::start(lab, &self.a.mosquitto, &self.mosquitto)?;
            let tag = format!("{si}-{li}");
            let r = self
                .rt
                .block_on(mqtt_load::latency(lab, &m.proc, m.addr, loss, &shape, &tag));
            drop(m);
            let _ = lab.set_loss(0.0);
            let mut r = r?;
            r.peer = mosq_name.into();
            r.added_rtt_ms = rtt;
            self.out.line(lat_line(&r));
            self.res.latency.push(r);
            if rtt == 0 && loss == 0.0 {
                raw_relays(&self.shape, &mut self.out, &mut self.res)?;
            }

            if si == 0 && self.a.proxy_rtt_ms > 0 && self.proxy.exists() {
                let d = Ternd::start(lab, &self.ternd, self.sealing())?;
                let spec = format!("delay={}us", self.a.proxy_rtt_ms * 500);
                let p = TernProxy::start(lab, &self.proxy, d.addr, &spec)?;
                let users = (30 + li as u64, 40 + li as u64);
                let r = tern_load::latency(
                    lab,
                    &d,
                    p.addr,
                    loss,
                    "tern-proxy",
                    self.a.proxy_rtt_ms,
                    &shape,
                    users,
                );
                let _ = lab.set_loss(0.0);
                let r = r?;
                self.out.line(lat_line(&r));
                self.res.latency.push(r);
            }
        }
        drop(delay);
        Ok(())
    }

    /// The summary, the saved results and charts, and `--check`.
    fn finish(mut self, t0: Instant) -> Result<()> {
        let (a, res) = (&self.a, &self.res);
        summary(&mut self.out, res);
        self.out.line(format!("run took {:.0?}", t0.elapsed()));
        let problems = check(res);
        save(&a.out, res, &self.out.0)?;
        println!("results in {}", a.out.display());
        if let Some(dir) = &a.charts {
            let samples: Vec<(String, f64, Vec<u64>)> = res
                .latency
                .iter()
                .map(|r| (r.peer.clone(), r.loss, r.samples.clone()))
                .collect();
            for f in charts::render(res, &samples, dir)? {
                println!("wrote {}", dir.join(f).display());
            }
        }
        if a.check {
            if problems.is_empty() {
                println!("check: passed (every message delivered; Tern exactly once and in order)");
            } else {
                for p in &problems {
                    eprintln!("check: {p}");
                }
                bail!("check failed: {} problem(s)", problems.len());
            }
        }
        Ok(())
    }
}

/// The floor under the CPU figures of the 0 % run: the same schedule
/// through a one-thread raw UDP relay, without and with an append and
/// `fdatasync` per message before its ACK (`raw_paced.rs`).
fn raw_relays(shape: &Shape, out: &mut Out, res: &mut RunResults) -> Result<()> {
    let dir = lab::scratch("raw-relay")?;
    for (peer, durable) in [("raw-relay", None), ("raw-fsync", Some(dir.path()))] {
        let r = raw_paced::run(
            peer,
            shape.latency_messages,
            shape.latency_interval,
            shape.payload,
            shape.latency_grace,
            durable,
        )?;
        out.line(lat_line(&r));
        res.latency.push(r);
    }
    Ok(())
}
