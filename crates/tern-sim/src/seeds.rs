//! Seed families: one scenario run over many seeds, with every failing seed
//! printed with the command that replays it.
//!
//! `TERN_SIM_SEEDS=N` changes how many seeds each scenario runs;
//! `TERN_SIM_SEED=S` replays one seed of every scenario; `TERN_SIM_STATS=1`
//! prints what each run did, and `TERN_SIM_TRACE=1` every client event.

use std::time::Duration;

use crate::impairment::Impairment;
use crate::{run, SimConfig, SimReport};

/// The seeds to run: `default` of them unless the environment says.
pub fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("TERN_SIM_SEED") {
        return vec![s.parse().expect("TERN_SIM_SEED must be a number")];
    }
    let n = std::env::var("TERN_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (1..=n).collect()
}

/// Runs scenario `name` of test binary `test` over its seeds; panics
/// naming every failing seed, after printing each one's violations and
/// replay command.
pub fn check_all(
    test: &str,
    name: &str,
    default_seeds: u64,
    make: impl Fn(u64) -> SimConfig,
) -> Vec<SimReport> {
    let mut failed = Vec::new();
    let mut reports = Vec::new();
    for seed in seeds(default_seeds) {
        let cfg = make(seed);
        let report = run(&cfg);
        if std::env::var_os("TERN_SIM_STATS").is_some() {
            eprintln!(
                "{name} seed {seed}: virtual {:?}, {} steps, {} datagrams, {} client restarts, {} entries handed again",
                report.end, report.steps, report.datagrams, report.client_restarts, report.rehanded
            );
        }
        if !report.violations.is_empty() {
            eprintln!(
                "FAILED scenario {name} seed {seed} (replay: TERN_SIM_SEED={seed} cargo test -p tern-sim --test {test} {name}): {:#?}",
                report.violations
            );
            failed.push(seed);
        }
        reports.push(report);
    }
    assert!(
        failed.is_empty(),
        "scenario {name}: failing seeds {failed:?}"
    );
    reports
}

/// Independent loss, duplication and reordering with 40 ± 15 ms of delay.
pub fn lossy(loss: f64, dup: f64, reorder: f64) -> Impairment {
    Impairment {
        loss,
        dup,
        reorder,
        delay: Duration::from_millis(40),
        jitter: Duration::from_millis(15),
        ..Impairment::default()
    }
}
