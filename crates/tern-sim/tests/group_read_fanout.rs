//! Read fan-out (`proto-spec/groups.md`, "Fan-out") between real
//! `ClientConn`s and a real broker on a perfect network in virtual time:
//! past the write fan-out threshold a group record is stored once and goes
//! only to members with a device online; an offline member's state catches
//! up when it logs in (its list shows the unread count, its history the
//! records), and a group crossing the threshold back loses nothing.

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientConn, ClientEvent, Outgoing};
use tern_core::conv::ConvKey;
use tern_core::store::Store;
use tern_core::wire::{ConvRef, GroupAction, SyncBody};
use tern_sim::pair::{created_group, v2, Pair};

const ALICE: u64 = 1;
const BOB: u64 = 2;
const CAROL: u64 = 3;
const DAVE: u64 = 4;

/// Group records handed to a device, in order: (conv_seq, text or event).
fn seen(events: &[ClientEvent], g: u64) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Entry(e) if e.conv == ConvRef::group(g) => Some(e.clone()),
            _ => None,
        })
        .filter_map(|e| match e.body {
            SyncBody::Message { payload, .. } => {
                Some((e.conv_seq, String::from_utf8_lossy(&payload).into()))
            }
            SyncBody::Member(ev) => Some((e.conv_seq, format!("{:?} {}", ev.kind, ev.user))),
            _ => None,
        })
        .collect()
}

/// The head of `user`'s sync timeline (entries ever appended).
fn inbox_len(p: &Pair, user: u64) -> u64 {
    p.store.inbox_meta(user).expect("mem").map_or(0, |m| m.head)
}

/// Alice creates a group with Bob, Carol and Dave, all online, under a
/// write fan-out threshold of 2: four members, so read fan-out.
fn four_members() -> (Pair, [usize; 4], u64) {
    let cfg = BrokerConfig {
        group_write_fanout_max: 2,
        ..BrokerConfig::default()
    };
    let mut p = Pair::new(cfg);
    let ids = [ALICE, BOB, CAROL, DAVE].map(|u| p.connect(u, 1, v2));
    p.settle();
    let op = Outgoing::Group {
        group: 0,
        action: GroupAction::Create,
        users: vec![BOB, CAROL, DAVE],
    };
    p.submit(ids[0], op);
    let ev = p.settle();
    let g = created_group(&ev[ids[0]]).expect("created");
    // Online members are handed every record, as under write fan-out.
    assert_eq!(seen(&ev[ids[3]], g).len(), 1, "Dave sees his own 'added'");
    (p, ids, g)
}

/// Logs `client` out and lets the broker end its session.
fn go_offline(p: &mut Pair, client: usize) {
    p.clients[client].1.logout();
    p.settle();
}

/// A new process for `(user, 1)`, logging in (a fresh state: it starts
/// from the server's head).
fn come_back(p: &mut Pair, client: usize, user: u64) {
    let mut cfg = ClientConfig::new(Pair::token(user, 1));
    v2(&mut cfg);
    p.clients[client].1 = ClientConn::new(cfg, p.now, 9);
    p.settle();
}

#[test]
fn an_offline_member_gets_no_entry_and_its_list_counts_what_it_missed_at_login() {
    let (mut p, [a, b, c, d], g) = four_members();
    go_offline(&mut p, d);
    let (dave_before, bob_before) = (inbox_len(&p, DAVE), inbox_len(&p, BOB));
    p.post(b, ConvRef::group(g), "one");
    p.post(c, ConvRef::group(g), "two");
    p.post(a, ConvRef::group(g), "three");
    let ev = p.settle();
    assert_eq!(
        inbox_len(&p, DAVE),
        dave_before,
        "nothing is written for the offline member"
    );
    assert_eq!(
        inbox_len(&p, BOB),
        bob_before + 3,
        "the online ones get pushes"
    );
    let got: Vec<u64> = seen(&ev[b], g).into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, [5, 6, 7], "in group order");
    assert!(p.broker.stats().group_entries_skipped >= 3);

    come_back(&mut p, d, DAVE);
    let l = p.list(d);
    let item = l
        .items
        .iter()
        .find(|i| i.conv == ConvRef::group(g))
        .expect("listed");
    // Records 1-4 are the events of the create; 5-7 the messages.
    assert_eq!((item.last_seq, item.unread), (7, 3));
    assert_eq!(
        item.preview.as_ref().map(|pv| pv.head.clone()),
        seen(&ev[b], g).last().map(|(_, t)| Bytes::from(t.clone()))
    );
    assert_eq!(l.total_unread, 3);
    // The content comes by range, on demand.
    let now = p.now;
    assert!(p.clients[d]
        .1
        .request_history(now, ConvRef::group(g), 0, 64));
    let ev = p.settle();
    let page = ev[d]
        .iter()
        .find_map(|e| match e {
            ClientEvent::History(h) => Some(h.clone()),
            _ => None,
        })
        .expect("a page");
    let seqs: Vec<u64> = page.records.iter().map(|r| r.conv_seq).collect();
    assert_eq!(seqs, (4..=7).collect::<Vec<_>>(), "from Dave's 'added' on");
    // Reading clears the count on the server for every device.
    p.submit(
        d,
        Outgoing::MarkRead {
            conv: ConvRef::group(g),
            up_to: 7,
            receipt_device: 0,
            receipt_seq: 0,
        },
    );
    p.settle();
    let l = p.list(d);
    let item = l
        .items
        .iter()
        .find(|i| i.conv == ConvRef::group(g))
        .expect("listed");
    assert_eq!((item.read_seq, item.unread, l.total_unread), (7, 0, 0));
}

#[test]
fn a_message_costs_no_write_per_offline_member() {
    let (mut p, [a, b, c, d], g) = four_members();
    for i in [b, c, d] {
        go_offline(&mut p, i);
    }
    let key = ConvKey::Group(g);
    let states = |p: &Pair| {
        [BOB, CAROL, DAVE].map(|u| p.store.user_conv(u, &key).expect("mem").expect("state"))
    };
    let before = states(&p);
    for i in 0..20 {
        p.post(a, ConvRef::group(g), &format!("m{i}"));
    }
    p.settle();
    assert_eq!(
        states(&p),
        before,
        "offline members' states are not touched"
    );
    assert_eq!(p.broker.stats().group_entries_skipped, 60);
}

#[test]
fn crossing_the_threshold_back_keeps_the_counts_of_members_left_behind() {
    let (mut p, [a, b, c, d], g) = four_members();
    go_offline(&mut p, b);
    p.post(a, ConvRef::group(g), "while away");
    p.settle();
    // Two members leave: two left, so write fan-out again, with Bob's
    // state behind by a message and two events.
    for (i, user) in [(c, CAROL), (d, DAVE)] {
        let _ = user;
        p.submit(
            i,
            Outgoing::Group {
                group: g,
                action: GroupAction::Leave,
                users: vec![],
            },
        );
        p.settle();
    }
    p.post(a, ConvRef::group(g), "back to write fan-out");
    p.settle();
    come_back(&mut p, b, BOB);
    let l = p.list(b);
    let item = l
        .items
        .iter()
        .find(|i| i.conv == ConvRef::group(g))
        .expect("listed");
    assert_eq!(
        (item.last_seq, item.unread),
        (8, 2),
        "both messages, neither event, counted once"
    );
}
