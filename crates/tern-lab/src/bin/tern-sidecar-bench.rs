//! `tern-sidecar-bench`: what `tern sidecar` adds over the Rust client
//! library, measured in one run against one `ternd`.
//!
//! Baseline: the library in this process, with a durable state folder,
//! `CONCURRENCY` tasks each sending and awaiting the server's ACK. Sidecar:
//! the same load as `POST /v1/messages?wait=stored` over the sidecar's
//! Unix socket from `CONCURRENCY` threads (keep-alive connections). Both
//! send to a receiver that reads everything. Reported: messages/s, p50 and
//! p99 latency of each and what the sidecar adds, the sidecar process's CPU
//! (vCPU, and per 1,000 requests/s) against the library's CPU in this
//! process for the same work, and the sidecar's RSS.
//!
//!   cargo build --release -p tern --bin ternd --bin tern -p tern-lab --bin tern-sidecar-bench
//!   target/release/tern-sidecar-bench --messages 4000 --concurrency 8

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;
use tern::client::{Client, ClientOptions};
use tern_lab::sidecar::{locate_tern, SidecarConfig};
use tern_lab::ternd::{issue_token, locate_ternd, TerndConfig};

#[derive(Parser)]
#[command(about = "Sidecar overhead against the Rust client library, same run")]
struct Args {
    /// Messages per phase.
    #[arg(long, default_value_t = 4000)]
    messages: u64,
    /// Concurrent senders.
    #[arg(long, default_value_t = 8)]
    concurrency: u64,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// The ternd binary (default: next to this one).
    #[arg(long)]
    ternd: Option<PathBuf>,
    /// The tern binary (default: next to this one).
    #[arg(long)]
    tern: Option<PathBuf>,
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// CPU time of this process (user + system).
fn self_cpu() -> Duration {
    tern_lab::process::proc_cpu(std::process::id())
}

struct Phase {
    rate: f64,
    p50_us: u64,
    p99_us: u64,
    cpu: Duration,
    elapsed: Duration,
}

fn report(name: &str, p: &Phase) {
    println!(
        "{name:<10} {:>8.0} msg/s  p50 {:>6.2} ms  p99 {:>6.2} ms  cpu {:>5.3} vCPU ({:.3} vCPU per 1,000 msg/s)",
        p.rate,
        p.p50_us as f64 / 1e3,
        p.p99_us as f64 / 1e3,
        p.cpu.as_secs_f64() / p.elapsed.as_secs_f64(),
        p.cpu.as_secs_f64() / p.elapsed.as_secs_f64() / (p.rate / 1000.0),
    );
}

/// A receiver in its own process (`tern recv`), so that neither phase's
/// CPU figure includes receiving.
fn receiver(
    tern: &std::path::Path,
    d: &tern_lab::ternd::Ternd,
    token: String,
) -> anyhow::Result<tern_lab::process::ChildProcess> {
    let mut cmd = std::process::Command::new(tern);
    cmd.args([
        "recv",
        "--server",
        &d.addr().to_string(),
        "--token",
        &token,
        "--timeout",
        "0s",
    ]);
    if let Some(k) = d.seal_key() {
        cmd.args(["--seal-key", &k.to_string()]);
    }
    Ok(tern_lab::process::ChildProcess::spawn(
        cmd,
        "tern recv",
        tern_lab::process::Stderr::Null,
    )?)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let ternd = locate_ternd(a.ternd.as_deref())?;
    let tern = locate_tern(a.tern.as_deref());
    let root = std::env::temp_dir().join(format!("tern-sidecar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let dir = TempDir(root);
    let data = dir.path().join("ternd");
    let d = TerndConfig::new(&ternd, &data)
        // QUIC as a user runs it: on, next to raw UDP.
        .quic_as_configured()
        .log_file(dir.path().join("ternd.log"))
        .start()?;
    let token = |u: u64| issue_token(&ternd, &data, u, 1);
    let opts = |u: u64, state: Option<&str>| -> anyhow::Result<ClientOptions> {
        let mut o = ClientOptions::new(d.addr(), hex::decode(token(u)?)?);
        o.seal_key = d.seal_key();
        o.state_dir = state.map(|s| dir.path().join(s));
        Ok(o)
    };
    let _rx2 = receiver(&tern, &d, token(2)?)?;
    let _rx4 = receiver(&tern, &d, token(4)?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let payload = bytes::Bytes::from(vec![b'x'; a.payload]);

    // Baseline: the library, in this process.
    let baseline = rt.block_on(async {
        let client = Arc::new(Client::connect(opts(1, Some("lib"))?).await?);
        let per = a.messages / a.concurrency;
        let (cpu0, t0) = (self_cpu(), Instant::now());
        let mut tasks = Vec::new();
        for _ in 0..a.concurrency {
            let (c, p) = (client.clone(), payload.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                for _ in 0..per {
                    let s = Instant::now();
                    c.send(2, 1, 0, p.clone()).await.expect("stored");
                    h.record(s.elapsed().as_micros() as u64).expect("in range");
                }
                h
            }));
        }
        let mut h = Histogram::<u64>::new(3)?;
        for t in tasks {
            h.add(t.await?)?;
        }
        let elapsed = t0.elapsed();
        anyhow::Ok(Phase {
            rate: (per * a.concurrency) as f64 / elapsed.as_secs_f64(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            cpu: self_cpu() - cpu0,
            elapsed,
        })
    })?;

    // The sidecar: same load over its local API.
    let sidecar = SidecarConfig::new(&tern, d.addr(), token(3)?, dir.path().join("sidecar"))
        .seal_key(d.seal_key())
        .log_file(dir.path().join("sidecar.log"))
        .start()
        .context("starting tern sidecar")?;
    let per = a.messages / a.concurrency;
    let (cpu0, t0) = (sidecar.cpu(), Instant::now());
    let text = String::from_utf8(payload.to_vec())?;
    let threads: Vec<_> = (0..a.concurrency)
        .map(|_| {
            let mut c = sidecar.client();
            let text = text.clone();
            std::thread::spawn(move || {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let body = json!({"to": 4, "conv": 1, "text": text});
                for _ in 0..per {
                    let s = Instant::now();
                    let r = c.post("/v1/messages?wait=stored", &body).expect("answer");
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    h.record(s.elapsed().as_micros() as u64).expect("in range");
                }
                h
            })
        })
        .collect();
    let mut h = Histogram::<u64>::new(3)?;
    for t in threads {
        h.add(t.join().map_err(|_| anyhow::anyhow!("a sender panicked"))?)?;
    }
    let elapsed = t0.elapsed();
    let side = Phase {
        rate: (per * a.concurrency) as f64 / elapsed.as_secs_f64(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        cpu: sidecar.cpu() - cpu0,
        elapsed,
    };
    let rss = sidecar.rss();

    println!(
        "{} messages of {} bytes per phase, {} concurrent senders, durable outbox in both",
        per * a.concurrency,
        a.payload,
        a.concurrency
    );
    report("library", &baseline);
    report("sidecar", &side);
    println!(
        "sidecar/library: throughput {:.2}x, p50 +{:.2} ms, p99 +{:.2} ms, CPU {:.2}x per message; sidecar RSS {:.1} MiB",
        side.rate / baseline.rate,
        (side.p50_us as f64 - baseline.p50_us as f64) / 1e3,
        (side.p99_us as f64 - baseline.p99_us as f64) / 1e3,
        (side.cpu.as_secs_f64() / side.rate / side.elapsed.as_secs_f64())
            / (baseline.cpu.as_secs_f64() / baseline.rate / baseline.elapsed.as_secs_f64()),
        rss as f64 / (1 << 20) as f64
    );
    println!("Dapr's published sidecar overhead at 1,000 req/s: +2.1 ms p99, 0.48 vCPU, 23 MB");
    Ok(())
}
