//! Conversations through the sidecar's local API against a real `ternd`:
//! a post reaches the receiver's list and history and the sender's other
//! device, a read position set through one sidecar clears the badge on the
//! user's other device, the history is paged newest first, an idempotency
//! key posts once, and a malformed conversation is refused naming `conv`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::sidecar::Lab;
use tern_lab::http::HttpClient;

fn body(r: &tern_lab::http::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
    })
}

fn post(c: &mut HttpClient, conv: &str, text: &str, key: Option<&str>) -> Value {
    let mut b = json!({ "text": text });
    if let Some(k) = key {
        b["idempotency_key"] = json!(k);
    }
    let r = c
        .post(
            &format!("/v1/conversations/{conv}/messages?wait=stored"),
            &b,
        )
        .expect("the sidecar answers");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    body(&r)
}

/// The list entry of `conv` once `ok` holds for it (fetched again until then).
fn list_until(c: &mut HttpClient, conv: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.get("/v1/conversations?since=0").expect("answers");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let l = body(&r);
        let item = l["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["conversation"] == conv)
            .cloned();
        if let Some(i) = item.filter(|i| ok(i)) {
            return i;
        }
        assert!(Instant::now() < deadline, "{conv} never as wanted: {l}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn texts(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn posts_reach_the_list_and_history_and_read_positions_reach_every_device() {
    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let bob_phone = lab.sidecar(2, 1, "bob-phone");
    let bob_laptop = lab.sidecar(2, 2, "bob-laptop");
    let mut a = alice.client();
    let mut bp = bob_phone.client();
    let mut bl = bob_laptop.client();

    let first = post(&mut a, "d:2", "m0", Some("k0"));
    for i in 1..5 {
        post(&mut a, "d:2", &format!("m{i}"), None);
    }
    // The same key again: answered from the outbox, not posted twice.
    let again = post(&mut a, "d:2", "m0", Some("k0"));
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["duplicate"], true);

    // Bob's two devices list 5 unread in the direct conversation with 1.
    for c in [&mut bp, &mut bl] {
        let item = list_until(c, "d:1", |i| i["unread"] == 5);
        assert_eq!(item["last_seq"], 5);
        assert_eq!(item["first_unread"], 1);
        assert_eq!(item["last"]["text"], "m4");
    }

    // History newest first by pages: the newest 3, then the 2 below them.
    let r = bp.get("/v1/conversations/d:1/history?max=3").unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let page = body(&r);
    assert_eq!(texts(&page), vec!["m2", "m3", "m4"]);
    assert_eq!(page["low"], 3);
    let r = bp
        .get("/v1/conversations/d:1/history?max=3&before=3")
        .unwrap();
    assert_eq!(texts(&body(&r)), vec!["m0", "m1"]);

    // Read on the phone: the laptop's badge clears too.
    let r = bp
        .post(
            "/v1/conversations/d:1/read?wait=stored",
            &json!({"up_to": 5}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(body(&r)["kind"], "mark");
    let item = list_until(&mut bl, "d:1", |i| i["unread"] == 0);
    assert_eq!(item["read_seq"], 5);

    // Alice's own list has the conversation with bob, nothing unread.
    let item = list_until(&mut a, "d:2", |i| i["last_seq"] == 5);
    assert_eq!(item["unread"], 0);
}

#[test]
fn malformed_conversation_requests_are_refused_naming_the_field() {
    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let mut a = alice.client();
    for (path, field) in [
        ("/v1/conversations/x:2/history", "conv"),
        ("/v1/conversations/d:2/history?max=0", "max"),
        ("/v1/conversations/d:2/history?max=65", "max"),
        ("/v1/conversations?preview=65", "preview"),
    ] {
        let r = a.get(path).unwrap();
        assert_eq!(
            r.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(body(&r)["field"], field, "{path}");
    }
    let r = a
        .post(
            "/v1/conversations/d:2/messages",
            &json!({"text": "a", "payload_b64": "YQ=="}),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(body(&r)["field"], "text");
    let r = a
        .post("/v1/conversations/d:2/read", &json!({"up_to": 0}))
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(body(&r)["field"], "up_to");
    let r = a.get("/v1/conversations?local=true").unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}
