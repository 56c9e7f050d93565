//! Bad group requests through the sidecar's local API, against a real
//! `ternd` and real sidecar processes: unknown groups, a plain member
//! adding, the owner leaving, malformed bodies, paths and queries, and
//! oversized limits each get the documented status, field and protocol
//! code; a member page of a group this user is not in is refused at once.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::sidecar::{delete, json_body, post_expect, Lab};

#[test]
fn bad_group_requests_get_typed_errors() {
    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let bob = lab.sidecar(2, 1, "bob");
    let (mut a, mut b) = (alice.client(), bob.client());
    let made = post_expect(&mut a, "/v1/groups", &json!({"members": [2]}), 201);
    let g = made["group"].as_u64().unwrap();

    // Unknown group: pages and counts are 404 (the server's code 16),
    // operations are refused for good (409, status rejected, code 16).
    for path in [
        "/v1/groups/999/members".to_string(),
        "/v1/groups/999/read-counts?low=1".into(),
    ] {
        let started = Instant::now();
        let r = a.get(&path).unwrap();
        assert_eq!(
            r.status,
            404,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(json_body(&r)["code"], 16, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path}: refused at once"
        );
    }
    let r = post_expect(
        &mut a,
        "/v1/groups/999/members?wait=stored",
        &json!({"users": [3]}),
        409,
    );
    assert_eq!(
        (r["status"].as_str(), r["code"].as_u64()),
        (Some("rejected"), Some(16))
    );

    // A plain member may not add (17); the owner may not leave (17).
    let r = post_expect(
        &mut b,
        &format!("/v1/groups/{g}/members?wait=stored"),
        &json!({"users": [3]}),
        409,
    );
    assert_eq!(r["code"], 17, "{r}");
    let r = post_expect(
        &mut a,
        &format!("/v1/groups/{g}/leave?wait=stored"),
        &json!({}),
        409,
    );
    assert_eq!(r["code"], 17, "{r}");

    // Malformed bodies, paths and queries: 400 naming the field.
    let too_many: Vec<u64> = (10..43).collect();
    let members = format!("/v1/groups/{g}/members");
    for (path, b, field) in [
        ("/v1/groups", json!({"members": "x"}), "members"),
        ("/v1/groups", json!({"members": [0]}), "members[0]"),
        ("/v1/groups", json!({"members": too_many}), "members"),
        ("/v1/groups", json!({"members": [], "bogus": 1}), "bogus"),
        ("/v1/groups", json!([1]), "body"),
        (
            "/v1/groups",
            json!({"idempotency_key": ""}),
            "idempotency_key",
        ),
        (&members, json!({}), "users"),
        (&members, json!({"users": []}), "users"),
        (&members, json!({"users": [-1]}), "users[0]"),
        (
            &members,
            json!({"users": [4611686018427387904u64]}),
            "users[0]",
        ),
        (&members, json!({"users": [3], "admin": "yes"}), "admin"),
        ("/v1/groups/abc/members", json!({"users": [3]}), "group"),
        ("/v1/groups/0/members", json!({"users": [3]}), "group"),
        ("/v1/groups/d:2/members", json!({"users": [3]}), "group"),
        (
            "/v1/groups/1/members?wait=delivered",
            json!({"users": [3]}),
            "wait",
        ),
        (
            "/v1/groups/1/members?timeout_ms=120001",
            json!({"users": [3]}),
            "timeout_ms",
        ),
        ("/v1/groups?timeout_ms=999999", json!({}), "timeout_ms"),
    ] {
        let r = a.post(path, &b).unwrap();
        assert_eq!(
            r.status,
            400,
            "{path} {b}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(json_body(&r)["field"], field, "{path} {b}");
    }
    let r = a
        .request("POST", "/v1/groups", Some(b"{\"members\": ["))
        .unwrap();
    assert_eq!(
        (r.status, json_body(&r)["field"].clone()),
        (400, json!("body"))
    );
    for (path, field) in [
        (format!("/v1/groups/{g}/members?limit=0"), "limit"),
        (format!("/v1/groups/{g}/members?limit=65"), "limit"),
        (
            format!("/v1/groups/{g}/members?limit=99999999999999999999"),
            "limit",
        ),
        (format!("/v1/groups/{g}/members?after=-1"), "after"),
        (format!("/v1/groups/{g}/members?conv_seq=1"), "conv_seq"),
        (format!("/v1/groups/{g}/readers"), "conv_seq"),
        (format!("/v1/groups/{g}/read-counts"), "low"),
        (format!("/v1/groups/{g}/read-counts?low=0"), "low"),
        (
            format!("/v1/groups/{g}/read-counts?low=1&count=65"),
            "count",
        ),
        (format!("/v1/groups/{g}/read-counts?low=1&nope=1"), "nope"),
    ] {
        let r = a.get(&path).unwrap();
        assert_eq!(
            r.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(json_body(&r)["field"], field, "{path}");
    }
    for (path, field) in [
        (format!("/v1/groups/{g}/members/x"), "user"),
        (format!("/v1/groups/{g}/members/0"), "user"),
        (
            format!("/v1/groups/{g}/members/2?idempotency_key="),
            "idempotency_key",
        ),
        (format!("/v1/groups/{g}/members/2?wait=delivered"), "wait"),
    ] {
        let r = delete(&mut a, &path);
        assert_eq!(
            r.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(json_body(&r)["field"], field, "{path}");
    }

    // One key, two different requests: the second is refused.
    post_expect(
        &mut a,
        &format!("/v1/groups/{g}/members"),
        &json!({"users": [3], "idempotency_key": "k"}),
        202,
    );
    let r = a
        .post(
            &format!("/v1/groups/{g}/members"),
            &json!({"users": [4], "idempotency_key": "k"}),
        )
        .unwrap();
    assert_eq!(
        (r.status, json_body(&r)["field"].clone()),
        (409, json!("idempotency_key"))
    );
}
