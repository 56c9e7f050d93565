//! Groups (`proto-spec/groups.md`) between real `ClientConn`s and a real
//! broker on a perfect network in virtual time: creation, write fan-out to
//! every member device (the sender's other devices too), removal at an
//! exact record with history up to it, roles, the list and the member
//! pages.

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientEvent, HistoryPage, Outgoing};
use tern_core::wire::{
    ConvKind, ConvRef, Entry, ErrorCode, GroupAction, GroupEventKind, GroupRole, RecordBody,
    SyncBody,
};
use tern_sim::pair::{v2, Pair};

const ALICE: u64 = 1;
const BOB: u64 = 2;
const CAROL: u64 = 3;
const DAVE: u64 = 4;

fn group_op(p: &mut Pair, client: usize, g: u64, action: GroupAction, users: &[u64]) {
    let op = Outgoing::Group {
        group: g,
        action,
        users: users.to_vec(),
    };
    p.submit(client, op);
}

fn entries(events: &[ClientEvent]) -> Vec<Entry> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Entry(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// What a device saw of group `g`, in order: texts, and events as
/// "+user", "-user", "*user".
fn seen(events: &[ClientEvent], g: u64) -> Vec<(u64, String)> {
    entries(events)
        .into_iter()
        .filter(|e| e.conv == ConvRef::group(g))
        .map(|e| {
            let what = match e.body {
                SyncBody::Message { payload, .. } => String::from_utf8_lossy(&payload).into(),
                SyncBody::Member(ev) => match ev.kind {
                    GroupEventKind::Created | GroupEventKind::Added => format!("+{}", ev.user),
                    GroupEventKind::Removed | GroupEventKind::Left => format!("-{}", ev.user),
                    GroupEventKind::RoleChanged => format!("*{}", ev.user),
                },
                other => format!("{other:?}"),
            };
            (e.conv_seq, what)
        })
        .collect()
}

fn rejections(events: &[ClientEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Rejected { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn history(p: &mut Pair, client: usize, conv: ConvRef) -> HistoryPage {
    let now = p.now;
    assert!(p.clients[client].1.request_history(now, conv, 0, 64));
    let ev = p.settle();
    ev[client]
        .iter()
        .find_map(|e| match e {
            ClientEvent::History(h) if !h.gap_fill => Some(h.clone()),
            _ => None,
        })
        .expect("the page arrives")
}

/// Alice (devices 1 and 2), Bob and Carol online; Alice creates a group
/// with Bob and Carol. Returns the clients and the group id, which Alice's
/// creating device learns from the "created" entry naming its operation.
fn three_members() -> (Pair, [usize; 4], u64) {
    let mut p = Pair::new(BrokerConfig::default());
    let a1 = p.connect(ALICE, 1, v2);
    let a2 = p.connect(ALICE, 2, v2);
    let b = p.connect(BOB, 1, v2);
    let c = p.connect(CAROL, 1, v2);
    p.settle();
    group_op(&mut p, a1, 0, GroupAction::Create, &[BOB, CAROL]);
    let ev = p.settle();
    let created = entries(&ev[a1])
        .into_iter()
        .find(|e| {
            matches!(e.body, SyncBody::Member(ev) if ev.kind == GroupEventKind::Created)
                && e.from_device == 1
        })
        .expect("the creator's device sees the group created");
    assert_eq!(created.conv.kind, ConvKind::Group);
    let g = created.conv.id;
    assert!(g != 0 && g < 1 << 62, "a server-assigned 62-bit id");
    // Each member sees the group from the record that made it one.
    let all = [
        (1, "+1".to_string()),
        (2, "+2".to_string()),
        (3, "+3".to_string()),
    ];
    for (i, from) in [(a1, 0), (a2, 0), (b, 1), (c, 2)] {
        assert_eq!(seen(&ev[i], g), all[from..].to_vec(), "client {i}");
    }
    (p, [a1, a2, b, c], g)
}

#[test]
fn a_group_message_reaches_every_member_device_the_senders_other_devices_included() {
    let (mut p, [a1, a2, b, c], g) = three_members();
    p.post(b, ConvRef::group(g), "hello group");
    let mut ev = p.settle();
    p.post(a1, ConvRef::group(g), "hi bob");
    for (i, more) in p.settle().into_iter().enumerate() {
        ev[i].extend(more);
    }
    let want = vec![(4, "hello group".to_string()), (5, "hi bob".to_string())];
    for i in [a1, a2, b, c] {
        assert_eq!(seen(&ev[i], g), want, "client {i}");
    }
    assert!(ev.iter().all(|e| rejections(e).is_empty()));
    // No DELIVERED receipts in groups: the sender's timeline does not grow
    // by one entry per member.
    assert!(entries(&ev[b])
        .iter()
        .all(|e| !matches!(e.body, SyncBody::Receipt { .. })));
    // The group is in every member's list, with unread counts and a preview.
    let l = p.list(c);
    let item = l
        .items
        .iter()
        .find(|i| i.conv == ConvRef::group(g))
        .expect("listed");
    assert_eq!((item.last_seq, item.unread), (5, 2));
    assert_eq!(
        item.preview
            .as_ref()
            .map(|pv| (pv.from_user, pv.head.clone())),
        Some((ALICE, Bytes::from_static(b"hi bob")))
    );
    let l = p.list(a2);
    let item = l
        .items
        .iter()
        .find(|i| i.conv == ConvRef::group(g))
        .expect("listed");
    assert_eq!(item.unread, 0, "whoever writes has read what came before");
}

#[test]
fn a_removed_member_stops_at_its_removal_and_keeps_the_history_up_to_it() {
    let (mut p, [a1, _a2, b, c], g) = three_members();
    p.post(c, ConvRef::group(g), "before");
    p.settle();
    group_op(&mut p, a1, g, GroupAction::Remove, &[CAROL]);
    p.settle();
    p.post(b, ConvRef::group(g), "after");
    p.post(c, ConvRef::group(g), "let me in");
    let ev = p.settle();
    assert_eq!(seen(&ev[b], g), vec![(6, "after".to_string())]);
    assert!(seen(&ev[c], g).is_empty(), "nothing past the removal");
    assert_eq!(
        rejections(&ev[c]),
        vec![ErrorCode::NoSuchConversation as u64]
    );
    let page = history(&mut p, c, ConvRef::group(g));
    let seqs: Vec<u64> = page.records.iter().map(|r| r.conv_seq).collect();
    assert_eq!(
        seqs,
        vec![3, 4, 5],
        "from the record that added her to the one that removed her"
    );
    assert!(matches!(
        page.records.last().map(|r| &r.body),
        Some(RecordBody::Member(e)) if e.kind == GroupEventKind::Removed && e.user == CAROL
    ));
    let page = history(&mut p, b, ConvRef::group(g));
    let seqs: Vec<u64> = page.records.iter().map(|r| r.conv_seq).collect();
    assert_eq!(seqs, vec![2, 3, 4, 5, 6], "Bob sees on from his addition");
}

#[test]
fn only_admins_add_or_remove_and_only_the_owner_makes_admins() {
    let (mut p, [a1, _a2, b, c], g) = three_members();
    let d = p.connect(DAVE, 1, v2);
    p.settle();
    group_op(&mut p, b, g, GroupAction::Add { admin: false }, &[DAVE]);
    group_op(&mut p, b, g, GroupAction::Remove, &[CAROL]);
    group_op(&mut p, b, g, GroupAction::SetRole { admin: true }, &[CAROL]);
    p.post(d, ConvRef::group(g), "not a member");
    let ev = p.settle();
    let denied = ErrorCode::NotPermitted as u64;
    assert_eq!(rejections(&ev[b]), vec![denied, denied, denied]);
    assert_eq!(
        rejections(&ev[d]),
        vec![ErrorCode::NoSuchConversation as u64]
    );
    // The owner makes Bob an admin; Bob then adds Dave, who sees the group
    // from the record that added him.
    group_op(&mut p, a1, g, GroupAction::SetRole { admin: true }, &[BOB]);
    p.settle();
    group_op(&mut p, b, g, GroupAction::Add { admin: false }, &[DAVE]);
    let ev = p.settle();
    assert_eq!(seen(&ev[d], g), vec![(5, "+4".to_string())]);
    assert_eq!(seen(&ev[c], g), vec![(5, "+4".to_string())]);
    // An admin cannot remove the owner; the owner cannot leave.
    group_op(&mut p, b, g, GroupAction::Remove, &[ALICE]);
    group_op(&mut p, a1, g, GroupAction::Leave, &[]);
    let ev = p.settle();
    assert_eq!(rejections(&ev[b]), vec![denied]);
    assert_eq!(rejections(&ev[a1]), vec![denied]);
    // Dave leaves: his last entry is his own leaving.
    group_op(&mut p, d, g, GroupAction::Leave, &[]);
    p.settle();
    p.post(c, ConvRef::group(g), "bye dave");
    let ev = p.settle();
    assert!(seen(&ev[d], g).is_empty());
    assert_eq!(seen(&ev[b], g), vec![(7, "bye dave".to_string())]);
    let page = history(&mut p, d, ConvRef::group(g));
    let seqs: Vec<u64> = page.records.iter().map(|r| r.conv_seq).collect();
    assert_eq!(
        seqs,
        vec![5, 6],
        "from the record that added him to his leaving"
    );
}

#[test]
fn members_are_listed_in_bounded_pages() {
    let mut p = Pair::new(BrokerConfig::default());
    let a = p.connect(ALICE, 1, v2);
    let others: Vec<u64> = (10..40).collect();
    for &u in &others {
        p.connect(u, 1, v2);
    }
    p.settle();
    group_op(&mut p, a, 0, GroupAction::Create, &others);
    let ev = p.settle();
    let g = entries(&ev[a])[0].conv.id;
    let (mut after, mut all) = (0, Vec::new());
    loop {
        let now = p.now;
        assert!(p.clients[a].1.request_members(now, g, after, 8));
        let ev = p.settle();
        let page = ev[a]
            .iter()
            .find_map(|e| match e {
                ClientEvent::Members(m) => Some(m.clone()),
                _ => None,
            })
            .expect("a page arrives");
        assert!(page.members.len() <= 8);
        assert_eq!(page.end.members, 31);
        all.extend(page.members.iter().map(|m| (m.user, m.role)));
        after = page.end.next_after;
        if page.end.complete {
            break;
        }
    }
    let mut want = vec![(ALICE, GroupRole::Owner)];
    want.extend(others.iter().map(|u| (*u, GroupRole::Member)));
    assert_eq!(all, want);
}

#[test]
fn a_group_never_grows_past_its_member_limit() {
    let cfg = BrokerConfig {
        group_max_members: 3,
        ..BrokerConfig::default()
    };
    let mut p = Pair::new(cfg);
    let a = p.connect(ALICE, 1, v2);
    for u in [BOB, CAROL, DAVE] {
        p.connect(u, 1, v2);
    }
    p.settle();
    group_op(&mut p, a, 0, GroupAction::Create, &[BOB, CAROL, DAVE]);
    group_op(&mut p, a, 0, GroupAction::Create, &[BOB, CAROL]);
    let ev = p.settle();
    assert_eq!(rejections(&ev[a]), vec![ErrorCode::GroupFull as u64]);
    let g = entries(&ev[a])[0].conv.id;
    group_op(&mut p, a, g, GroupAction::Add { admin: false }, &[DAVE]);
    let ev = p.settle();
    assert_eq!(rejections(&ev[a]), vec![ErrorCode::GroupFull as u64]);
}

#[test]
fn the_group_survives_a_broker_crash_exactly_once() {
    let (mut p, [a1, a2, b, c], g) = three_members();
    p.post(b, ConvRef::group(g), "one");
    p.settle();
    p.restart_broker();
    for i in [a1, a2, b, c] {
        let now = p.now;
        p.clients[i].1.ping(now);
    }
    p.settle();
    // The membership comes back from the store: Carol may post, and every
    // member gets it once.
    p.post(c, ConvRef::group(g), "two");
    let ev = p.settle();
    for i in [a1, a2, b, c] {
        let s = seen(&ev[i], g);
        assert_eq!(s, vec![(5, "two".to_string())], "client {i}: no duplicate");
    }
}

fn read_counts(p: &mut Pair, client: usize, g: u64, low: u64, count: u8) -> (u64, Vec<u64>) {
    let now = p.now;
    assert!(p.clients[client]
        .1
        .request_read_counts(now, g, low, count)
        .is_some());
    let ev = p.settle();
    ev[client]
        .iter()
        .find_map(|e| match e {
            ClientEvent::ReadCounts(c) => Some((c.members, c.read_by.clone())),
            _ => None,
        })
        .expect("the counts arrive")
}

fn mark(p: &mut Pair, client: usize, g: u64, up_to: u64) {
    let op = Outgoing::MarkRead {
        conv: ConvRef::group(g),
        up_to,
        receipt_device: 0,
        receipt_seq: 0,
    };
    p.submit(client, op);
}

#[test]
fn read_counts_follow_each_members_cursor_once_whatever_its_devices() {
    let (mut p, [a1, a2, b, c], g) = three_members();
    p.post(a1, ConvRef::group(g), "m4");
    p.post(a1, ConvRef::group(g), "m5");
    p.post(a1, ConvRef::group(g), "m6");
    p.settle();
    // Nobody but Alice read them; her own messages do not count her.
    assert_eq!(read_counts(&mut p, b, g, 4, 3), (3, vec![0, 0, 0]));
    mark(&mut p, b, g, 5);
    p.settle();
    assert_eq!(read_counts(&mut p, a2, g, 4, 3), (3, vec![1, 1, 0]));
    // Carol reads everything; Bob's read position only moves forward.
    mark(&mut p, c, g, 6);
    mark(&mut p, b, g, 4);
    p.settle();
    assert_eq!(read_counts(&mut p, a1, g, 4, 3), (3, vec![2, 2, 1]));
    // Alice reading Bob's message counts her once, from either device.
    p.post(b, ConvRef::group(g), "m7");
    p.settle();
    mark(&mut p, a1, g, 7);
    mark(&mut p, a2, g, 7);
    p.settle();
    assert_eq!(read_counts(&mut p, b, g, 7, 64), (3, vec![1]));
    // Bob wrote m7, so he has read what came before it. A removed member
    // no longer counts; a non-member may not ask.
    assert_eq!(read_counts(&mut p, a1, g, 4, 3), (3, vec![2, 2, 2]));
    group_op(&mut p, a1, g, GroupAction::Remove, &[CAROL]);
    p.settle();
    assert_eq!(read_counts(&mut p, a1, g, 4, 3), (2, vec![1, 1, 1]));
    let now = p.now;
    assert!(p.clients[c].1.request_read_counts(now, g, 4, 3).is_some());
    let ev = p.settle();
    assert!(ev[c].iter().any(|e| matches!(
        e,
        ClientEvent::ServerError(err) if err.code == ErrorCode::NoSuchConversation as u64
    )));
}

#[test]
fn read_counts_come_back_after_a_broker_restart() {
    let (mut p, [a1, a2, b, c], g) = three_members();
    p.post(a1, ConvRef::group(g), "m4");
    p.settle();
    mark(&mut p, b, g, 4);
    mark(&mut p, c, g, 4);
    p.settle();
    p.restart_broker();
    for i in [a1, a2, b, c] {
        let now = p.now;
        p.clients[i].1.ping(now);
    }
    p.settle();
    assert_eq!(read_counts(&mut p, a1, g, 4, 1), (3, vec![2]));
}

#[test]
fn who_read_a_message_is_paged_without_its_author() {
    let (mut p, [a1, _a2, b, c], g) = three_members();
    p.post(b, ConvRef::group(g), "m4");
    p.settle();
    mark(&mut p, c, g, 4);
    mark(&mut p, a1, g, 3);
    p.settle();
    let readers = |p: &mut Pair, conv_seq: u64| {
        let now = p.now;
        assert!(p.clients[a1].1.request_readers(now, g, conv_seq, 0, 64));
        let ev = p.settle();
        ev[a1]
            .iter()
            .find_map(|e| match e {
                ClientEvent::Members(m) => Some(m.members.iter().map(|m| m.user).collect()),
                _ => None,
            })
            .expect("a page arrives")
    };
    let got: Vec<u64> = readers(&mut p, 4);
    assert_eq!(got, vec![CAROL], "Bob wrote it, Alice has not read it");
    let got: Vec<u64> = readers(&mut p, 3);
    assert_eq!(
        got,
        vec![BOB, CAROL],
        "record 3 (Carol added) is Alice's own; Bob wrote after it"
    );
    let got: Vec<u64> = readers(&mut p, 99);
    assert!(got.is_empty(), "no such record: nobody read it");
}
