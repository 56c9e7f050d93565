//! Conversations (protocol version 2) between real `ClientConn`s and a real
//! broker on a perfect network in virtual time: one history per direct
//! conversation, own messages and read positions on every device, the list
//! since a version, recall markers, deletions for one user, gap filling,
//! and version 1 devices next to version 2 ones.

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientEvent, ConvList, HistoryPage, Outgoing};
use tern_core::store::Store;
use tern_core::wire::{ConvRef, DeleteScope, Entry, RecordBody, SyncBody, VERSION, VERSION_2};
use tern_sim::pair::Pair;

const ALICE: u64 = 1;
const BOB: u64 = 2;

fn v2(c: &mut ClientConfig) {
    c.version = VERSION_2;
}

fn v1(c: &mut ClientConfig) {
    c.version = VERSION;
}

fn post(p: &mut Pair, client: usize, to: u64, text: &str) {
    let op = Outgoing::Post {
        conv: ConvRef::direct(to),
        topic: 7,
        msg_type: 0,
        payload: Bytes::copy_from_slice(text.as_bytes()),
    };
    let now = p.now;
    p.clients[client].1.submit(now, op).expect("queue has room");
}

fn submit(p: &mut Pair, client: usize, op: Outgoing) {
    let now = p.now;
    p.clients[client].1.submit(now, op).expect("queue has room");
}

fn sync_entries(events: &[ClientEvent]) -> Vec<Entry> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Entry(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn text(e: &Entry) -> String {
    match &e.body {
        SyncBody::Message { payload, .. } => String::from_utf8_lossy(payload).into_owned(),
        other => panic!("not a message: {other:?}"),
    }
}

fn list(p: &mut Pair, client: usize, since: u64) -> ConvList {
    list_with(p, client, since, 16)
}

fn list_with(p: &mut Pair, client: usize, since: u64, preview: u8) -> ConvList {
    p.list_since(client, since, preview)
}

fn history(p: &mut Pair, client: usize, conv: ConvRef, before: u64, max: u64) -> HistoryPage {
    let now = p.now;
    assert!(p.clients[client].1.request_history(now, conv, before, max));
    let ev = p.settle();
    ev[client]
        .iter()
        .find_map(|e| match e {
            ClientEvent::History(h) if !h.gap_fill => Some(h.clone()),
            _ => None,
        })
        .expect("the page arrives")
}

fn record_texts(page: &HistoryPage) -> Vec<(u64, String)> {
    page.records
        .iter()
        .map(|r| match &r.body {
            RecordBody::Message { payload, .. } => {
                (r.conv_seq, String::from_utf8_lossy(payload).into_owned())
            }
            RecordBody::Recalled { .. } => (r.conv_seq, "<recalled>".into()),
            RecordBody::Member(e) => (r.conv_seq, format!("<member {e:?}>")),
        })
        .collect()
}

#[test]
fn both_users_page_through_one_history_in_one_order() {
    let mut p = Pair::new(BrokerConfig::default());
    let a = p.connect(ALICE, 1, v2);
    let b = p.connect(BOB, 1, v2);
    p.settle();
    post(&mut p, a, BOB, "a1");
    post(&mut p, a, BOB, "a2");
    p.settle();
    post(&mut p, b, ALICE, "b1");
    p.settle();
    post(&mut p, a, BOB, "a3");
    let ev = p.settle();
    let got = sync_entries(&ev[b]);
    let last = got.last().expect("bob got a3");
    assert_eq!(
        (last.conv, last.conv_seq, text(last)),
        (ConvRef::direct(ALICE), 4, "a3".into())
    );
    let want: Vec<(u64, String)> = [(1, "a1"), (2, "a2"), (3, "b1"), (4, "a3")]
        .into_iter()
        .map(|(s, t)| (s, t.to_string()))
        .collect();
    let from_alice = history(&mut p, a, ConvRef::direct(BOB), 0, 10);
    let from_bob = history(&mut p, b, ConvRef::direct(ALICE), 0, 10);
    assert_eq!(record_texts(&from_alice), want);
    assert_eq!(
        record_texts(&from_bob),
        want,
        "both names lead to one timeline"
    );
    assert_eq!(from_bob.end.last_seq, 4);
}

#[test]
fn own_messages_and_read_positions_reach_the_users_other_devices() {
    let mut p = Pair::new(BrokerConfig::default());
    let a = p.connect(ALICE, 1, v2);
    let b1 = p.connect(BOB, 1, v2);
    let b2 = p.connect(BOB, 2, v2);
    p.settle();
    for i in 0..3 {
        post(&mut p, a, BOB, &format!("m{i}"));
    }
    p.settle();
    post(&mut p, b1, ALICE, "from phone");
    let ev = p.settle();
    let on_laptop = sync_entries(&ev[b2]);
    let own = on_laptop
        .iter()
        .find(|e| e.from_user == BOB)
        .expect("own copy");
    assert_eq!(
        (own.conv, own.conv_seq, text(own)),
        (ConvRef::direct(ALICE), 4, "from phone".into())
    );
    assert!(
        sync_entries(&ev[b1])
            .iter()
            .any(|e| e.from_user == BOB && e.conv_seq == 4),
        "the sending device learns its message's conv_seq from its own copy"
    );
    // Replying read everything before: nothing unread on either device.
    let l = list(&mut p, b2, 0);
    assert_eq!((l.items.len(), l.total_unread), (1, 0));
    post(&mut p, a, BOB, "later");
    p.settle();
    let l = list(&mut p, b2, 0);
    assert_eq!(
        (l.items[0].unread, l.items[0].read_seq, l.items[0].last_seq),
        (1, 4, 5)
    );
    submit(
        &mut p,
        b1,
        Outgoing::MarkRead {
            conv: ConvRef::direct(ALICE),
            up_to: 5,
            receipt_device: 1,
            receipt_seq: 4,
        },
    );
    let ev = p.settle();
    let read = sync_entries(&ev[b2]);
    assert!(
        read.iter()
            .any(|e| e.body == SyncBody::Read && e.conv_seq == 5),
        "the laptop hears of the read position: {read:?}"
    );
    assert!(
        sync_entries(&ev[a])
            .iter()
            .any(|e| matches!(e.body, SyncBody::Receipt { .. }) && e.conv_seq == 5),
        "alice gets the READ receipt"
    );
    let since = l.list_version;
    let l = list(&mut p, b2, since);
    assert_eq!(l.items.len(), 1, "only the changed conversation");
    assert_eq!((l.items[0].unread, l.total_unread), (0, 0));
}

#[test]
fn a_new_device_roams_the_whole_history_newest_first() {
    let mut p = Pair::new(BrokerConfig::default());
    let a = p.connect(ALICE, 1, v2);
    p.settle();
    for i in 1..=100 {
        post(&mut p, a, BOB, &format!("m{i}"));
    }
    p.settle();
    let b = p.connect(BOB, 9, v2);
    p.settle();
    let conv = ConvRef::direct(ALICE);
    let newest = history(&mut p, b, conv, 0, 64);
    assert_eq!((newest.end.low, newest.end.high), (37, 100));
    assert_eq!(record_texts(&newest).first().map(|r| r.0), Some(37));
    let older = history(&mut p, b, conv, 37, 64);
    assert_eq!(
        (older.end.low, older.end.high, older.records.len()),
        (1, 36, 36)
    );
    let held = p.clients[b].1.held(&conv).expect("held").clone();
    assert!(
        held.missing().is_empty(),
        "the whole history is held: {held:?}"
    );
}

#[test]
fn a_recalled_message_stays_in_history_as_a_marker() {
    let mut p = Pair::new(BrokerConfig::default());
    let a = p.connect(ALICE, 1, v2);
    let b = p.connect(BOB, 1, v2);
    p.settle();
    post(&mut p, a, BOB, "oops");
    post(&mut p, a, BOB, "fine");
    p.settle();
    submit(
        &mut p,
        a,
        Outgoing::Retract {
            conv: ConvRef::direct(BOB),
            target: 1,
        },
    );
    let ev = p.settle();
    assert!(
        sync_entries(&ev[b])
            .iter()
            .any(|e| matches!(e.body, SyncBody::Recall { .. }) && e.conv_seq == 1),
        "bob is told at once"
    );
    let page = history(&mut p, b, ConvRef::direct(ALICE), 0, 10);
    assert_eq!(
        record_texts(&page),
        vec![(1, "<recalled>".into()), (2, "fine".into())]
    );
    // Only the sender may recall.
    submit(
        &mut p,
        b,
        Outgoing::Retract {
            conv: ConvRef::direct(ALICE),
            target: 2,
        },
    );
    let ev = p.settle();
    assert!(ev[b]
        .iter()
        .any(|e| matches!(e, ClientEvent::Rejected { code: 14, .. })));
}

#[test]
fn deleting_for_me_hides_history_only_for_me_on_every_device() {
    let mut p = Pair::new(BrokerConfig::default());
    let a = p.connect(ALICE, 1, v2);
    let b1 = p.connect(BOB, 1, v2);
    let b2 = p.connect(BOB, 2, v2);
    p.settle();
    for i in 1..=4 {
        post(&mut p, a, BOB, &format!("m{i}"));
    }
    p.settle();
    let conv = ConvRef::direct(ALICE);
    submit(
        &mut p,
        b1,
        Outgoing::Delete {
            conv,
            scope: DeleteScope::Message,
            target: 2,
        },
    );
    let ev = p.settle();
    assert!(sync_entries(&ev[b2]).iter().any(|e| e.body
        == SyncBody::Deleted {
            scope: DeleteScope::Message
        }
        && e.conv_seq == 2));
    let page = history(&mut p, b2, conv, 0, 10);
    assert_eq!(
        page.records.iter().map(|r| r.conv_seq).collect::<Vec<_>>(),
        vec![1, 3, 4]
    );
    assert_eq!(page.end.count, 3);
    submit(
        &mut p,
        b2,
        Outgoing::Delete {
            conv,
            scope: DeleteScope::Conversation,
            target: 0,
        },
    );
    p.settle();
    let l = list(&mut p, b1, 0);
    assert!(l.items[0].hidden && l.items[0].cleared_to == 4 && l.items[0].unread == 0);
    let page = history(&mut p, b1, conv, 0, 10);
    assert!(page.records.is_empty() && page.end.floor == 4);
    // Alice keeps everything.
    let page = history(&mut p, a, ConvRef::direct(BOB), 0, 10);
    assert_eq!(page.records.len(), 4);
    // A new message shows the conversation again.
    post(&mut p, a, BOB, "m5");
    p.settle();
    let l = list(&mut p, b1, 0);
    assert!(!l.items[0].hidden && l.items[0].unread == 1);
}

#[test]
fn five_hundred_changed_conversations_take_two_round_trips_and_16_kb() {
    let mut p = Pair::new(BrokerConfig::default());
    let senders: Vec<usize> = (0..500).map(|i| p.connect(100 + i, 1, v2)).collect();
    p.settle();
    for (i, s) in senders.iter().enumerate() {
        for j in 0..(1 + i % 3) {
            post(
                &mut p,
                *s,
                BOB,
                &format!("hello {j} from a fairly talkative friend"),
            );
        }
    }
    p.settle();
    let b = p.connect(BOB, 1, v2);
    p.settle();
    let l = list_with(&mut p, b, 0, 12);
    assert_eq!(l.items.len(), 500);
    assert!(
        l.pages <= 2,
        "at most two round trips after login: {}",
        l.pages
    );
    assert_eq!(l.total_unread, (0..500u64).map(|i| 1 + i % 3).sum::<u64>());
    let bytes: usize = l
        .items
        .iter()
        .map(|i| tern_core::wire::Frame::ListItem(i.clone()).encoded_len())
        .sum();
    assert!(bytes <= 16 * 1024, "{bytes} bytes of items");
}

#[test]
fn a_version_1_device_keeps_working_and_version_2_devices_catch_up_by_range_pull() {
    let mut p = Pair::new(BrokerConfig::default());
    let a = p.connect(ALICE, 1, v2);
    let b_old = p.connect(BOB, 1, v1);
    let b_new = p.connect(BOB, 2, v2);
    p.settle();
    post(&mut p, a, BOB, "to both");
    let ev = p.settle();
    assert_eq!(
        text(&sync_entries(&ev[b_old])[0]),
        "to both",
        "version 1 sees the message"
    );
    assert_eq!(
        sync_entries(&ev[b_old])[0].conv_seq,
        0,
        "as a version 1 DELIVER"
    );
    // Bob's new device writes; no own copy may enter the timeline the old
    // device reads.
    post(&mut p, b_new, ALICE, "from new");
    post(&mut p, b_new, ALICE, "again");
    let ev = p.settle();
    assert!(sync_entries(&ev[b_old]).iter().all(|e| e.from_user != BOB));
    assert!(sync_entries(&ev[b_new]).iter().all(|e| e.from_user != BOB));
    // Alice answers: the new device sees conv_seq 4 while it holds 1, and
    // fills 2..3 by range pull.
    post(&mut p, a, BOB, "answer");
    let ev = p.settle();
    let filled = ev[b_new].iter().find_map(|e| match e {
        ClientEvent::History(h) if h.gap_fill => Some(h.clone()),
        _ => None,
    });
    let filled = filled.expect("the gap is filled");
    assert_eq!((filled.end.low, filled.end.high), (2, 3));
    let held = p.clients[b_new]
        .1
        .held(&ConvRef::direct(ALICE))
        .expect("held")
        .clone();
    assert!(held.missing().is_empty(), "{held:?}");
    // The old device's view: messages from Alice only, in order, dense
    // (Alice's DELIVERED receipts for the new device's messages come too,
    // within `receipt_delay`).
    let old: Vec<String> = sync_entries(&ev[b_old])
        .iter()
        .filter(|e| matches!(e.body, SyncBody::Message { .. }))
        .map(text)
        .collect();
    assert_eq!(old, vec!["answer".to_string()]);
}

#[test]
fn a_version_1_server_session_serves_a_downgraded_client() {
    // The broker refuses nothing here, so a downgrade is seen by a v2
    // client only against a version 1 server; its frame choice is tested in
    // the core. What a version 2 broker must do: serve a version 1 login
    // exactly as before, with the stored entries in version 1 form.
    let mut p = Pair::new(BrokerConfig::default());
    let a = p.connect(ALICE, 1, v1);
    let b = p.connect(BOB, 1, v1);
    p.settle();
    p.send(a, BOB, 3);
    let ev = p.settle();
    let got = sync_entries(&ev[b]);
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(got.iter().all(|e| e.conv_seq == 0 && e.topic == 1));
    // The messages are in history all the same, for devices that upgrade.
    let key = tern_core::conv::ConvKey::Direct { lo: ALICE, hi: BOB };
    assert_eq!(p.store.conv_meta(&key).unwrap().map(|m| m.head), Some(3));
}
