//! The world reaches deep states from a short, hand-written scenario: clear
//! and sealed logins through the RETRY dance, messages stored, pushed and
//! acknowledged, a failed commit answered with ERROR 12 and a resend.

use super::input::{Setup, Step, TokenKind};
use super::World;

fn login(peer: u8, user: u8, sealed: bool) -> Step {
    Step::Login {
        peer,
        user,
        device: 0,
        sealed,
        token: TokenKind::Valid,
        skip_cookie: false,
    }
}

fn send(peer: u8, to: u8) -> Step {
    Step::Send {
        peer,
        to,
        conv: 1,
        len: 3,
    }
}

#[test]
fn a_short_scenario_reaches_sessions_deliveries_and_refusals() {
    let setup = Setup {
        seal_policy: 1,
        known_recipients_only: false,
        tight_limits: false,
    };
    let mut w = World::new(&setup);
    // Peer 0 (clear) is user 1, peer 1 (sealed) is user 2, peer 5 (QUIC) user 3.
    for s in [login(0, 0, false), login(1, 1, true), login(5, 2, false)] {
        w.step(&s);
    }
    assert_eq!(w.live_sessions(), 3, "every login got through");
    // User 1 sends to user 2 twice; the first batch is committed.
    for s in [send(0, 1), send(0, 1), Step::Commit { fail: false }] {
        w.step(&s);
    }
    w.step(&Step::Commit { fail: false });
    w.step(&Step::Advance { ms: 50 });
    assert_eq!(
        w.delivered(1),
        2,
        "the sealed peer was pushed both messages"
    );
    // A failed commit: nothing is acknowledged, the sender hears ERROR 12.
    w.step(&send(1, 0));
    w.step(&Step::Commit { fail: false });
    w.step(&Step::Commit { fail: true });
    assert_eq!(w.delivered(0), 0);
    assert_eq!(w.storage_errors(1), 1, "the sealed sender was told");
    // The sender sends again from its acknowledged point; this time it is
    // stored and pushed.
    w.step(&send(1, 0));
    w.step(&Step::Commit { fail: false });
    w.step(&Step::Commit { fail: false });
    w.step(&Step::Advance { ms: 50 });
    assert_eq!(w.delivered(0), 1);
}
