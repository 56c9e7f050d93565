//! What `--check` refuses: the harness run as a test.

use crate::results::RunResults;

/// What `--check` refuses.
pub fn check(res: &RunResults) -> Vec<String> {
    let mut p = Vec::new();
    for t in &res.throughput {
        if t.timed_out || t.completed < t.messages {
            p.push(format!(
                "{} {}: {} of {} completed{}",
                t.peer,
                t.workload,
                t.completed,
                t.messages,
                if t.timed_out { " (time limit)" } else { "" }
            ));
        }
    }
    for r in &res.latency {
        // Under loss a late Mosquitto message is a measurement (TCP backoff
        // can outlast the grace period), not a broken harness.
        let must_deliver = r.peer.starts_with("tern") || r.loss == 0.0;
        if must_deliver && r.delivered < r.sent {
            p.push(format!(
                "{} at {:.0}% loss: {} of {} delivered",
                r.peer,
                r.loss * 100.0,
                r.delivered,
                r.sent
            ));
        }
        if r.peer.starts_with("tern") && (r.duplicates > 0 || r.out_of_order > 0) {
            p.push(format!(
                "{} at {:.0}% loss: {} duplicates, {} out of order",
                r.peer,
                r.loss * 100.0,
                r.duplicates,
                r.out_of_order
            ));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{LatencyResult, ThroughputResult, WireOut};

    #[test]
    fn check_flags_missing_and_duplicate_messages() {
        let mut res = RunResults {
            machine: String::new(),
            commit: String::new(),
            options: String::new(),
            network: "loopback".into(),
            throughput: vec![ThroughputResult {
                peer: "tern".into(),
                workload: "online".into(),
                messages: 10,
                completed: 10,
                elapsed_s: 1.0,
                rate: 10.0,
                p50_ms: 1.0,
                p99_ms: 2.0,
                wire: WireOut::default(),
                server_cpu_pct: 50.0,
                client_cpu_pct: 10.0,
                timed_out: false,
            }],
            latency: vec![
                LatencyResult::of_samples("tern", 0.1, vec![1000; 5], 5),
                LatencyResult::of_samples("mosquitto", 0.0, vec![1000; 4], 5),
                // Late under loss: a measurement, not a failure.
                LatencyResult::of_samples("mosquitto", 0.2, vec![1000; 3], 5),
            ],
            baselines: Vec::new(),
        };
        assert_eq!(check(&res).len(), 1, "{:?}", check(&res));
        res.latency[0].duplicates = 1;
        assert_eq!(check(&res).len(), 2);
        assert!((res.throughput[0].server_us_per_msg() - 50_000.0).abs() < 1e-6);
    }
}
