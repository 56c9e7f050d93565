//! Conversations (protocol version 2) checked in virtual time over many
//! seeds: several devices per user, some offline for long stretches, with
//! loss, reordering, broker and client crashes and address changes. Every
//! message reaches every device of both its users exactly once and in
//! order; applications mark what they read; and at the end every device of
//! a user agrees with every other, and with what it holds from its sync
//! timeline, on each conversation's history, the read positions, the
//! unread counts and the conversation list. A device that joins after all
//! of it pages through the whole history and agrees too.
//!
//! Seeds as in `sim_exactly_once` (`TERN_SIM_SEEDS`, `TERN_SIM_SEED`,
//! `TERN_SIM_TRACE`).

use std::time::Duration;

use tern_sim::impairment::GilbertElliott;
use tern_sim::seeds::lossy;
use tern_sim::{SimConfig, SimReport};

fn check_all(name: &str, default_seeds: u64, make: impl Fn(u64) -> SimConfig) -> Vec<SimReport> {
    tern_sim::seeds::check_all("sim_conversations", name, default_seeds, make)
}

#[test]
fn devices_agree_on_a_perfect_network() {
    let reports = check_all("devices_agree_on_a_perfect_network", 100, |seed| {
        SimConfig::new(seed).conversations()
    });
    assert!(reports.iter().all(|r| r.delivered >= 2 * r.submitted));
}

#[test]
fn devices_agree_through_loss_crashes_moves_and_long_absences() {
    check_all(
        "devices_agree_through_loss_crashes_moves_and_long_absences",
        150,
        |seed| {
            let imp = lossy(0.15, 0.05, 0.05);
            SimConfig {
                users: 3,
                devices: 3,
                up: imp.clone(),
                down: imp,
                crashes: 2,
                client_crashes: 4,
                offline_spells: 3,
                address_change: 0.1,
                read_delay: Duration::from_millis(200),
                write_latency: Duration::from_millis(5),
                ..SimConfig::new(seed).conversations()
            }
        },
    );
}

#[test]
fn sealed_devices_agree_under_bursty_loss_and_corruption() {
    check_all(
        "sealed_devices_agree_under_bursty_loss_and_corruption",
        100,
        |seed| {
            let mut imp = lossy(0.05, 0.02, 0.02);
            imp.burst = Some(GilbertElliott::new(0.02, 0.3));
            imp.corrupt = 0.01;
            SimConfig {
                up: imp.clone(),
                down: imp,
                crashes: 1,
                client_crashes: 2,
                address_change: 0.2,
                ..SimConfig::new(seed).conversations().sealed()
            }
        },
    );
}
