//! The chaos checker's conversation part on hand-written journals: a clean
//! run with two users, a user with two devices and a late device that
//! roamed the history passes; a device missing a record, unread counts or
//! read positions that differ, a late device holding less, a device with no
//! view, an ACKed message missing from history, a message stored twice, a
//! roaming page that contradicts the final history and two users whose
//! histories differ each fail it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use tern_lab::chaos::{check_dir, Kind, Report};

/// Users 1 (devices 1, 2 and the late 3) and 2 (device 1), conversation
/// 1001 between them (`d:2` for user 1, `d:1` for user 2).
fn meta() -> Value {
    json!({"version":1,"devices":[[1,1],[1,2],[1,3],[2,1]],"convs":[[1001,1,2]],
           "params":{},"late":[[1,3]],"conv_checks":true})
}

/// (user, device, n, uplink seq, to): message 1:1:1 and then 2:1:1, 2:1:2,
/// stored as conv_seq 1, 2, 3.
const MSGS: [(u64, u32, u64, u64, u64); 3] = [(1, 1, 1, 1, 2), (2, 1, 1, 1, 1), (2, 1, 2, 2, 1)];

fn rec(conv_seq: u64, m: (u64, u32, u64, u64, u64)) -> Value {
    json!({"conv_seq":conv_seq,"topic":1001,"from_user":m.0,"from_device":m.1,"from_seq":m.3,
           "payload":format!("chaos:{}:{}:{}", m.0, m.1, m.2)})
}

fn history() -> Vec<Value> {
    MSGS.iter()
        .enumerate()
        .map(|(i, m)| rec(i as u64 + 1, *m))
        .collect()
}

/// An inbox entry of `user` for message `i` of [`MSGS`] at inbox `seq`.
fn entry(user: u64, seq: u64, i: usize) -> Value {
    let m = MSGS[i];
    let own = m.0 == user;
    let peer = if user == 1 { 2 } else { 1 };
    let mut e = json!({"ev":"entry","t_us":100 + seq,"seq":seq,"conv":1001,"from_user":m.0,
        "from_device":m.1,"from_seq":m.3,"kind":if own {"sync"} else {"message"},
        "payload":format!("chaos:{}:{}:{}", m.0, m.1, m.2),"cref":format!("d:{peer}"),
        "conv_seq":i as u64 + 1});
    if own {
        e["sync"] = json!("own");
    }
    e
}

fn read_entry(seq: u64, up_to: u64) -> Value {
    json!({"ev":"entry","t_us":300,"seq":seq,"conv":0,"from_user":1,"from_device":1,"from_seq":4,
           "kind":"sync","cref":"d:2","conv_seq":up_to,"sync":"read"})
}

/// The final views (round 1) of one device: list item and history.
fn views(conv: &str, item: Value, records: Vec<Value>, what: &str) -> Vec<Value> {
    let round = if what == "final" { 1 } else { 0 };
    vec![
        json!({"ev":"list","t_us":900,"what":what,"round":round,"items":[item],"list_version":9}),
        json!({"ev":"history","t_us":901,"what":what,"round":round,"conv":conv,"records":records,
               "pages":1,"floor":0}),
        json!({"ev":"view_end","t_us":902,"what":what,"round":round,"convs":1}),
    ]
}

fn item(conv: &str, read_seq: u64, unread: u64) -> Value {
    json!({"conv":conv,"last_seq":3,"read_seq":read_seq,"unread":unread,"hidden":false})
}

fn connected(checkpoint: u64) -> Value {
    json!({"ev":"connected","t_us":1,"head":checkpoint,"checkpoint":checkpoint,"pull_mode":false})
}

struct Run {
    sends: Vec<Value>,
    recv: BTreeMap<(u64, u32), Vec<Value>>,
}

/// Everything agrees: user 1's device 1 read `d:2` up to #3, and its device
/// 2 and the late device 3 were handed that read position.
fn clean() -> Run {
    let mut sends = Vec::new();
    for m in MSGS {
        sends.push(
            json!({"ev":"submit","t_us":10,"user":m.0,"device":m.1,"n":m.2,"conv":1001,"to":m.4}),
        );
        sends.push(
            json!({"ev":"ack","t_us":20,"user":m.0,"device":m.1,"n":m.2,"conv":1001,"to":m.4,
                          "seq":m.3,"online":true}),
        );
    }
    sends.push(
        json!({"ev":"mark_read","t_us":250,"user":1,"device":1,"conv":"d:2","up_to":3,"seq":4}),
    );
    let u1 = |dev: u32| {
        let mut v = vec![connected(0), entry(1, 1, 0), entry(1, 2, 1), entry(1, 3, 2)];
        v.push(read_entry(4, 3));
        v.extend(views("d:2", item("d:2", 3, 0), history(), "final"));
        (dev, v)
    };
    let mut recv = BTreeMap::new();
    for (dev, v) in [u1(1), u1(2)] {
        recv.insert((1, dev), v);
    }
    let mut late = vec![connected(3), read_entry(4, 3)];
    late.extend(views(
        "d:2",
        item("d:2", 2, 1),
        history()[..2].to_vec(),
        "roam",
    ));
    late.extend(views("d:2", item("d:2", 3, 0), history(), "final"));
    recv.insert((1, 3), late);
    let mut u2 = vec![connected(0), entry(2, 1, 0), entry(2, 2, 1), entry(2, 3, 2)];
    // Sending moved user 2's read position to its own newest message.
    u2.extend(views("d:1", item("d:1", 3, 0), history(), "final"));
    recv.insert((2, 1), u2);
    Run { sends, recv }
}

fn check(run: &Run) -> Report {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), run);
    check_dir(dir.path()).expect("journals parse")
}

fn write_run(dir: &Path, run: &Run) {
    let jd = dir.join("journal");
    std::fs::create_dir_all(&jd).unwrap();
    std::fs::write(jd.join("meta.json"), meta().to_string()).unwrap();
    let lines = |v: &[Value]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(jd.join("sends.jsonl"), lines(&run.sends)).unwrap();
    for ((u, d), v) in &run.recv {
        std::fs::write(jd.join(format!("recv-u{u}-d{d}.jsonl")), lines(v)).unwrap();
    }
}

/// The run fails, with violations of `kind` (and perhaps consequences of
/// the same fault in `also`), none of any other kind.
fn assert_fails(r: &Report, kind: Kind, also: &[Kind]) {
    assert!(!r.passed() && r.to_string().starts_with("FAIL"), "{r}");
    assert!(r.count(kind) > 0, "no {} violation: {r}", kind.name());
    for k in Kind::ALL {
        if k != kind && !also.contains(&k) {
            assert_eq!(r.count(k), 0, "{}: {r}: {:#?}", k.name(), r.example_lines());
        }
    }
}

/// The views of `dev` (the lines after its live entries).
fn views_of(run: &mut Run, dev: (u64, u32)) -> &mut Vec<Value> {
    run.recv.get_mut(&dev).unwrap()
}

/// The final `history` line of `dev`.
fn final_history(run: &mut Run, dev: (u64, u32)) -> &mut Value {
    views_of(run, dev)
        .iter_mut()
        .rfind(|l| l["ev"] == "history")
        .unwrap()
}

fn final_list_item(run: &mut Run, dev: (u64, u32)) -> &mut Value {
    let l = views_of(run, dev)
        .iter_mut()
        .rfind(|l| l["ev"] == "list")
        .unwrap();
    &mut l["items"][0]
}

#[test]
fn devices_that_agree_pass() {
    let r = check(&clean());
    assert!(r.passed(), "{r}: {:#?}", r.example_lines());
    assert_eq!(
        (r.views, r.history_records, r.roam_records),
        (4, 6, 2),
        "{r}"
    );
}

#[test]
fn a_device_missing_a_record_fails() {
    let mut run = clean();
    let h = final_history(&mut run, (1, 2));
    h["records"].as_array_mut().unwrap().remove(1);
    let r = check(&run);
    // Also its own view breaks: #2 absent, handed live as #2.
    assert_fails(&r, Kind::Diverged, &[Kind::History]);
    assert!(
        r.example_lines()
            .iter()
            .any(|l| l.contains("devices 1/1 and 1/2 disagree on the history of d:2")),
        "{:#?}",
        r.example_lines()
    );
}

#[test]
fn unread_counts_that_differ_fail() {
    let mut run = clean();
    final_list_item(&mut run, (1, 2))["unread"] = json!(1);
    let r = check(&run);
    assert_fails(&r, Kind::Diverged, &[Kind::History]);
    assert!(
        r.count(Kind::History) > 0,
        "the count contradicts the history too"
    );
}

#[test]
fn read_positions_that_differ_fail() {
    let mut run = clean();
    let it = final_list_item(&mut run, (1, 2));
    it["read_seq"] = json!(2);
    it["unread"] = json!(1);
    let r = check(&run);
    // Below the acknowledged mark_read and the read entry it was handed.
    assert_fails(&r, Kind::Diverged, &[Kind::History]);
}

#[test]
fn a_read_position_not_handed_to_another_device_fails() {
    let mut run = clean();
    views_of(&mut run, (1, 2)).retain(|l| l["sync"] != "read");
    let r = check(&run);
    assert_fails(&r, Kind::Diverged, &[]);
}

#[test]
fn a_device_handed_fewer_sync_entries_fails() {
    let mut run = clean();
    // Device 1/2 was handed neither message #3 nor the read position #4
    // before its final view.
    views_of(&mut run, (1, 2)).retain(|l| l["seq"] != 3 && l["seq"] != 4);
    let r = check(&run);
    assert_fails(&r, Kind::Diverged, &[Kind::Lost]);
    assert!(
        r.example_lines()
            .iter()
            .any(|l| l.contains("up to #4 and #2")),
        "{:#?}",
        r.example_lines()
    );
}

#[test]
fn a_late_device_holding_less_fails() {
    let mut run = clean();
    let h = final_history(&mut run, (1, 3));
    h["records"].as_array_mut().unwrap().pop();
    final_list_item(&mut run, (1, 3))["last_seq"] = json!(2);
    let r = check(&run);
    assert_fails(&r, Kind::Diverged, &[Kind::History]);
}

#[test]
fn a_device_without_a_view_fails() {
    let mut run = clean();
    views_of(&mut run, (1, 2)).retain(|l| l["what"] != "final");
    let r = check(&run);
    assert_fails(&r, Kind::Diverged, &[]);
}

#[test]
fn an_acked_message_missing_from_every_history_fails() {
    let mut run = clean();
    // A fourth message, acknowledged, that no history holds.
    run.sends
        .push(json!({"ev":"submit","t_us":30,"user":1,"device":2,"n":1,"conv":1001,"to":2}));
    run.sends.push(json!({"ev":"ack","t_us":31,"user":1,"device":2,"n":1,"conv":1001,"to":2,"seq":1,"online":true}));
    let r = check(&run);
    // Also lost to user 2's device, which was never handed it.
    assert_fails(&r, Kind::History, &[Kind::Lost]);
    assert_eq!(
        r.count(Kind::History),
        2,
        "both sides: {:#?}",
        r.example_lines()
    );
}

#[test]
fn a_message_stored_twice_fails() {
    let mut run = clean();
    for dev in [(1, 1), (1, 2), (1, 3)] {
        final_history(&mut run, dev)["records"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({"conv_seq":4,"topic":1001,"from_user":2,"from_device":1,"from_seq":3,
                          "payload":"chaos:2:1:2"}),
            );
        let it = final_list_item(&mut run, dev);
        it["last_seq"] = json!(4);
        it["unread"] = json!(1);
    }
    let r = check(&run);
    // User 2's history lacks it.
    assert_fails(&r, Kind::History, &[Kind::Diverged]);
    assert!(r.example_lines().iter().any(|l| l.contains("stored twice")));
}

#[test]
fn a_roaming_page_that_contradicts_the_final_history_fails() {
    let mut run = clean();
    let roam = views_of(&mut run, (1, 3))
        .iter_mut()
        .find(|l| l["ev"] == "history")
        .unwrap();
    roam["records"][1]["from_seq"] = json!(7);
    let r = check(&run);
    assert_fails(&r, Kind::History, &[]);
}

#[test]
fn two_users_whose_histories_differ_fail() {
    let mut run = clean();
    let h = final_history(&mut run, (2, 1));
    h["records"][0] = json!({"conv_seq":1,"topic":1001,"from_user":1,"from_device":1,"from_seq":1,
                             "recalled":true});
    let r = check(&run);
    // User 2 was handed #1 live with its content; its history holds a
    // recall marker (allowed), but user 1's history holds the message.
    assert_fails(&r, Kind::Diverged, &[]);
}
