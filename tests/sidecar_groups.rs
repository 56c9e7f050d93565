//! Groups through the sidecar's local API against a real `ternd` and real
//! sidecar processes: a group created through one sidecar, members added,
//! each member's sidecar streams the membership events and the group's
//! messages; a removed member stops receiving at its `removed` record;
//! members are paged; read counts say "read by N of M"; the owner makes an
//! admin who may then add; a create retried with its idempotency key
//! across sidecar and `ternd` SIGKILLs makes one group and answers its id.
//! Refusals: `sidecar_group_errors.rs`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::sidecar::{delete, json_body, post_expect, wait_status, Lab};
use tern_lab::http::{EventStream, HttpClient};

/// Events off `s` up to and including the first for which `last` holds
/// (each within 20 s); acknowledged as read.
fn events_until(
    c: &mut HttpClient,
    s: &mut EventStream,
    last: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let e = s
            .next(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("an event within 20s after {got:?}: {e}"));
        let v: Value = serde_json::from_str(&e.data).expect("event data is JSON");
        let done = last(&v);
        got.push(v);
        if done {
            let up_to = got.last().unwrap()["id"].as_u64().unwrap();
            post_expect(c, "/v1/events/ack", &json!({ "up_to": up_to }), 200);
            return got;
        }
    }
}

/// What the events say, compactly: `member:EVENT:USER` or `TEXT@CONV`.
fn summary(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["kind"].as_str() {
            Some("member") => format!(
                "member:{}:{}",
                e["member"]["event"].as_str().unwrap(),
                e["member"]["user"]
            ),
            Some("message") => format!(
                "{}@{}",
                e["text"].as_str().unwrap_or(""),
                e["conversation"].as_str().unwrap()
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

fn is_text(t: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["text"] == t
}

fn post_to(c: &mut HttpClient, conv: &str, text: &str) -> Value {
    post_expect(
        c,
        &format!("/v1/conversations/{conv}/messages?wait=stored"),
        &json!({ "text": text }),
        200,
    )
}

fn history(c: &mut HttpClient, conv: &str) -> Vec<String> {
    let r = c
        .get(&format!("/v1/conversations/{conv}/history?max=64"))
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json_body(&r)["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match r["kind"].as_str() {
            Some("member") => format!(
                "member:{}:{}",
                r["member"]["event"].as_str().unwrap(),
                r["member"]["user"]
            ),
            _ => r["text"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

/// The group's members as (user, role), every page of `limit`.
fn all_members(c: &mut HttpClient, group: u64, limit: u64) -> (Vec<(u64, String)>, usize) {
    let mut after = 0;
    let mut members = Vec::new();
    for pages in 1..=16 {
        let r = c
            .get(&format!(
                "/v1/groups/{group}/members?after={after}&limit={limit}"
            ))
            .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let p = json_body(&r);
        for m in p["members"].as_array().unwrap() {
            members.push((
                m["user"].as_u64().unwrap(),
                m["role"].as_str().unwrap().into(),
            ));
        }
        if p["complete"] == true {
            return (members, pages);
        }
        after = p["next_after"].as_u64().unwrap();
    }
    panic!("more than 16 pages: {members:?}");
}

#[test]
fn a_group_made_through_one_sidecar_reaches_every_member_until_removed() {
    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let bob = lab.sidecar(2, 1, "bob");
    let carol = lab.sidecar(3, 1, "carol");
    let (mut a, mut b, mut c) = (alice.client(), bob.client(), carol.client());
    let mut bs = b.events("/v1/events", None).unwrap();
    let mut cs = c.events("/v1/events", None).unwrap();

    // Created with bob; the same key again is the same group, not another.
    let made = post_expect(
        &mut a,
        "/v1/groups",
        &json!({"members": [2], "idempotency_key": "team"}),
        201,
    );
    let g = made["group"].as_u64().expect("the group's id");
    let conv = format!("g:{g}");
    assert_eq!(made["conversation"], conv.as_str());
    assert_eq!(made["kind"], "group");
    assert_eq!(made["status"], "stored");
    let again = post_expect(
        &mut a,
        "/v1/groups",
        &json!({"members": [2], "idempotency_key": "team"}),
        201,
    );
    assert_eq!(
        (again["group"].as_u64(), again["duplicate"].as_bool()),
        (Some(g), Some(true))
    );
    assert_eq!(again["id"], made["id"]);

    // Carol added (by path id), then a message posted into the group.
    let added = post_expect(
        &mut a,
        &format!("/v1/groups/{g}/members?wait=stored"),
        &json!({"users": [3]}),
        200,
    );
    assert_eq!(added["status"], "stored");
    post_to(&mut a, &conv, "hello group");
    let got = events_until(&mut b, &mut bs, is_text("hello group"));
    assert_eq!(
        summary(&got),
        vec![
            "member:added:2".to_string(),
            "member:added:3".into(),
            format!("hello group@{conv}"),
        ]
    );
    assert_eq!(got[0]["conversation"], conv.as_str());
    let got = events_until(&mut c, &mut cs, is_text("hello group"));
    assert_eq!(
        summary(&got),
        vec!["member:added:3".to_string(), format!("hello group@{conv}")]
    );

    // Members, one per page, then all in one.
    let (members, pages) = all_members(&mut a, g, 1);
    let want = vec![
        (1, "owner".to_string()),
        (2, "member".into()),
        (3, "member".into()),
    ];
    assert_eq!(members, want);
    assert!(pages >= 3, "{pages} pages of 1");
    assert_eq!(all_members(&mut b, g, 64), (want, 1));

    // Carol removed (by the g:ID form): her last group entry is her
    // removal; what is posted after it reaches bob only. A direct message
    // sent after it shows carol's stream has moved past that point.
    let r = delete(&mut a, &format!("/v1/groups/{conv}/members/3?wait=stored"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    post_to(&mut a, &conv, "after removal");
    post_to(&mut a, "d:3", "barrier");
    let got = events_until(&mut c, &mut cs, is_text("barrier"));
    assert_eq!(
        summary(&got),
        vec!["member:removed:3".to_string(), "barrier@d:1".into()]
    );
    let got = events_until(&mut b, &mut bs, is_text("after removal"));
    assert_eq!(
        summary(&got),
        vec![
            "member:removed:3".to_string(),
            format!("after removal@{conv}")
        ]
    );

    // The group is in bob's list with two unread messages, and in the history.
    let r = b.get("/v1/conversations?since=0").unwrap();
    let list = json_body(&r);
    let item = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["conversation"] == conv.as_str())
        .unwrap_or_else(|| panic!("{conv} in bob's list: {list}"))
        .clone();
    assert_eq!(item["unread"], 2, "two messages from alice: {item}");
    let full = vec![
        "member:created:1".to_string(),
        "member:added:2".into(),
        "member:added:3".into(),
        "hello group".into(),
        "member:removed:3".into(),
        "after removal".into(),
    ];
    // Each member sees from the record that made it one: alice everything,
    // bob from his `added`, carol from hers up to her removal.
    assert_eq!(history(&mut a, &conv), full);
    assert_eq!(history(&mut b, &conv), full[1..].to_vec());
    assert_eq!(history(&mut c, &conv), full[2..5].to_vec());

    // Read by N of M: bob read everything, so alice's messages are read
    // by 1 of the 1 other member.
    let last = item["last_seq"].as_u64().unwrap();
    post_expect(
        &mut b,
        &format!("/v1/conversations/{conv}/read?wait=stored"),
        &json!({ "up_to": last }),
        200,
    );
    let r = a
        .get(&format!("/v1/groups/{g}/read-counts?low=4&count=3"))
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let counts = json_body(&r);
    assert_eq!(counts["members"], 2);
    let first = &counts["counts"][0];
    assert_eq!(
        (
            first["conv_seq"].as_u64(),
            first["read_by"].as_u64(),
            first["of"].as_u64()
        ),
        (Some(4), Some(1), Some(1))
    );
    let r = a
        .get(&format!("/v1/groups/{g}/readers?conv_seq={last}"))
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let readers = json_body(&r);
    assert_eq!(readers["members"][0]["user"], 2, "{readers}");

    // Bob leaves (no body needed): alice is the only member.
    let r = b
        .request("POST", &format!("/v1/groups/{g}/leave?wait=stored"), None)
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(all_members(&mut a, g, 64).0, vec![(1, "owner".to_string())]);
}

#[test]
fn a_create_retried_across_sigkills_makes_one_group_and_answers_its_id() {
    let mut lab = Lab::start();
    let mut alice = lab.sidecar(1, 1, "alice");
    let mut a = alice.client();
    let create = json!({"idempotency_key": "team"});

    // Accepted while ternd is down: on disk, not sent.
    lab.kill_daemon();
    let queued = post_expect(&mut a, "/v1/groups?timeout_ms=300", &create, 202);
    assert_eq!(queued["status"], "queued");
    assert!(queued.get("group").is_none(), "{queued}");

    // Both processes SIGKILLed and restarted: the retry is the same
    // operation, sent once, and answers the group.
    alice.kill().unwrap();
    lab.restart_daemon();
    alice.restart().unwrap();
    let mut a = alice.client();
    wait_status(&mut a, "alice logged in", 20, |s| s["connected"] == true);
    let made = post_expect(&mut a, "/v1/groups", &create, 201);
    assert_eq!(
        (made["id"].clone(), made["duplicate"].clone()),
        (queued["id"].clone(), json!(true))
    );
    let g = made["group"].as_u64().expect("the group's id");
    let conv = format!("g:{g}");

    // Its created event acknowledged (so never delivered again), then a
    // SIGKILL: the retry still answers the group, from the local history.
    let mut s = a.events("/v1/events", None).unwrap();
    let got = events_until(&mut a, &mut s, |v| v["member"]["event"] == "created");
    assert_eq!(got.last().unwrap()["conversation"], conv.as_str());
    drop(s);
    alice.kill().unwrap();
    alice.restart().unwrap();
    let mut a = alice.client();
    wait_status(&mut a, "alice logged in", 20, |s| s["connected"] == true);
    let r = a.get("/v1/events?idle_ms=300").unwrap();
    assert_eq!(
        r.body.len(),
        0,
        "acknowledged: {}",
        String::from_utf8_lossy(&r.body)
    );
    let again = post_expect(&mut a, "/v1/groups?timeout_ms=5000", &create, 201);
    assert_eq!(
        (again["group"].as_u64(), again["duplicate"].clone()),
        (Some(g), json!(true))
    );

    // One group, not two.
    let r = a.get("/v1/conversations?since=0").unwrap();
    let list = json_body(&r);
    let groups: Vec<&Value> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["conversation"].as_str().unwrap().starts_with("g:"))
        .collect();
    assert_eq!(groups.len(), 1, "{list}");
    assert_eq!(groups[0]["conversation"], conv.as_str());
}

#[test]
fn the_owner_makes_an_admin_who_may_then_add_members() {
    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let bob = lab.sidecar(2, 1, "bob");
    let _carol = lab.sidecar(3, 1, "carol");
    let (mut a, mut b) = (alice.client(), bob.client());
    let g = post_expect(&mut a, "/v1/groups", &json!({"members": [2]}), 201)["group"]
        .as_u64()
        .unwrap();
    let add_carol = format!("/v1/groups/{g}/members?wait=stored");

    // A plain member may not add; made an admin, it may.
    let r = post_expect(&mut b, &add_carol, &json!({"users": [3]}), 409);
    assert_eq!(r["code"], 17, "{r}");
    let r = post_expect(
        &mut a,
        &format!("/v1/groups/{g}/roles?wait=stored"),
        &json!({"users": [2], "role": "admin"}),
        200,
    );
    assert_eq!(r["kind"], "group");
    let mut bs = b.events("/v1/events", None).unwrap();
    let got = events_until(&mut b, &mut bs, |v| v["member"]["event"] == "role_changed");
    assert_eq!(
        got.last().unwrap()["member"],
        json!({"event": "role_changed", "user": 2, "role": "admin"})
    );
    post_expect(&mut b, &add_carol, &json!({"users": [3]}), 200);
    let (members, _) = all_members(&mut a, g, 64);
    assert_eq!(
        members,
        vec![
            (1, "owner".to_string()),
            (2, "admin".into()),
            (3, "member".into())
        ]
    );

    // Only the owner gives roles, and nobody takes the owner's.
    let roles = format!("/v1/groups/{g}/roles?wait=stored");
    let r = post_expect(&mut b, &roles, &json!({"users": [3], "role": "admin"}), 409);
    assert_eq!(r["code"], 17, "{r}");
    let r = post_expect(
        &mut a,
        &roles,
        &json!({"users": [1], "role": "member"}),
        409,
    );
    assert_eq!(r["code"], 17, "{r}");
    for (b, field) in [
        (json!({"users": [2], "role": "owner"}), "role"),
        (json!({"users": [2]}), "role"),
        (json!({"users": [], "role": "admin"}), "users"),
    ] {
        let r = a.post(&roles, &b).unwrap();
        assert_eq!(r.status, 400, "{b}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(json_body(&r)["field"], field, "{b}");
    }
}
