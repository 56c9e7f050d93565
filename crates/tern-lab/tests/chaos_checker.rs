//! The chaos checker on hand-written journals: a clean run passes, and each
//! kind of violation (a lost ACKed message, a duplicate, an order violation,
//! a wrong receipt, a gap) is detected and counted exactly once.

use std::path::Path;

use tern_lab::chaos::{check_dir, Kind, Report};

/// User 1 (one device) writes to user 2 (two devices) in conversation 1001.
const META: &str =
    r#"{"version":1,"devices":[[1,1],[2,1],[2,2]],"convs":[[1001,1,2]],"params":{}}"#;

fn submit(n: u64, t: u64) -> String {
    format!(r#"{{"ev":"submit","t_us":{t},"user":1,"device":1,"n":{n},"conv":1001,"to":2}}"#)
}

fn ack(n: u64, seq: u64, t: u64) -> String {
    format!(
        r#"{{"ev":"ack","t_us":{t},"user":1,"device":1,"n":{n},"conv":1001,"to":2,"seq":{seq},"online":true}}"#
    )
}

/// Message `n` of device 1/1, stored under sender sequence `from_seq`,
/// handed as inbox entry `seq` at `t`.
fn msg(seq: u64, n: u64, from_seq: u64, t: u64) -> String {
    format!(
        r#"{{"ev":"entry","t_us":{t},"seq":{seq},"conv":1001,"from_user":1,"from_device":1,"from_seq":{from_seq},"kind":"message","payload":"chaos:1:1:{n}"}}"#
    )
}

/// A receipt in user 1's inbox: device 2/`by` acknowledged (or read) 1/1's
/// messages up to `target_seq`.
fn receipt(seq: u64, status: &str, by: u32, target_seq: u64, t: u64) -> String {
    format!(
        r#"{{"ev":"entry","t_us":{t},"seq":{seq},"conv":1001,"from_user":2,"from_device":{by},"from_seq":0,"kind":"receipt","status":"{status}","target_device":1,"target_seq":{target_seq}}}"#
    )
}

struct Journals {
    sends: Vec<String>,
    u1d1: Vec<String>,
    u2d1: Vec<String>,
    u2d2: Vec<String>,
}

/// Three messages, all acknowledged, delivered in order to both devices of
/// user 2; a DELIVERED receipt from 2/1 and a READ receipt from 2/2.
fn clean() -> Journals {
    Journals {
        sends: vec![
            submit(1, 10),
            submit(2, 11),
            submit(3, 12),
            ack(1, 1, 50),
            ack(2, 2, 51),
            ack(3, 3, 52),
        ],
        u1d1: vec![
            r#"{"ev":"connected","t_us":1,"head":0,"checkpoint":0,"pull_mode":false}"#.into(),
            receipt(1, "delivered", 1, 3, 400),
            receipt(2, "read", 2, 2, 500),
        ],
        u2d1: vec![msg(1, 1, 1, 100), msg(2, 2, 2, 110), msg(3, 3, 3, 120)],
        u2d2: vec![
            msg(1, 1, 1, 200),
            msg(2, 2, 2, 210),
            r#"{"ev":"offline","t_us":220,"how":"drop"}"#.into(),
            msg(3, 3, 3, 300),
        ],
    }
}

fn check(j: &Journals) -> Report {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), j);
    check_dir(dir.path()).expect("journals parse")
}

fn write_run(dir: &Path, j: &Journals) {
    let jd = dir.join("journal");
    std::fs::create_dir_all(&jd).unwrap();
    std::fs::write(jd.join("meta.json"), META).unwrap();
    let lines = |v: &[String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(jd.join("sends.jsonl"), lines(&j.sends)).unwrap();
    std::fs::write(jd.join("recv-u1-d1.jsonl"), lines(&j.u1d1)).unwrap();
    std::fs::write(jd.join("recv-u2-d1.jsonl"), lines(&j.u2d1)).unwrap();
    std::fs::write(jd.join("recv-u2-d2.jsonl"), lines(&j.u2d2)).unwrap();
}

/// Exactly `n` violations of `kind` and none of any other kind.
fn assert_only(r: &Report, kind: Kind, n: u64) {
    for k in Kind::ALL {
        let want = if k == kind { n } else { 0 };
        assert_eq!(
            r.count(k),
            want,
            "{}: expected {want}; report: {r}; examples: {:#?}",
            k.name(),
            r.example_lines()
        );
    }
    assert!(!r.passed());
    assert!(r.to_string().starts_with("FAIL"), "{r}");
}

#[test]
fn clean_journals_pass() {
    let r = check(&clean());
    assert!(r.passed(), "{r}: {:#?}", r.example_lines());
    assert_eq!(r.acked, 3);
    assert_eq!(r.deliveries, 6);
    assert_eq!(r.receipts, 2);
    assert_eq!(r.read_receipts, 1);
    assert!(r.to_string().starts_with("PASS"), "{r}");
    assert!(
        r.to_string()
            .contains("lost=0 duplicates=0 order=0 bad_receipts=0"),
        "{r}"
    );
}

#[test]
fn unacked_messages_may_be_missing_or_delivered() {
    let mut j = clean();
    // Submitted, never acknowledged, never delivered: fine.
    j.sends.push(submit(4, 13));
    // Submitted, not acknowledged (the sender went away), delivered: fine.
    j.sends.push(submit(5, 14));
    j.u2d1.push(msg(4, 5, 5, 130));
    j.u2d2.push(msg(4, 5, 5, 310));
    let r = check(&j);
    assert!(r.passed(), "{r}: {:#?}", r.example_lines());
    assert_eq!(r.unacked_delivered, 2);
}

#[test]
fn lost_acked_message_is_detected() {
    let mut j = clean();
    j.sends.push(submit(4, 13));
    j.sends.push(ack(4, 4, 53));
    // Device 2/1 gets it, device 2/2 never does.
    j.u2d1.push(msg(4, 4, 4, 130));
    let r = check(&j);
    assert_only(&r, Kind::Lost, 1);
    assert!(
        r.example_lines()[0].contains("1:1:4"),
        "{:?}",
        r.example_lines()
    );
    assert!(
        r.example_lines()[0].contains("device 2/2"),
        "{:?}",
        r.example_lines()
    );
}

#[test]
fn duplicate_entry_is_detected() {
    let mut j = clean();
    // The same inbox entry handed twice (e.g. again after a re-login).
    j.u2d1.insert(2, msg(2, 2, 2, 115));
    let r = check(&j);
    assert_only(&r, Kind::Duplicate, 1);
}

#[test]
fn duplicate_message_under_a_new_sequence_is_detected() {
    let mut j = clean();
    // The same message stored twice (resent under a new sender sequence
    // after a client restart) and handed as a new inbox entry.
    j.u2d1.push(msg(4, 3, 4, 130));
    j.u2d2.push(msg(4, 3, 4, 330));
    let r = check(&j);
    assert_only(&r, Kind::Duplicate, 2);
}

#[test]
fn order_violation_is_detected() {
    let mut j = clean();
    // Message 2 (sender seq 2) was put into user 2's inbox before message 1:
    // both devices are handed them in the wrong order.
    j.u2d1[0] = msg(1, 2, 2, 100);
    j.u2d1[1] = msg(2, 1, 1, 110);
    j.u2d2[0] = msg(1, 2, 2, 200);
    j.u2d2[1] = msg(2, 1, 1, 210);
    let r = check(&j);
    assert_only(&r, Kind::Order, 2);
    assert!(
        r.example_lines()[0].contains("conv 1001"),
        "{:?}",
        r.example_lines()
    );
}

#[test]
fn receipt_for_a_nonexistent_message_is_detected() {
    let mut j = clean();
    j.u1d1.push(receipt(3, "delivered", 1, 9, 600));
    let r = check(&j);
    assert_only(&r, Kind::BadReceipt, 1);
    assert!(
        r.example_lines()[0].contains("no message"),
        "{:?}",
        r.example_lines()
    );
}

#[test]
fn receipt_for_an_undelivered_message_is_detected() {
    let mut j = clean();
    // Device 2/2 acknowledges message 3 but was never handed it; message 3
    // still reached 2/1, so only the receipt is wrong.
    j.u2d2.pop();
    j.sends.retain(|l| !l.contains(r#""ev":"ack","t_us":52"#));
    j.u1d1.push(receipt(3, "delivered", 2, 3, 600));
    let r = check(&j);
    assert_only(&r, Kind::BadReceipt, 1);
    assert!(
        r.example_lines()[0].contains("never handed"),
        "{:?}",
        r.example_lines()
    );
}

#[test]
fn receipt_before_delivery_is_detected() {
    let mut j = clean();
    // The DELIVERED receipt reached the sender at t=105, before device 2/1
    // was handed message 3 (t=120).
    j.u1d1[1] = receipt(1, "delivered", 1, 3, 105);
    let r = check(&j);
    assert_only(&r, Kind::BadReceipt, 1);
    assert!(
        r.example_lines()[0].contains("after the receipt"),
        "{:?}",
        r.example_lines()
    );
}

#[test]
fn read_receipt_in_the_wrong_conversation_is_detected() {
    let mut j = clean();
    j.u1d1[2] = receipt(2, "read", 2, 2, 500).replace(r#""conv":1001"#, r#""conv":1002"#);
    let r = check(&j);
    assert_only(&r, Kind::BadReceipt, 1);
}

#[test]
fn skipped_entries_are_detected() {
    let mut j = clean();
    // Device 2/1 jumps from inbox #1 to #3; message 2 was not acknowledged,
    // so only the gap shows it.
    j.sends.retain(|l| !l.contains(r#""ev":"ack","t_us":51"#));
    j.u2d1.remove(1);
    j.u1d1.truncate(1); // no receipts (2/1's would now be wrong too)
    let r = check(&j);
    assert_only(&r, Kind::Gap, 1);
}

#[test]
fn all_violations_at_once() {
    let mut j = clean();
    j.sends.push(submit(4, 13));
    j.sends.push(ack(4, 4, 53));
    j.u2d1.push(msg(4, 4, 4, 130)); // 2/2 never gets it: lost
    j.u2d1.push(msg(4, 4, 4, 131)); // same entry again: duplicate
    j.u2d1[0] = msg(1, 2, 2, 100); // stored out of order: 2 order violations
    j.u2d1[1] = msg(2, 1, 1, 110);
    j.u2d2[0] = msg(1, 2, 2, 200);
    j.u2d2[1] = msg(2, 1, 1, 210);
    j.u1d1.push(receipt(3, "delivered", 1, 9, 600)); // nonexistent: bad receipt
    let r = check(&j);
    assert_eq!(r.count(Kind::Lost), 1, "{r}");
    assert_eq!(r.count(Kind::Duplicate), 1, "{r}");
    assert_eq!(r.count(Kind::Order), 2, "{r}");
    assert_eq!(r.count(Kind::BadReceipt), 1, "{r}");
    assert_eq!(r.total_violations(), 5, "{r}: {:#?}", r.example_lines());
}

#[test]
fn malformed_journal_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = clean();
    j.u2d1.push("{not json".into());
    write_run(dir.path(), &j);
    let err = check_dir(dir.path()).unwrap_err();
    assert!(err.contains("recv-u2-d1.jsonl:4"), "{err}");
}
