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
