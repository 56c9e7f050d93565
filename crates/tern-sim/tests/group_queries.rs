//! Group queries (MEMBERS, READ_COUNTS) and history pages survive a lost
//! datagram and a server restart without the application asking again,
//! and a refused one is not asked again (`proto-spec/timers.md`, "request
//! retry"). Real `ClientConn`s and a real broker in virtual time.

use std::time::Duration;

use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientEvent, Outgoing};
use tern_core::wire::{ConvRef, ErrorCode, GroupAction};
use tern_sim::pair::{created_group, v2, Pair};

const ALICE: u64 = 1;
const BOB: u64 = 2;
const CAROL: u64 = 3;

/// Alice (client 0) and Bob (client 1) in a group, and Carol (client 2)
/// outside it; returns the group.
fn group_of_two(p: &mut Pair) -> u64 {
    for u in [ALICE, BOB, CAROL] {
        p.connect(u, 1, v2);
    }
    p.settle();
    p.submit(
        0,
        Outgoing::Group {
            group: 0,
            action: GroupAction::Create,
            users: vec![BOB],
        },
    );
    let ev = p.settle();
    created_group(&ev[0]).expect("the group is created")
}

/// Whatever client `i` would send now is lost.
fn lose_sends(p: &mut Pair, i: usize) {
    let now = p.now;
    while p.clients[i].1.poll_transmit(now).is_some() {}
}

fn member_pages(events: &[ClientEvent]) -> Vec<Vec<u64>> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Members(m) => Some(m.members.iter().map(|m| m.user).collect()),
            _ => None,
        })
        .collect()
}

fn refusals(events: &[ClientEvent]) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(e, ClientEvent::ServerError(err)
                if err.code == ErrorCode::NoSuchConversation as u64)
        })
        .count()
}

#[test]
fn a_members_page_whose_request_was_lost_comes_without_asking_again() {
    let mut p = Pair::new(BrokerConfig::default());
    let g = group_of_two(&mut p);
    let now = p.now;
    assert!(p.clients[0].1.request_members(now, g, 0, 64));
    lose_sends(&mut p, 0);
    let ev = p.step_for(Duration::from_secs(2));
    assert_eq!(member_pages(&ev[0]), vec![vec![ALICE, BOB]]);
}

#[test]
fn a_members_page_asked_across_a_server_restart_comes_after_the_relogin() {
    let mut p = Pair::new(BrokerConfig::default());
    let g = group_of_two(&mut p);
    let now = p.now;
    assert!(p.clients[0].1.request_members(now, g, 0, 64));
    lose_sends(&mut p, 0);
    p.restart_broker();
    p.clients[0].1.ping(now);
    let ev = p.step_for(Duration::from_secs(5));
    assert!(ev[0]
        .iter()
        .any(|e| matches!(e, ClientEvent::LoggedIn { .. })));
    assert_eq!(member_pages(&ev[0]), vec![vec![ALICE, BOB]]);
}

#[test]
fn read_counts_whose_request_was_lost_come_under_the_asked_id() {
    let mut p = Pair::new(BrokerConfig::default());
    let g = group_of_two(&mut p);
    let now = p.now;
    let id = p.clients[1]
        .1
        .request_read_counts(now, g, 1, 2)
        .expect("a version 2 session");
    lose_sends(&mut p, 1);
    let ev = p.step_for(Duration::from_secs(2));
    let answers: Vec<(u64, u64)> = ev[1]
        .iter()
        .filter_map(|e| match e {
            ClientEvent::ReadCounts(c) => Some((c.request_id, c.members)),
            _ => None,
        })
        .collect();
    assert_eq!(answers, vec![(id, 2)]);
}

#[test]
fn a_refused_group_query_is_not_asked_again() {
    let mut p = Pair::new(BrokerConfig::default());
    let g = group_of_two(&mut p);
    let now = p.now;
    assert!(p.clients[2].1.request_members(now, g, 0, 64));
    assert!(p.clients[2].1.request_read_counts(now, g, 1, 1).is_some());
    let ev = p.step_for(Duration::from_secs(10));
    assert_eq!(refusals(&ev[2]), 2, "one refusal each, never asked again");
    assert!(member_pages(&ev[2]).is_empty());
}

#[test]
fn a_refused_history_page_is_not_asked_again_and_others_can_follow() {
    let mut p = Pair::new(BrokerConfig::default());
    let g = group_of_two(&mut p);
    let now = p.now;
    assert!(p.clients[2]
        .1
        .request_history(now, ConvRef::group(g), 0, 10));
    let ev = p.step_for(Duration::from_secs(10));
    assert_eq!(refusals(&ev[2]), 1, "refused once, never asked again");
    // The refused page no longer counts as under way.
    let now = p.now;
    assert!(p.clients[2]
        .1
        .request_history(now, ConvRef::group(g), 0, 10));
}
