//! `tern-chaos`: a chaos run against the real `ternd`, with an independent
//! invariant checker. See `docs/chaos.md`.
//!
//! ```text
//! tern-chaos run --profile short          # about two minutes, debug build
//! tern-chaos run --profile long --dir D   # 100,000 messages, 5 SIGKILLs (release)
//! tern-chaos check --dir D                # re-check the journals of a run
//! ```
//!
//! Prints one summary line on stdout and exits non-zero if any invariant was
//! violated (examples go to stderr and to `DIR/violations.txt`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use tern_lab::args::{duration_arg, period_arg, Period};
use tern_lab::chaos::{self, Params, Report};
use tern_lab::ternd::locate_ternd;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Profile {
    /// 6 users × 2 devices, 2,500 messages over 50 s, 3 kills (CI, debug build).
    Short,
    /// 30 users × 3 devices, 110,000 messages over 5 min, 5 kills (release build).
    Long,
}

#[derive(Parser)]
#[command(
    name = "tern-chaos",
    version,
    about = "Chaos run against ternd with an invariant checker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a chaos scenario, then check its journals.
    Run(Box<RunArgs>),
    /// Check the journals of an earlier run.
    Check {
        /// The run directory (holding `journal/`).
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Starting point for every parameter below.
    #[arg(long, value_enum, default_value = "short")]
    profile: Profile,
    /// Users.
    #[arg(long)]
    users: Option<u64>,
    /// Devices per user.
    #[arg(long)]
    devices: Option<u32>,
    /// Conversations each user starts.
    #[arg(long)]
    convs: Option<u32>,
    /// Messages in total.
    #[arg(long)]
    messages: Option<u64>,
    /// SIGKILLs of the daemon during traffic.
    #[arg(long)]
    kills: Option<u32>,
    /// Length the traffic is paced over, e.g. 60s.
    #[arg(long, value_parser = duration_arg)]
    duration: Option<Duration>,
    /// Longest wait after traffic for every ACKed message to arrive.
    #[arg(long, value_parser = duration_arg)]
    heal: Option<Duration>,
    /// Seed of every random choice.
    #[arg(long)]
    seed: Option<u64>,
    /// Loss probability per datagram and direction (default 0.2).
    #[arg(long)]
    loss: Option<f64>,
    /// Duplication probability (default 0.05).
    #[arg(long)]
    dup: Option<f64>,
    /// Reordering probability (default 0.02).
    #[arg(long)]
    reorder: Option<f64>,
    /// Jitter (default 10ms).
    #[arg(long)]
    jitter: Option<String>,
    /// One-way delay (default 20ms).
    #[arg(long)]
    delay: Option<String>,
    /// Full impairment spec for both directions (replaces the five above),
    /// see docs/lab-proxy.md.
    #[arg(long)]
    impairment: Option<String>,
    /// Proxy rebind period, or `off`.
    #[arg(long, value_parser = period_arg)]
    rebind_every: Option<Period>,
    /// Keep every device online.
    #[arg(long)]
    no_offline: bool,
    /// Probability that a received message moves the read position to it
    /// (`mark_read`; the user's other devices follow).
    #[arg(long)]
    mark_read_prob: Option<f64>,
    /// When a brand-new device of user 1 joins and pages every history
    /// (fraction of the traffic phase, 0..=1), or `off`.
    #[arg(long, value_parser = late_arg)]
    late_device_at: Option<LateAt>,
    /// Operations in flight per device.
    #[arg(long)]
    window: Option<usize>,
    /// Run directory (kept). Default: a fresh folder under the system temp
    /// directory, removed after a passing run unless --keep.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the default run directory after a passing run.
    #[arg(long)]
    keep: bool,
    /// The ternd binary. Default: next to this executable.
    #[arg(long)]
    ternd: Option<PathBuf>,
    /// Share of the messages posted into the run's group of every user
    /// (0: no group). Default 0.25.
    #[arg(long)]
    group_share: Option<f64>,
    /// The daemon's group write fan-out threshold; below the user count
    /// the group runs in read fan-out. Default 3.
    #[arg(long)]
    group_write_fanout_max: Option<usize>,
    /// The daemon's log filter (RUST_LOG syntax); its log is DIR/ternd.log.
    #[arg(long, default_value = "warn")]
    ternd_log: String,
    /// Log every datagram the proxy sees to DIR/proxy.jsonl.
    #[arg(long)]
    proxy_log: bool,
}

/// `--late-device-at`: a fraction, or `off`.
#[derive(Debug, Clone, Copy)]
struct LateAt(Option<f64>);

fn late_arg(s: &str) -> Result<LateAt, String> {
    if s == "off" {
        return Ok(LateAt(None));
    }
    s.parse::<f64>()
        .map(|f| LateAt(Some(f)))
        .map_err(|e| format!("{s:?}: {e} (a fraction of the traffic phase, or off)"))
}

impl RunArgs {
    fn params(&self) -> anyhow::Result<Params> {
        let mut p = match self.profile {
            Profile::Short => Params::short(),
            Profile::Long => Params::long(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { p.$f = v; } )* };
        }
        set!(
            users,
            devices,
            convs,
            messages,
            kills,
            duration,
            heal,
            seed,
            window,
            group_share,
            group_write_fanout_max
        );
        if let Some(Period(r)) = self.rebind_every {
            p.rebind_every = r;
        }
        if self.no_offline {
            p.offline = false;
        }
        if let Some(m) = self.mark_read_prob {
            p.mark_read_prob = m;
        }
        if let Some(LateAt(at)) = self.late_device_at {
            p.late_device_at = at;
        }
        p.ternd_log = self.ternd_log.clone();
        p.proxy_log = self.proxy_log;
        let spec = match &self.impairment {
            Some(s) => s.clone(),
            None => format!(
                "loss={},dup={},reorder={},jitter={},delay={}",
                self.loss.unwrap_or(0.2),
                self.dup.unwrap_or(0.05),
                self.reorder.unwrap_or(0.02),
                self.jitter.as_deref().unwrap_or("10ms"),
                self.delay.as_deref().unwrap_or("20ms"),
            ),
        };
        p.up = spec.clone();
        p.down = spec;
        if let Err(e) = p.validate() {
            bail!("{e}");
        }
        Ok(p)
    }
}

fn print_examples(report: &Report, dir: &Path) {
    let lines = report.example_lines();
    if lines.is_empty() {
        return;
    }
    let file = dir.join("violations.txt");
    let _ = std::fs::write(&file, lines.join("\n") + "\n");
    eprintln!("violations (examples; all kept in {}):", file.display());
    for l in lines.iter().take(40) {
        eprintln!("  {l}");
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tern::cli::init_logging("info,tern_lab::proxy=warn");
    match cli.command {
        Command::Check { dir } => {
            let report = chaos::check_dir(&dir).map_err(anyhow::Error::msg)?;
            print_examples(&report, &dir);
            println!("tern-chaos check: {report}");
            if !report.passed() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Run(args) => {
            let params = args.params()?;
            let ternd = locate_ternd(args.ternd.as_deref())?;
            let (dir, temporary) = match &args.dir {
                Some(d) => (d.clone(), false),
                None => {
                    let stamp = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    let d = std::env::temp_dir().join(format!(
                        "tern-chaos-{stamp}-{}-seed{}",
                        std::process::id(),
                        params.seed
                    ));
                    (d, true)
                }
            };
            // Many client tasks do blocking fsyncs (their durable state):
            // more threads than cores keep the others going meanwhile.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(8)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let outcome = rt
                .block_on(chaos::run(params, &dir, &ternd))
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("chaos run in {}", dir.display()))?;
            rt.shutdown_timeout(Duration::from_secs(5));
            print_examples(&outcome.report, &dir);
            println!("{}", outcome.summary_line());
            if !outcome.report.passed() {
                std::process::exit(1);
            }
            if temporary && !args.keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok(())
        }
    }
}
