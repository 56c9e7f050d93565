//! What a run prints: one line per throughput phase and latency run, and
//! the summary table of ratios Tern / Mosquitto (also kept for
//! `output.txt`).

use std::fmt::Write as _;

use crate::results::{LatencyResult, RunResults, ThroughputResult};

/// Prints a line and keeps it for the record.
pub struct Out(pub String);

impl Out {
    pub fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        let _ = writeln!(self.0, "{}", s.as_ref());
    }
}

pub fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

pub fn tp_line(t: &ThroughputResult) -> String {
    format!(
        "  {:<9} {:<13} {:>8} msg/s  ({} of {} in {:.2}s{}); p50 {:.2} ms p99 {:.2} ms; wire {:.0} B/msg ({:.2} frames/msg); cpu server {:.0}% ({:.1} us/msg), load generator {:.0}%",
        t.peer,
        t.workload,
        fmt_rate(t.rate),
        t.completed,
        t.messages,
        t.elapsed_s,
        if t.timed_out { ", TIME LIMIT" } else { "" },
        t.p50_ms,
        t.p99_ms,
        t.bytes_per_msg(),
        t.wire.packets() as f64 / t.completed.max(1) as f64,
        t.server_cpu_pct,
        t.server_us_per_msg(),
        t.client_cpu_pct
    )
}

pub fn lat_line(r: &LatencyResult) -> String {
    format!(
        "  {:<12} loss {:>4.0}%: p50 {:>8.2} p90 {:>8.2} p99 {:>8.2} p99.9 {:>8.2} max {:>8.2} ms; delivered {}/{} (dup {}, out of order {}, reconnects {}); wire {:.0} B/msg, {:.2} frames/msg; server cpu {} ms",
        r.peer,
        r.loss * 100.0,
        r.p50_ms,
        r.p90_ms,
        r.p99_ms,
        r.p999_ms,
        r.max_ms,
        r.delivered,
        r.sent,
        r.duplicates,
        r.out_of_order,
        r.reconnects,
        r.bytes_per_msg(),
        r.packets_per_msg(),
        r.server_cpu_ms
    )
}

pub fn find<'a>(res: &'a RunResults, peer: &str, w: &str) -> Option<&'a ThroughputResult> {
    res.throughput
        .iter()
        .find(|t| t.peer == peer && t.workload == w)
}

pub fn summary(out: &mut Out, res: &RunResults) {
    out.line("== Summary (ratios are Tern / Mosquitto, same run)");
    out.line("  | workload | Tern | Mosquitto | ratio | target |");
    out.line("  |---|---|---|---|---|");
    for (w, name, target) in [
        ("online", "online throughput, msg/s", Some(5.0)),
        ("offline-store", "offline store, msg/s (ACK)", None),
        ("offline-drain", "offline drain, msg/s", None),
    ] {
        if let (Some(t), Some(m)) = (find(res, "tern", w), find(res, "mosquitto", w)) {
            let ratio = t.rate / m.rate.max(1e-9);
            out.line(format!(
                "  | {name} | {} | {} | {:.2} | {} |",
                fmt_rate(t.rate),
                fmt_rate(m.rate),
                ratio,
                match target {
                    Some(x) => format!(">= {x}: {}", if ratio >= x { "met" } else { "missed" }),
                    None => "-".into(),
                }
            ));
        }
    }
    for (w, name) in [
        ("online", "online server CPU us/msg"),
        ("offline-store", "offline store server CPU us/msg"),
        ("offline-drain", "offline drain server CPU us/msg"),
    ] {
        if let (Some(t), Some(m)) = (find(res, "tern", w), find(res, "mosquitto", w)) {
            out.line(format!(
                "  | {name} | {:.1} | {:.1} | {:.2} | - |",
                t.server_us_per_msg(),
                m.server_us_per_msg(),
                t.server_us_per_msg() / m.server_us_per_msg().max(1e-9)
            ));
        }
    }
    for (w, name) in [
        ("online", "online wire bytes/msg"),
        ("offline-store", "offline store wire bytes/msg"),
    ] {
        if let (Some(t), Some(m)) = (find(res, "tern", w), find(res, "mosquitto", w)) {
            out.line(format!(
                "  | {name} | {:.0} | {:.0} | {:.2} | - |",
                t.bytes_per_msg(),
                m.bytes_per_msg(),
                t.bytes_per_msg() / m.bytes_per_msg().max(1e-9)
            ));
        }
    }
    let mut losses: Vec<f64> = res.latency.iter().map(|r| r.loss).collect();
    losses.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    losses.dedup();
    for (tp, mp) in [("tern", "mosquitto"), ("tern-rtt", "mosquitto-rtt")] {
        for &l in &losses {
            let t = res.latency.iter().find(|r| r.peer == tp && r.loss == l);
            let m = res.latency.iter().find(|r| r.peer == mp && r.loss == l);
            if let (Some(t), Some(m)) = (t, m) {
                let what = if t.added_rtt_ms > 0 {
                    format!(", +{} ms RTT", t.added_rtt_ms)
                } else {
                    String::new()
                };
                for (q, tv, mv) in [
                    ("p50", t.p50_ms, m.p50_ms),
                    ("p99", t.p99_ms, m.p99_ms),
                    ("p99.9", t.p999_ms, m.p999_ms),
                ] {
                    let target = if q == "p99" && (l - 0.10).abs() < 1e-9 {
                        let r = tv / mv;
                        format!("<= 0.5: {}", if r <= 0.5 { "met" } else { "missed" })
                    } else {
                        "-".into()
                    };
                    out.line(format!(
                    "  | {q} latency at {:.0}% loss{what}, ms | {tv:.2} | {mv:.2} | {:.3} | {target} |",
                    l * 100.0,
                    tv / mv
                ));
                }
                out.line(format!(
                    "  | wire bytes/msg at {:.0}% loss{what} (paced) | {:.0} | {:.0} | {:.2} | - |",
                    l * 100.0,
                    t.bytes_per_msg(),
                    m.bytes_per_msg(),
                    t.bytes_per_msg() / m.bytes_per_msg().max(1e-9)
                ));
                out.line(format!(
                    "  | undelivered at {:.0}% loss{what} | {} | {} | - | - |",
                    l * 100.0,
                    t.sent - t.delivered,
                    m.sent - m.delivered
                ));
            }
        }
    }
    for b in &res.baselines {
        out.line(format!(
            "  | baseline: {} | {} | - | - | - |",
            b.name,
            fmt_rate(b.rate)
        ));
    }
    if let Some(t) = find(res, "tern", "online") {
        if let Some(b) = res.baselines.iter().find(|b| b.name.starts_with("raw UDP")) {
            out.line(format!(
                "  | Tern online / raw UDP relay | {:.2} | | | |",
                t.rate / b.rate.max(1e-9)
            ));
        }
    }
    if let Some(t) = find(res, "tern", "offline-store") {
        if let Some(b) = res
            .baselines
            .iter()
            .find(|b| b.name.starts_with("raw RocksDB"))
        {
            out.line(format!(
                "  | Tern offline store / raw RocksDB | {:.2} | | | |",
                t.rate / b.rate.max(1e-9)
            ));
        }
    }
}
