//! Results on disk: `results.json`, `output.txt`, the throughput and
//! latency CSVs, and one CSV of samples (and one timeline) per latency run;
//! read back by `render`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::results::RunResults;

pub fn save(dir: &Path, res: &RunResults, printed: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Per-run sample files of an earlier run would be stale: remove them.
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if (name.starts_with("latency-") || name.starts_with("timeline-")) && name.ends_with(".csv")
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(res)?)?;
    std::fs::write(dir.join("output.txt"), printed)?;
    let mut tp = String::from("peer,workload,messages,completed,elapsed_s,rate,p50_ms,p99_ms,wire_bytes,wire_frames,bytes_per_msg,server_cpu_pct,client_cpu_pct,timed_out\n");
    for t in &res.throughput {
        let _ = writeln!(
            tp,
            "{},{},{},{},{:.4},{:.1},{:.3},{:.3},{},{},{:.1},{:.1},{:.1},{}",
            t.peer,
            t.workload,
            t.messages,
            t.completed,
            t.elapsed_s,
            t.rate,
            t.p50_ms,
            t.p99_ms,
            t.wire.bytes(),
            t.wire.packets(),
            t.bytes_per_msg(),
            t.server_cpu_pct,
            t.client_cpu_pct,
            t.timed_out
        );
    }
    std::fs::write(dir.join("throughput.csv"), tp)?;
    let mut lat = String::from("peer,loss,added_rtt_ms,sent,delivered,duplicates,out_of_order,reconnects,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,wire_bytes,wire_frames,bytes_per_msg\n");
    for r in &res.latency {
        let _ = writeln!(
            lat,
            "{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{:.1}",
            r.peer,
            r.loss,
            r.added_rtt_ms,
            r.sent,
            r.delivered,
            r.duplicates,
            r.out_of_order,
            r.reconnects,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            r.wire.bytes(),
            r.wire.packets(),
            r.bytes_per_msg()
        );
        // The CDF: every delivered message's latency, sorted, in microseconds.
        let mut s = String::from("latency_us\n");
        for v in &r.samples {
            let _ = writeln!(s, "{v}");
        }
        std::fs::write(dir.join(sample_file(&r.peer, r.loss)), s)?;
        // The same messages in arrival order, with their scheduled time.
        let mut s = String::from("scheduled_us,latency_us\n");
        for (t, v) in &r.timeline {
            let _ = writeln!(s, "{t},{v}");
        }
        std::fs::write(
            dir.join(sample_file(&r.peer, r.loss).replace("latency-", "timeline-")),
            s,
        )?;
    }
    std::fs::write(dir.join("latency.csv"), lat)?;
    Ok(())
}

fn sample_file(peer: &str, loss: f64) -> String {
    format!(
        "latency-{peer}-loss{:02}.csv",
        (loss * 100.0).round() as u32
    )
}

/// Latency samples of each run: (peer, loss, sorted microseconds).
pub type Samples = Vec<(String, f64, Vec<u64>)>;

pub fn load(dir: &Path) -> Result<(RunResults, Samples)> {
    let text = std::fs::read_to_string(dir.join("results.json"))
        .with_context(|| format!("reading {}", dir.join("results.json").display()))?;
    let res: RunResults = serde_json::from_str(&text)?;
    let mut samples = Vec::new();
    for r in &res.latency {
        let p = dir.join(sample_file(&r.peer, r.loss));
        let s = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let v: Vec<u64> = s
            .lines()
            .skip(1)
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        samples.push((r.peer.clone(), r.loss, v));
    }
    Ok((res, samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{LatencyResult, ThroughputResult, WireOut};

    #[test]
    fn results_survive_json_and_render() {
        let res = RunResults {
            machine: "m".into(),
            commit: "c".into(),
            options: String::new(),
            network: "loopback".into(),
            throughput: vec![ThroughputResult {
                peer: "mosquitto".into(),
                workload: "offline-drain".into(),
                messages: 10,
                completed: 10,
                elapsed_s: 1.0,
                rate: 10.0,
                p50_ms: f64::NAN,
                p99_ms: f64::NAN,
                wire: WireOut::default(),
                server_cpu_pct: 50.0,
                client_cpu_pct: 10.0,
                timed_out: false,
            }],
            latency: vec![
                LatencyResult::of_samples("tern", 0.0, vec![500, 900, 1200], 3),
                LatencyResult::of_samples("mosquitto", 0.0, vec![800, 1500], 3),
            ],
            baselines: Vec::new(),
        };
        let dir = crate::lab::scratch("test").expect("scratch");
        save(dir.path(), &res, "printed\n").expect("save");
        let (back, samples) = load(dir.path()).expect("load");
        assert!(back.throughput[0].p50_ms.is_nan());
        assert_eq!(samples[0].2, vec![500, 900, 1200]);
        let files =
            crate::charts::render(&back, &samples, &dir.path().join("charts")).expect("render");
        assert_eq!(files.len(), 3);
        for f in files {
            let svg = std::fs::read_to_string(dir.path().join("charts").join(f)).expect("svg");
            assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        }
    }
}
