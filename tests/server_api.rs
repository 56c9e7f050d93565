//! The server API of a real `ternd` process: service messages stored
//! exactly once across a SIGKILL (log replay and idempotency keys), tokens
//! that log in, presence, kick, inbox inspection, and refusals that are
//! JSON naming the field.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::sidecar::{ack, read_events, wait_status};
use tern_lab::http::{Endpoint, HttpClient};
use tern_lab::sidecar::SidecarConfig;
use tern_lab::ternd::{Ternd, TerndConfig};

const KEY: &str = "test-key-0123456789";

fn start(dir: &std::path::Path) -> Ternd {
    TerndConfig::new(env!("CARGO_BIN_EXE_ternd"), dir.join("ternd"))
        .env("TERN_API_LISTEN", "127.0.0.1:0")
        .env("TERN_API_KEYS", KEY)
        .env("RUST_LOG", "info")
        .log_file(dir.join("ternd.log"))
        .start()
        .expect("ternd starts")
}

fn api(d: &Ternd) -> HttpClient {
    let addr: SocketAddr = d.api_addr().expect("the API listens");
    HttpClient::new(Endpoint::Tcp(addr), Some(KEY.into())).timeout(Duration::from_secs(15))
}

/// A sidecar for `user`, logged in with a token from `POST /v1/tokens`.
fn receiver(
    d: &Ternd,
    api: &mut HttpClient,
    dir: &std::path::Path,
    user: u64,
) -> tern_lab::sidecar::Sidecar {
    let t = api
        .post(
            "/v1/tokens",
            &json!({"user": user, "device": 1, "ttl_s": 3600}),
        )
        .unwrap();
    assert_eq!(t.status, 200, "{}", String::from_utf8_lossy(&t.body));
    SidecarConfig::new(
        env!("CARGO_BIN_EXE_tern"),
        d.addr(),
        t.json()["token"].as_str().unwrap(),
        dir.join(format!("sidecar-{user}")),
    )
    .seal_key(d.seal_key())
    .log_file(dir.join(format!("sidecar-{user}.log")))
    .start()
    .expect("the sidecar logs in with the issued token")
}

/// Every message text the receiver's sidecar streams within `quiet`.
fn drain_texts(c: &mut HttpClient, quiet: Duration) -> Vec<String> {
    let mut s = c.events("/v1/events", None).unwrap();
    let mut out = Vec::new();
    while let Ok(e) = s.next(quiet) {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        let id = v["id"].as_u64().unwrap();
        if let Some(t) = v["text"].as_str() {
            out.push(t.to_string());
        }
        assert_eq!(ack(c, id).status, 200);
    }
    out
}

#[test]
fn service_messages_are_stored_exactly_once_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());

    // A backend posts a stream of messages, each with its key; the daemon
    // is SIGKILLed in the middle.
    // The kill lands once 50 were answered, whatever the machine's speed:
    // the backend would go on to 5,000, so it is always mid-stream.
    const MAX: usize = 5000;
    let addr = d.api_addr().unwrap();
    let progress = Arc::new(AtomicUsize::new(0));
    let seen = progress.clone();
    let poster = std::thread::spawn(move || {
        let mut c =
            HttpClient::new(Endpoint::Tcp(addr), Some(KEY.into())).timeout(Duration::from_secs(5));
        let mut answered = BTreeMap::new();
        for i in 0..MAX {
            let body = json!({"to": 7, "conv": 1, "text": format!("n{i:04}"), "idempotency_key": format!("k{i}")});
            match c.post("/v1/messages", &body) {
                Ok(r) => {
                    answered.insert(i, r.status);
                    seen.store(answered.len(), Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        answered
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backend's first 50 posts were not answered within 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill().unwrap();
    let answered = poster.join().unwrap();
    assert!(
        answered.values().all(|s| *s == 200 || *s == 202),
        "{answered:?}"
    );
    let n = answered.len();
    assert!(
        (50..MAX).contains(&n),
        "the kill came mid-stream ({n} answered)"
    );
    d.restart(Duration::from_secs(10)).unwrap();
    let mut a2 = api(&d);
    wait_ready(&mut a2);

    // The backend retries everything it is not sure of, and more: keys it
    // had an answer for send nothing again.
    let mut dups = 0;
    for i in 0..n + 20 {
        let body = json!({"to": 7, "conv": 1, "text": format!("n{i:04}"), "idempotency_key": format!("k{i}")});
        let r = a2.post("/v1/messages", &body).unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        if r.json()["duplicate"] == true {
            dups += 1;
        }
    }
    assert!(
        dups >= n,
        "every key answered before the kill is a duplicate ({dups} < {n})"
    );

    let bob = receiver(&d, &mut a2, dir.path(), 7);
    let mut b = bob.client();
    let got = drain_texts(&mut b, Duration::from_secs(3));
    let want: Vec<String> = (0..n + 20).map(|i| format!("n{i:04}")).collect();
    assert_eq!(got, want, "each message once, in order");
    let inbox = a2.get("/v1/users/7/inbox").unwrap().json();
    assert_eq!(inbox["head"].as_u64(), Some((n + 20) as u64));
}

fn wait_ready(c: &mut HttpClient) {
    for _ in 0..100 {
        if c.get("/ready").map(|r| r.status == 200).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the API never became ready");
}

#[test]
fn tokens_presence_kick_inbox_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let mut a = api(&d);
    wait_ready(&mut a);
    assert_eq!(a.get("/health").unwrap().json()["status"], "ok");

    // Refusals are JSON and name what is wrong.
    let mut anon = HttpClient::new(Endpoint::Tcp(d.api_addr().unwrap()), None);
    let r = anon.post("/v1/tokens", &json!({"user": 1})).unwrap();
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (401, Some("authorization"))
    );
    let mut wrong = HttpClient::new(
        Endpoint::Tcp(d.api_addr().unwrap()),
        Some("not-the-key-000000".into()),
    );
    assert_eq!(wrong.get("/v1/users/1/inbox").unwrap().status, 401);
    let r = a
        .post("/v1/messages", &json!({"to": 1, "conv": 1}))
        .unwrap();
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("text")));
    let r = a
        .post("/v1/messages", &json!({"to": -1, "conv": 1, "text": "x"}))
        .unwrap();
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("to")));
    let r = a
        .post("/v1/tokens", &json!({"user": 1, "ttl_s": 0}))
        .unwrap();
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("ttl_s")));
    let r = a
        .post("/v1/tokens", &json!({"user": 1_000_000, "device": 1}))
        .unwrap();
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (400, Some("device")),
        "the service device is reserved"
    );
    let big = "x".repeat(200_000);
    let r = a
        .request("POST", "/v1/messages", Some(big.as_bytes()))
        .unwrap();
    assert_eq!((r.status, r.json()["field"].as_str()), (413, Some("body")));
    let r = a.get("/v1/users/abc/presence").unwrap();
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("id")));
    assert_eq!(a.get("/nowhere").unwrap().status, 404);
    assert!(a.get("/nowhere").unwrap().json()["error"].is_string());

    // A device logs in with an issued token: online, with its checkpoint.
    let bob = receiver(&d, &mut a, dir.path(), 9);
    let mut b = bob.client();
    wait_status(&mut b, "bob logged in", 10, |s| s["connected"] == true);
    let p = a.get("/v1/users/9/presence").unwrap().json();
    assert_eq!(p["online"], true, "{p}");
    assert_eq!(p["devices"][0]["online"], true);
    assert!(p["devices"][0]["last_seen_ms"].as_u64().unwrap() > 0);
    for i in 0..3 {
        let r = a
            .post(
                "/v1/messages",
                &json!({"to": 9, "conv": 2, "text": format!("s{i}")}),
            )
            .unwrap();
        assert_eq!(r.json()["status"], "stored");
        assert_eq!(r.json()["receiver_online"], true);
    }
    let mut s = b.events("/v1/events", None).unwrap();
    let got = read_events(&mut s, 3, 10);
    assert_eq!(ack(&mut b, got[2].id).status, 200);
    let mut checkpoint = 0;
    for _ in 0..100 {
        let inbox = a.get("/v1/users/9/inbox").unwrap().json();
        checkpoint = inbox["devices"][0]["checkpoint"].as_u64().unwrap_or(0);
        if checkpoint == 3 {
            assert_eq!(inbox["head"], 3);
            assert_eq!(inbox["devices"][0]["backlog"], 0);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        checkpoint, 3,
        "the device's checkpoint follows its acknowledgements"
    );

    // Kicked: logged out; the sidecar's session ends.
    let k = a.request("POST", "/v1/users/9/kick", None).unwrap().json();
    assert_eq!(k["kicked"], 1);
    wait_status(&mut b, "bob's session ended", 10, |s| {
        s["connected"] == false
    });
    let p = a.get("/v1/users/9/presence").unwrap().json();
    assert_eq!(p["online"], false);

    // Metrics and the status page's figures are served without a key.
    let m = String::from_utf8(anon.get("/metrics").unwrap().body).unwrap();
    assert!(m.contains("tern_commit_seconds_count"), "{m}");
    let st = anon.get("/v1/stats").unwrap().json();
    assert!(st["store_bytes"].as_u64().unwrap() > 0);
    let page = anon.get("/").unwrap();
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("/v1/stats"));
}
