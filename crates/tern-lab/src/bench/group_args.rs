//! Command-line arguments of the group benchmarks (`tern-bench storm` and
//! `tern-bench live-fanout`), kept here so that the `tern-bench` binary
//! only names them.

use std::path::PathBuf;

use clap::Args;

use super::live_fanout::LiveFanoutOpts;
use super::storm::StormOpts;

/// Arguments of `tern-bench storm`.
#[derive(Args, Clone, Debug)]
pub struct StormArgs {
    /// Members of the group, the owner included.
    #[arg(long, default_value_t = 30_000)]
    members: usize,
    /// Messages posted while every member is offline.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Every member device logs in within this time.
    #[arg(long, default_value = "60s")]
    window: humantime::Duration,
    /// Members of the baseline group (write fan-out).
    #[arg(long, default_value_t = 500)]
    baseline_members: usize,
    /// Messages posted into the baseline group.
    #[arg(long, default_value_t = 1_000)]
    baseline_messages: u64,
    /// UDP sockets the devices share.
    #[arg(long, default_value_t = 128)]
    sockets: usize,
    /// Payload bytes (at least 16).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Time limit of each setup phase and of the stragglers.
    #[arg(long, default_value = "300s")]
    max_time: humantime::Duration,
    /// The ternd binary (default: next to this one).
    #[arg(long)]
    ternd: Option<PathBuf>,
    /// Folder under which the daemon's data goes (default: the temp
    /// folder). A real disk, for the fsyncs to be real.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the data afterwards.
    #[arg(long)]
    keep: bool,
}

impl From<StormArgs> for StormOpts {
    fn from(a: StormArgs) -> StormOpts {
        StormOpts {
            members: a.members,
            messages: a.messages,
            window: a.window.into(),
            baseline_members: a.baseline_members,
            baseline_messages: a.baseline_messages,
            sockets: a.sockets,
            payload: a.payload.max(16),
            max_time: a.max_time.into(),
            ternd: a.ternd,
            dir: a.dir,
            keep: a.keep,
        }
    }
}

/// Arguments of `tern-bench live-fanout`.
#[derive(Args, Clone, Debug)]
pub struct LiveFanoutArgs {
    /// Members of the group, all online.
    #[arg(long, default_value_t = 1_000)]
    members: usize,
    /// Members that post.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Posts per run, split over the senders.
    #[arg(long, default_value_t = 1_000)]
    messages: u64,
    /// Posts in flight per sender.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Sender/receiver pairs of the baseline (relay's default).
    #[arg(long, default_value_t = 16)]
    pairs: usize,
    /// Messages in flight per baseline sender (relay's default).
    #[arg(long, default_value_t = 64)]
    pair_window: usize,
    /// Messages per baseline run.
    #[arg(long, default_value_t = 100_000)]
    baseline_messages: u64,
    /// Payload bytes (at least 16).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// UDP sockets the devices share.
    #[arg(long, default_value_t = 64)]
    sockets: usize,
    /// Runs of each, alternating, the baseline first.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Time limit of each phase.
    #[arg(long, default_value = "120s")]
    max_time: humantime::Duration,
    /// The ternd binary (default: next to this one).
    #[arg(long)]
    ternd: Option<PathBuf>,
    /// Folder under which the daemon's data goes (default: the temp
    /// folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the data afterwards.
    #[arg(long)]
    keep: bool,
}

impl From<LiveFanoutArgs> for LiveFanoutOpts {
    fn from(a: LiveFanoutArgs) -> LiveFanoutOpts {
        LiveFanoutOpts {
            members: a.members,
            senders: a.senders.max(1),
            messages: a.messages,
            window: a.window.max(1),
            pairs: a.pairs.max(1),
            pair_window: a.pair_window.max(1),
            baseline_messages: a.baseline_messages,
            payload: a.payload.max(16),
            sockets: a.sockets,
            rounds: a.rounds,
            max_time: a.max_time.into(),
            ternd: a.ternd,
            dir: a.dir,
            keep: a.keep,
        }
    }
}
