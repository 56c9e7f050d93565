//! The broker end to end: logins (clear and sealed, with the RETRY dance),
//! well-formed session traffic, frames mutated behind a valid trailer or
//! tag, pre-login packets, junk and replays from six peers at once, while
//! the driver commits, fails commits, fails store reads and lets time pass.
//! `tern_fuzz::broker::World` checks the invariants after every step: no
//! panic; every datagram sent decodes (sealed ones open); nothing ACKed or
//! delivered that was not committed; at most one answer, no larger than
//! the question, to unproven sources; bounded state per peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_fuzz::broker::input::Scenario;
use tern_fuzz::broker::World;

/// Steps run per input, at most (keeps one execution well under a second).
const MAX_STEPS: usize = 256;

fuzz_target!(|s: Scenario| {
    let mut world = World::new(&s.setup);
    for step in s.steps.iter().take(MAX_STEPS) {
        world.step(step);
    }
});
