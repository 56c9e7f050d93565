//! The core promise, checked in virtual time over many seeds: every message is
//! stored once and reaches every device of its receiver exactly once, in its
//! sender's order, despite loss, duplication, reordering, delay, corruption,
//! address changes, offline devices, broker crashes and client crashes.
//! Clients run the client library's release mode with a persisted
//! checkpoint (`tern_sim::client`).
//!
//! `TERN_SIM_SEEDS=N` changes how many seeds each scenario runs;
//! `TERN_SIM_SEED=S` replays one seed of every scenario, and
//! `TERN_SIM_TRACE=1` prints every client event of the run.

use std::time::Duration;

use tern_sim::impairment::GilbertElliott;
use tern_sim::seeds::lossy;
use tern_sim::{SimConfig, SimReport};

fn check_all(name: &str, default_seeds: u64, make: impl Fn(u64) -> SimConfig) -> Vec<SimReport> {
    tern_sim::seeds::check_all("sim_exactly_once", name, default_seeds, make)
}

#[test]
fn perfect_network() {
    let reports = check_all("perfect_network", 200, SimConfig::new);
    assert!(reports
        .iter()
        .all(|r| r.submitted > 0 && r.delivered >= r.submitted));
}

#[test]
fn heavy_loss_duplication_and_reordering() {
    check_all("heavy_loss_duplication_and_reordering", 1000, |seed| {
        SimConfig {
            up: lossy(0.2, 0.05, 0.05),
            down: lossy(0.2, 0.05, 0.05),
            ..SimConfig::new(seed)
        }
    });
}

#[test]
fn bursty_loss_corruption_and_address_changes() {
    check_all("bursty_loss_corruption_and_address_changes", 500, |seed| {
        let mut imp = lossy(0.05, 0.02, 0.02);
        imp.burst = Some(GilbertElliott::new(0.02, 0.3));
        imp.corrupt = 0.01;
        SimConfig {
            up: imp.clone(),
            down: imp,
            address_change: 0.2,
            ..SimConfig::new(seed)
        }
    });
}

#[test]
fn broker_crashes_and_offline_receivers() {
    check_all("broker_crashes_and_offline_receivers", 500, |seed| {
        SimConfig {
            up: lossy(0.1, 0.02, 0.02),
            down: lossy(0.1, 0.02, 0.02),
            crashes: 3,
            offline_spells: 2,
            ..SimConfig::new(seed)
        }
    });
}

#[test]
fn thirty_percent_loss_with_partitions() {
    check_all("thirty_percent_loss_with_partitions", 300, |seed| {
        let mut imp = lossy(0.3, 0.05, 0.05);
        imp.blackouts = vec![tern_sim::impairment::Blackout {
            start: Duration::from_secs(5),
            end: Duration::from_secs(9),
        }];
        SimConfig {
            up: imp.clone(),
            down: imp,
            crashes: 1,
            ..SimConfig::new(seed)
        }
    });
}

#[test]
fn sealed_sessions_under_loss_corruption_crashes_and_moves() {
    check_all(
        "sealed_sessions_under_loss_corruption_crashes_and_moves",
        500,
        |seed| {
            let mut imp = lossy(0.15, 0.05, 0.05);
            imp.corrupt = 0.02;
            SimConfig {
                up: imp.clone(),
                down: imp,
                crashes: 2,
                offline_spells: 1,
                address_change: 0.1,
                ..SimConfig::new(seed)
            }
            .sealed()
        },
    );
}

/// Client processes crash at random moments (entries handed but not yet
/// read or saved, and checkpoint writes not yet on disk, are lost with
/// them) and restart from their durable checkpoint and outbox on a new
/// address, while the network loses,
/// duplicates and reorders, the broker crashes (re-logins below what was
/// handed) and devices move.
#[test]
fn client_restarts_from_durable_state() {
    let reports = check_all("client_restarts_from_durable_state", 1000, |seed| {
        let imp = lossy(0.1, 0.05, 0.05);
        SimConfig {
            up: imp.clone(),
            down: imp,
            client_crashes: 6,
            crashes: 1,
            address_change: 0.1,
            offline_spells: 1,
            read_delay: Duration::from_millis(300),
            write_latency: Duration::from_millis(10),
            ..SimConfig::new(seed)
        }
    });
    let restarts: u32 = reports.iter().map(|r| r.client_restarts).sum();
    let rehanded: u64 = reports.iter().map(|r| r.rehanded).sum();
    assert!(
        restarts >= 4 * reports.len() as u32 && (rehanded > 0 || reports.len() < 50),
        "the family must exercise restarts ({restarts}) and re-handing ({rehanded})"
    );
}

/// The same over sealed sessions, with bursty loss and corruption: a
/// restarted process opens a new handshake with packet numbers from 1.
#[test]
fn sealed_client_restarts_under_bursty_loss_and_corruption() {
    check_all(
        "sealed_client_restarts_under_bursty_loss_and_corruption",
        300,
        |seed| {
            let mut imp = lossy(0.05, 0.02, 0.02);
            imp.burst = Some(GilbertElliott::new(0.02, 0.3));
            imp.corrupt = 0.01;
            SimConfig {
                up: imp.clone(),
                down: imp,
                client_crashes: 4,
                address_change: 0.2,
                write_latency: Duration::from_millis(2),
                ..SimConfig::new(seed)
            }
            .sealed()
        },
    );
}
