//! The options of `tern-peerbench connect` (time to connect on a lossy
//! link, issue 14, item 8).

use std::time::Duration;

use anyhow::{bail, Result};

use crate::args::LabArgs;

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Where it runs (the TLS listener runs beside ternd, in PREFIX-s;
    /// without --netns: loopback, 0% loss and no delay only).
    #[command(flatten)]
    pub lab_args: LabArgs,
    /// Random loss levels, each way, one row each.
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.2")]
    pub losses: Vec<f64>,
    /// Logins per client and row.
    #[arg(long, default_value_t = 500)]
    pub logins: u64,
    /// Round trip added by an NFQUEUE delay in each namespace (0: none).
    #[arg(long, default_value_t = 100)]
    pub rtt_ms: u64,
    /// A login not connected within this counts as not connected.
    #[arg(long, default_value = "60s")]
    pub bound: humantime::Duration,
    /// No login starts after a row has run this long (the rest are
    /// reported as not made).
    #[arg(long, default_value = "14m")]
    pub row_budget: humantime::Duration,
    /// The fixed login retry of the baseline Tern client.
    #[arg(long, default_value = "2s")]
    pub fixed_retry: humantime::Duration,
    /// Copies of each login datagram of the fixed-retry baseline.
    #[arg(long, default_value_t = 1)]
    pub fixed_copies: u8,
    /// Run the clients of a row one after another instead of side by side
    /// (each is one login at a time either way).
    #[arg(long)]
    pub serial: bool,
    /// 20 logins per client and row, for a smoke test.
    #[arg(long)]
    pub quick: bool,
}

impl ConnectArgs {
    /// Logins per client and row, after `--quick`.
    pub fn logins(&self) -> u64 {
        if self.quick {
            self.logins.min(20)
        } else {
            self.logins.max(1)
        }
    }

    /// The bound on one login.
    pub fn bound(&self) -> Duration {
        self.bound.into()
    }

    /// The nominal round trip the delay adds.
    pub fn rtt(&self) -> Duration {
        Duration::from_millis(self.rtt_ms)
    }

    /// Refuses what the lab cannot do: loss or delay without namespaces,
    /// loss outside 0..1.
    pub fn check(&self, can_lose: bool) -> Result<()> {
        if let Some(p) = self.losses.iter().find(|p| !(0.0..1.0).contains(*p)) {
            bail!("--losses: {p} is not in 0..1");
        }
        if !can_lose && (self.rtt_ms > 0 || self.losses.iter().any(|p| *p > 0.0)) {
            bail!("loss and delay need the namespace lab (--netns PREFIX); on loopback pass --losses 0 --rtt-ms 0");
        }
        if self.bound().is_zero() {
            bail!("--bound must be more than 0");
        }
        Ok(())
    }
}
