//! The connect bench's figures: each login's time to a usable session (or
//! none within the bound), percentiles over every login attempted (a login
//! that did not connect counts as slower than any that did), and the table
//! lines.

use std::time::Duration;

/// What one client did in one row.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The client, as printed.
    pub name: String,
    /// Each login's time to connect, in the order made; `None`: not within
    /// the bound.
    pub times: Vec<Option<Duration>>,
    /// Logins not started because the row's time budget ran out.
    pub skipped: u64,
}

impl Lane {
    /// An empty lane for `name`.
    pub fn new(name: impl Into<String>) -> Lane {
        Lane {
            name: name.into(),
            times: Vec::new(),
            skipped: 0,
        }
    }

    /// Logins that did not connect within the bound.
    pub fn failed(&self) -> usize {
        self.times.iter().filter(|t| t.is_none()).count()
    }

    /// The `p`-th percentile (nearest rank) over every login made; `None`
    /// when it falls on a login that did not connect (or there were none).
    pub fn pct(&self, p: f64) -> Option<Duration> {
        let mut ok: Vec<Duration> = self.times.iter().flatten().copied().collect();
        ok.sort_unstable();
        let n = self.times.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        ok.get(rank.clamp(1, n) - 1).copied()
    }
}

/// Milliseconds with one decimal, or `>BOUND` past the bound.
fn ms(d: Option<Duration>, bound: Duration) -> String {
    match d {
        Some(d) => format!("{:.1}", d.as_secs_f64() * 1e3),
        None => format!(">{}", bound.as_millis()),
    }
}

/// Round trips with two decimals (`-` without a nominal RTT).
fn rtts(d: Option<Duration>, rtt: Duration) -> String {
    match d {
        _ if rtt.is_zero() => "-".into(),
        Some(d) => format!("{:.2}", d.as_secs_f64() / rtt.as_secs_f64()),
        None => "-".into(),
    }
}

/// The table's header.
pub fn header(bound: Duration) -> String {
    format!(
        "  {:<40} {:>5} {:>6} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8}",
        "client",
        "loss",
        "logins",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p50 R",
        "p90 R",
        "p99 R",
        format!("not {}s", bound.as_secs())
    )
}

/// One table line: `loss` each way, percentiles in ms and in round trips
/// of `rtt`.
pub fn line(l: &Lane, loss: f64, rtt: Duration, bound: Duration) -> String {
    let (p50, p90, p99) = (l.pct(50.0), l.pct(90.0), l.pct(99.0));
    let mut s = format!(
        "  {:<40} {:>4.0}% {:>6} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>8}",
        l.name,
        loss * 100.0,
        l.times.len(),
        ms(p50, bound),
        ms(p90, bound),
        ms(p99, bound),
        rtts(p50, rtt),
        rtts(p90, rtt),
        rtts(p99, rtt),
        l.failed()
    );
    if l.skipped > 0 {
        s.push_str(&format!(" ({} not made: row time budget)", l.skipped));
    }
    s
}

/// `a / b` of two percentiles, or `-`.
pub fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
        _ => "-".into(),
    }
}

/// The goals of issue 14, item 8, for Tern's lane at 20 % loss: p50 ≤ 3
/// round trips and p99 ≤ 1.5 s.
pub fn goals(l: &Lane, rtt: Duration, bound: Duration) -> String {
    let (p50, p99) = (l.pct(50.0), l.pct(99.0));
    let p50_ok = p50.is_some_and(|d| !rtt.is_zero() && d.as_secs_f64() <= 3.0 * rtt.as_secs_f64());
    let p99_ok = p99.is_some_and(|d| d <= Duration::from_millis(1500));
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    format!(
        "goals ({}): p50 <= 3 RTT: {} ({} RTT, {} ms); p99 <= 1.5 s: {} ({} ms)",
        l.name,
        verdict(p50_ok),
        rtts(p50, rtt),
        ms(p50, bound),
        verdict(p99_ok),
        ms(p99, bound)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(ms: &[Option<u64>]) -> Lane {
        Lane {
            name: "t".into(),
            times: ms.iter().map(|m| m.map(Duration::from_millis)).collect(),
            skipped: 0,
        }
    }

    #[test]
    fn percentiles_count_failures_as_slowest() {
        let l = lane(&[Some(300), Some(100), None, Some(200)]);
        assert_eq!(l.pct(50.0), Some(Duration::from_millis(200)));
        assert_eq!(l.pct(75.0), Some(Duration::from_millis(300)));
        assert_eq!(l.pct(99.0), None);
        assert_eq!(l.failed(), 1);
        assert_eq!(lane(&[]).pct(50.0), None);
    }

    #[test]
    fn goals_read_the_lane() {
        let rtt = Duration::from_millis(100);
        let bound = Duration::from_secs(60);
        let good = lane(&[Some(200); 100]);
        assert!(goals(&good, rtt, bound).contains("3 RTT: met"));
        assert!(goals(&good, rtt, bound).contains("1.5 s: met"));
        let mut slow = lane(&[Some(200); 98]);
        slow.times.extend([Some(Duration::from_secs(2)), None]);
        assert!(goals(&slow, rtt, bound).contains("1.5 s: missed"));
    }
}
