//! The local history on its own: what entries, pages and lists do to it,
//! what survives reopening the state folder, and the memory bounds.

use bytes::Bytes;
use tern_core::client::{ConvList, HistoryPage};
use tern_core::wire::{
    ConvRef, DeleteScope, Entry, HistoryEnd, ListItem, Record, RecordBody, SyncBody,
};

use super::*;

const PEER: u64 = 2;

fn conv() -> ConvRef {
    ConvRef::direct(PEER)
}

fn msg(seq: u64, conv_seq: u64) -> Entry {
    Entry {
        seq,
        conv: conv(),
        conv_seq,
        topic: 0,
        from_user: PEER,
        from_device: 1,
        from_seq: conv_seq,
        time_ms: 1000 + conv_seq,
        body: SyncBody::Message {
            msg_type: 0,
            payload: Bytes::from(format!("m{conv_seq}")),
        },
    }
}

fn with_body(conv_seq: u64, body: SyncBody) -> Entry {
    Entry {
        body,
        ..msg(0, conv_seq)
    }
}

fn record(conv_seq: u64) -> Record {
    Record {
        request_id: 7,
        conv: conv(),
        conv_seq,
        topic: 0,
        from_user: PEER,
        from_device: 1,
        from_seq: conv_seq,
        time_ms: 1000 + conv_seq,
        body: RecordBody::Message {
            msg_type: 0,
            payload: Bytes::from(format!("m{conv_seq}")),
        },
    }
}

fn page(records: Vec<Record>, low: u64, high: u64, last_seq: u64) -> HistoryPage {
    HistoryPage {
        conv: conv(),
        end: HistoryEnd {
            request_id: 1,
            conv: conv(),
            low,
            high,
            floor: 0,
            count: records.len() as u64,
            last_seq,
        },
        records,
        gap_fill: false,
    }
}

fn seqs(s: &HistoryStore, low: u64, high: u64) -> Vec<u64> {
    s.records(conv(), low, high)
        .unwrap()
        .iter()
        .map(|r| r.conv_seq)
        .collect()
}

#[test]
fn entries_store_records_and_recalls_deletions_are_never_undone() {
    let mut s = HistoryStore::memory();
    for i in 1..=5 {
        s.apply_entry(&msg(i, i)).unwrap();
    }
    assert_eq!(s.held(&conv()).unwrap().ranges.ranges(), &[(1, 5)]);
    let recall = SyncBody::Recall {
        target_device: 1,
        target_seq: 2,
    };
    s.apply_entry(&with_body(2, recall)).unwrap();
    let hide = SyncBody::Deleted {
        scope: DeleteScope::Message,
    };
    s.apply_entry(&with_body(3, hide)).unwrap();
    // Replayed after a restart: the recall and the deletion stand.
    s.apply_entry(&msg(2, 2)).unwrap();
    s.apply_entry(&msg(3, 3)).unwrap();
    let recs = s.records(conv(), 1, 5).unwrap();
    assert_eq!(seqs(&s, 1, 5), vec![1, 2, 4, 5]);
    assert_eq!(recs[1].body, RecordBody::Recalled { msg_type: 0 });
    let p = s
        .page(conv(), 0, 64)
        .unwrap()
        .expect("held: served locally");
    assert_eq!((p.end.low, p.end.high, p.end.count), (1, 5, 4));

    let clear = SyncBody::Deleted {
        scope: DeleteScope::Conversation,
    };
    s.apply_entry(&with_body(4, clear)).unwrap();
    s.apply_entry(&msg(4, 4)).unwrap();
    assert_eq!(seqs(&s, 1, 5), vec![5]);
    let h = s.held(&conv()).unwrap();
    assert_eq!((h.floor, h.ranges.ranges()), (4, &[(5, 5)][..]));
}

#[test]
fn pages_fill_holes_hide_what_they_leave_out_and_serve_windows() {
    let mut s = HistoryStore::memory();
    s.apply_entry(&msg(1, 10)).unwrap();
    assert!(s.page(conv(), 0, 5).unwrap().is_none(), "6..=9 not held");
    assert_eq!(s.held(&conv()).unwrap().missing(), vec![(1, 9)]);
    // 8 was deleted for the user: the server leaves it out.
    s.apply_entry(&msg(2, 8)).unwrap();
    let recs = [6, 7, 9].into_iter().map(record).collect();
    s.apply_page(&page(recs, 6, 9, 10)).unwrap();
    assert_eq!(seqs(&s, 1, 10), vec![6, 7, 9, 10]);
    let p = s.page(conv(), 0, 5).unwrap().expect("6..=10 held");
    assert_eq!(p.records.len(), 4);
    assert!(
        p.records.iter().all(|r| r.request_id == 0),
        "stored without"
    );
    assert_eq!((p.end.low, p.end.high), (6, 10));
    assert!(s.page(conv(), 7, 5).unwrap().is_none(), "1..=5 not held");
    assert_eq!(s.window(conv(), 7, 5), Some((2, 6)));
}

#[test]
fn the_state_folder_keeps_records_held_ranges_and_the_list() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = HistoryStore::open(dir.path()).unwrap();
        for i in 1..=3 {
            s.apply_entry(&msg(i, i)).unwrap();
        }
        let item = ListItem {
            request_id: 3,
            conv: conv(),
            version: 9,
            hidden: false,
            last_seq: 3,
            read_seq: 1,
            unread: 2,
            cleared_to: 0,
            preview: None,
        };
        let list = ConvList {
            items: vec![item],
            list_version: 9,
            total_unread: 2,
            server_time_ms: 0,
            pages: 1,
        };
        s.apply_list(0, &list).unwrap();
        // A list fetched from a later version does not cover what came
        // between: the saved version stays.
        let later = ConvList {
            items: vec![],
            list_version: 20,
            ..list
        };
        s.apply_list(12, &later).unwrap();
        assert_eq!(s.list_version(), 9);
    }
    let s = HistoryStore::open(dir.path()).unwrap();
    assert_eq!(s.held(&conv()).unwrap().ranges.ranges(), &[(1, 3)]);
    assert_eq!(seqs(&s, 1, 3), vec![1, 2, 3]);
    assert_eq!(s.list_version(), 9);
    assert_eq!(s.list()[0].unread, 2);
    // The outbox shares the folder and still reads its own rows.
    drop(s);
    let outbox = crate::client::outbox::Outbox::open(dir.path()).unwrap();
    assert!(outbox.rows().unwrap().is_empty());
}

#[test]
fn memory_history_is_bounded_and_held_ranges_shrink_with_it() {
    let mut s = HistoryStore::memory();
    let n = MEMORY_RECORDS_PER_CONV as u64 + 10;
    for i in 1..=n {
        s.apply_entry(&msg(i, i)).unwrap();
    }
    assert_eq!(
        s.records(conv(), 1, n).unwrap().len(),
        MEMORY_RECORDS_PER_CONV
    );
    assert_eq!(s.held(&conv()).unwrap().ranges.ranges(), &[(11, n)]);
    for peer in 100..100 + MEMORY_CONVS as u64 {
        let e = Entry {
            conv: ConvRef::direct(peer),
            ..msg(1, 1)
        };
        s.apply_entry(&e).unwrap();
    }
    // The first conversation changed least recently: forgotten.
    assert!(s.records(conv(), 1, n).unwrap().is_empty());
    assert!(s.held(&conv()).unwrap().ranges.is_empty());
    assert_eq!(s.held(&conv()).unwrap().last_seq, n, "still known to exist");
}
