//! History retention: a deployment that keeps history N days gets records
//! older than that deleted from the store, in conversations people still
//! use and in quiet ones, and answered as trimmed; one that keeps history
//! forever (the default) never loses a record to time.

use std::time::Duration;

use bytes::Bytes;
use tern_core::broker::BrokerConfig;
use tern_core::client::{ClientConfig, ClientEvent, HistoryPage, Outgoing};
use tern_core::conv::ConvKey;
use tern_core::store::Store;
use tern_core::wire::{ConvRef, VERSION_2};
use tern_sim::pair::Pair;

const ALICE: u64 = 1;
const BOB: u64 = 2;
const CAROL: u64 = 3;
const DAY: Duration = Duration::from_secs(86_400);

fn v2(c: &mut ClientConfig) {
    c.version = VERSION_2;
}

fn post(p: &mut Pair, client: usize, to: u64, text: &str) {
    let op = Outgoing::Post {
        conv: ConvRef::direct(to),
        topic: 0,
        msg_type: 0,
        payload: Bytes::copy_from_slice(text.as_bytes()),
    };
    let now = p.now;
    p.clients[client].1.submit(now, op).expect("queue has room");
}

fn history(p: &mut Pair, client: usize, with: u64) -> HistoryPage {
    let now = p.now;
    assert!(p.clients[client]
        .1
        .request_history(now, ConvRef::direct(with), 0, 64));
    p.settle()[client]
        .iter()
        .find_map(|e| match e {
            ClientEvent::History(h) if !h.gap_fill => Some(h.clone()),
            _ => None,
        })
        .expect("the page arrives")
}

fn stored_seqs(p: &Pair, a: u64, b: u64) -> Vec<u64> {
    let key = ConvKey::of(a, ConvRef::direct(b));
    let records = p.store.read_conv(&key, 0, 1000).expect("memory store");
    records.iter().map(|r| r.conv_seq).collect()
}

fn keeping(history: Option<Duration>) -> Pair {
    Pair::new(BrokerConfig {
        retention: DAY,
        history_retention: history,
        ..BrokerConfig::default()
    })
}

/// Alice talks to Bob and to Carol, then everyone is quiet for `quiet`.
fn talk_then_wait(p: &mut Pair, quiet: Duration) -> (usize, usize) {
    let a = p.connect(ALICE, 1, v2);
    let b = p.connect(BOB, 1, v2);
    p.connect(CAROL, 1, v2);
    p.settle();
    for t in ["one", "two", "three"] {
        post(p, a, BOB, t);
    }
    post(p, a, CAROL, "hi carol");
    p.settle();
    p.now += quiet;
    p.settle();
    (a, b)
}

#[test]
fn records_past_history_retention_are_deleted_and_answered_as_trimmed() {
    let mut p = keeping(Some(2 * DAY));
    let (a, b) = talk_then_wait(&mut p, 3 * DAY);
    post(&mut p, b, ALICE, "four");
    p.settle();
    let page = history(&mut p, a, BOB);
    let seqs: Vec<u64> = page.records.iter().map(|r| r.conv_seq).collect();
    assert_eq!(seqs, vec![4], "only the young record is answered");
    assert_eq!(page.end.floor, 3, "the page says 1..=3 are gone for good");
    assert_eq!(
        stored_seqs(&p, ALICE, BOB),
        vec![4],
        "and the store forgot them"
    );
    assert!(p.broker.stats().history_trimmed >= 1);
}

#[test]
fn a_quiet_conversation_is_trimmed_by_the_walk() {
    let mut p = keeping(Some(2 * DAY));
    talk_then_wait(&mut p, 3 * DAY);
    // Nobody posts or pages; the walk over every conversation runs on the
    // broker's timer.
    for _ in 0..3 {
        p.now += Duration::from_secs(600);
        p.settle();
    }
    assert_eq!(stored_seqs(&p, ALICE, CAROL), Vec::<u64>::new());
    assert_eq!(stored_seqs(&p, ALICE, BOB), Vec::<u64>::new());
}

#[test]
fn records_younger_than_retention_stay() {
    let mut p = keeping(Some(2 * DAY));
    let (a, _) = talk_then_wait(&mut p, DAY);
    let page = history(&mut p, a, BOB);
    assert_eq!(page.records.len(), 3);
    assert_eq!(page.end.floor, 0);
    assert_eq!(stored_seqs(&p, ALICE, CAROL), vec![1]);
}

#[test]
fn history_kept_forever_outlives_the_sync_timelines() {
    let mut p = keeping(None);
    let (a, _) = talk_then_wait(&mut p, 400 * DAY);
    let page = history(&mut p, a, BOB);
    assert_eq!(page.records.len(), 3, "a year later, history is whole");
    assert_eq!(page.end.floor, 0);
    assert_eq!(p.broker.stats().history_trimmed, 0);
}

#[test]
fn a_broker_that_forgets_cached_conversations_reloads_them_intact() {
    // With room for one cached conversation, every commit drops the
    // others; numbering, unread counts and history must not notice.
    let mut p = Pair::new(BrokerConfig {
        conv_cache_entries: 1,
        ..BrokerConfig::default()
    });
    let a = p.connect(ALICE, 1, v2);
    let b = p.connect(BOB, 1, v2);
    let c = p.connect(CAROL, 1, v2);
    p.settle();
    for round in 0..4 {
        post(&mut p, a, BOB, &format!("b{round}"));
        post(&mut p, a, CAROL, &format!("c{round}"));
        post(&mut p, b, ALICE, &format!("a{round}"));
        p.settle();
    }
    let seqs = |h: &HistoryPage| h.records.iter().map(|r| r.conv_seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(&history(&mut p, b, ALICE)),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&history(&mut p, c, ALICE)),
        (1..=4).collect::<Vec<_>>()
    );
    let now = p.now;
    assert!(p.clients[c].1.request_list(now, 0, 0));
    let list = p.settle()[c]
        .iter()
        .find_map(|e| match e {
            ClientEvent::ConvList(l) => Some(l.clone()),
            _ => None,
        })
        .expect("the list arrives");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].unread, 4, "{:?}", list.items[0]);
}
