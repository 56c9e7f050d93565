//! Groups checked in virtual time over many seeds: one group carries all
//! traffic while its membership changes (spare users added, members
//! removed by the owner, members leaving), under loss, duplication,
//! reordering, broker and client crashes, address changes and offline
//! spells. Every device that lived through the run is handed exactly the
//! group records of the stretches its user was a member for (read from the
//! timeline's own events), each once and in group order; every
//! acknowledged post is stored once, every refused one not at all, and
//! only members' posts are stored. The conversation audit then has every
//! device agree with the server's history and list of the group, and a
//! device that joins late pages through its user's stretch; and the read
//! counts the owner's device gets for every record equal the number of
//! current members, its author aside, whose read position passed it.
//!
//! Seeds as in `sim_exactly_once` (`TERN_SIM_SEEDS`, `TERN_SIM_SEED`,
//! `TERN_SIM_TRACE`).

use std::time::Duration;

use tern_sim::seeds::lossy;
use tern_sim::{SimConfig, SimReport};

fn check_all(name: &str, default_seeds: u64, make: impl Fn(u64) -> SimConfig) -> Vec<SimReport> {
    tern_sim::seeds::check_all("sim_groups", name, default_seeds, make)
}

#[test]
fn members_see_exactly_their_stretch_on_a_perfect_network() {
    let reports = check_all(
        "members_see_exactly_their_stretch_on_a_perfect_network",
        60,
        |seed| SimConfig {
            users: 5,
            ..SimConfig::new(seed).groups(4)
        },
    );
    assert!(reports.iter().all(|r| r.submitted > 0));
}

#[test]
fn members_see_exactly_their_stretch_through_loss_crashes_and_moves() {
    check_all(
        "members_see_exactly_their_stretch_through_loss_crashes_and_moves",
        80,
        |seed| {
            let imp = lossy(0.15, 0.05, 0.05);
            SimConfig {
                users: 5,
                devices: 2,
                up: imp.clone(),
                down: imp,
                crashes: 2,
                client_crashes: 3,
                offline_spells: 2,
                address_change: 0.1,
                read_delay: Duration::from_millis(200),
                write_latency: Duration::from_millis(5),
                ..SimConfig::new(seed).groups(5)
            }
        },
    );
}

/// A write fan-out threshold of 2 with 2 to 5 members: the group crosses
/// it both ways as spares join and members leave. Past it, a device is
/// handed only what its user was online for and pages the rest; every
/// device must still end with exactly its stretches, the server's unread
/// counts must match the history, and no state may fall behind for good.
fn read_fanout(seed: u64, churn: u32) -> SimConfig {
    let mut cfg = SimConfig::new(seed).groups(churn);
    cfg.users = 5;
    cfg.broker.group_write_fanout_max = 2;
    // Sessions of devices that went quiet end within seconds, so members
    // are offline (no session) for part of the run, not only unreachable.
    cfg.broker.heartbeat = Duration::from_millis(500);
    cfg.broker.idle_timeout = Duration::from_millis(1500);
    cfg.offline_spells = 6;
    cfg
}

#[test]
fn read_fanout_members_see_exactly_their_stretch_on_a_perfect_network() {
    let reports = check_all(
        "read_fanout_members_see_exactly_their_stretch_on_a_perfect_network",
        40,
        |seed| read_fanout(seed, 4),
    );
    assert!(reports.iter().all(|r| r.submitted > 0));
    read_fanout_happened(&reports);
}

/// The runs did go past the threshold with members away, and states did
/// catch up: otherwise they prove nothing about read fan-out.
fn read_fanout_happened(reports: &[SimReport]) {
    let skipped: u64 = reports.iter().map(|r| r.group_skipped).sum();
    let caught: u64 = reports.iter().map(|r| r.group_caught_up).sum();
    let runs = reports.iter().filter(|r| r.group_skipped > 0).count();
    eprintln!(
        "read fan-out: {runs} of {} runs skipped {skipped} entries; {caught} states caught up",
        reports.len()
    );
    assert!(
        runs * 2 >= reports.len(),
        "read fan-out in only {runs} runs"
    );
    assert!(caught > 0);
}

#[test]
fn read_fanout_members_see_exactly_their_stretch_through_loss_crashes_and_moves() {
    let reports = check_all(
        "read_fanout_members_see_exactly_their_stretch_through_loss_crashes_and_moves",
        60,
        |seed| {
            let imp = lossy(0.15, 0.05, 0.05);
            SimConfig {
                devices: 2,
                up: imp.clone(),
                down: imp,
                crashes: 2,
                client_crashes: 3,
                address_change: 0.1,
                read_delay: Duration::from_millis(200),
                write_latency: Duration::from_millis(5),
                ..read_fanout(seed, 5)
            }
        },
    );
    read_fanout_happened(&reports);
}
