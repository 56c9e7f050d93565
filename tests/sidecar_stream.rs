//! The sidecar's event streams against a real `ternd` and real sidecar
//! processes: an app that crashes mid-stream gets every unacknowledged
//! event again and nothing it acknowledged; `Last-Event-ID` resumes; an
//! app that never reads holds the flow back with bounded memory and loses
//! nothing.

mod support;

use std::time::Duration;

use support::sidecar::{ack, metric, read_events, rss, send, texts, wait_status, Lab};

#[test]
fn app_crash_mid_stream_redelivers_unacknowledged_events_only() {
    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let bob = lab.sidecar(2, 1, "bob");
    let mut a = alice.client();
    let mut b = bob.client();
    for i in 0..50 {
        let r = send(&mut a, 2, &format!("m{i}"), None, "queued");
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }

    // The app reads 30 events, has processed (and acknowledged) 20, and
    // crashes: its connection drops with 10 read but not acknowledged.
    let mut processed = Vec::new();
    {
        let mut s = b.events("/v1/events", None).unwrap();
        let got = read_events(&mut s, 30, 10);
        assert_eq!(got.first().map(|g| g.id), Some(1));
        processed.extend(got[..20].to_vec());
        assert_eq!(ack(&mut b, got[19].id).status, 200);
    }
    // Restarted, it has no Last-Event-ID: everything unacknowledged comes
    // again, from the first one after the acknowledged position.
    let mut s = b.events("/v1/events", None).unwrap();
    let got = read_events(&mut s, 30, 10);
    assert_eq!(got[0].id, 21, "resumes at the first unacknowledged event");
    processed.extend(got.clone());
    assert_eq!(ack(&mut b, got[29].id).status, 200);
    let want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(
        texts(&processed),
        want,
        "nothing lost, nothing twice, in order"
    );

    // A live stream that reconnects with Last-Event-ID resumes after it.
    for i in 50..55 {
        send(&mut a, 2, &format!("m{i}"), None, "queued");
    }
    let got = read_events(&mut s, 3, 10);
    assert_eq!(got[0].id, 51);
    drop(s);
    let mut s = b.events("/v1/events", Some(got[2].id)).unwrap();
    let rest = read_events(&mut s, 2, 10);
    assert_eq!(texts(&rest), vec!["m53", "m54"]);
    // ...and ?after works the same for clients that cannot set headers.
    let mut s2 = b.events("/v1/events?after=53", None).unwrap();
    assert_eq!(read_events(&mut s2, 1, 10)[0].id, 54);

    // An acknowledgement past the last event is refused, naming the field.
    let r = ack(&mut b, 1_000);
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["field"], "up_to");
    assert_eq!(ack(&mut b, 55).status, 200);
    // Acknowledged means released: after a sidecar restart nothing comes again.
    let mut bob = bob;
    bob.restart().unwrap();
    let mut b = bob.client();
    wait_status(&mut b, "bob logged in", 10, |s| s["connected"] == true);
    assert_eq!(
        b.get("/v1/events?idle_ms=500").unwrap().body.len(),
        0,
        "acknowledged events never come again"
    );
}

#[test]
fn an_app_that_never_reads_holds_the_flow_back_with_bounded_memory() {
    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let bob = lab.sidecar(2, 1, "bob");
    let mut a = alice.client();
    let mut b = bob.client();
    let bob_pid = bob.pid().unwrap();
    let rss_before = rss(bob_pid);

    // The app opens a stream and never reads from it.
    let stalled = b.events("/v1/events", None).unwrap();
    let filler = "x".repeat(1000);
    const N: usize = 2000;
    for i in 0..N {
        let r = send(&mut a, 2, &format!("{i:05}{filler}"), None, "queued");
        assert_eq!(r.status, 202);
    }
    wait_status(&mut a, "alice's outbox drains", 60, |s| {
        s["outbox_depth"] == 0
    });
    // The server holds back what passes its window; the sidecar keeps at
    // most about a window of entries.
    std::thread::sleep(Duration::from_millis(500));
    let buffered = metric(&mut b, "tern_sidecar_events_buffered");
    let received = metric(&mut b, "tern_sidecar_events_received_total");
    assert!(buffered <= 300.0, "{buffered} entries held by the sidecar");
    assert!(
        received < N as f64,
        "the server held the rest back ({received} received)"
    );
    let grew = rss(bob_pid).saturating_sub(rss_before);
    assert!(grew < 32 << 20, "RSS grew by {} MiB", grew >> 20);

    // The app comes back, reads and acknowledges in batches: all of it,
    // in order, once.
    drop(stalled);
    let mut s = b.events("/v1/events", None).unwrap();
    let mut all = Vec::new();
    while all.len() < N {
        let got = read_events(&mut s, 100.min(N - all.len()), 20);
        assert_eq!(ack(&mut b, got.last().unwrap().id).status, 200);
        all.extend(got);
    }
    let seen: Vec<usize> = texts(&all)
        .iter()
        .map(|t| t[..5].parse().unwrap())
        .collect();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
}

/// The next text message of a WebSocket, as JSON.
async fn next<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).unwrap(),
        other => panic!("no message: {other:?}"),
    }
}

#[test]
fn websocket_streams_and_takes_acknowledgements() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let bob = lab
        .config(2, 1, "bob")
        .tcp("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    let mut a = alice.client();
    for i in 0..5 {
        assert_eq!(
            send(&mut a, 2, &format!("w{i}"), None, "queued").status,
            202
        );
    }
    let tern_lab::http::Endpoint::Tcp(addr) = bob.endpoint().clone() else {
        panic!("bob listens on TCP");
    };
    let bearer = bob.bearer().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connect = |after: Option<u64>| {
        let mut req = format!(
            "ws://{addr}/v1/events/ws{}",
            after.map_or(String::new(), |a| format!("?after={a}"))
        )
        .into_client_request()
        .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    rt.block_on(async {
        let (mut ws, _) = connect(None).await.expect("upgrade");
        let mut texts = Vec::new();
        for _ in 0..3 {
            let v = next(&mut ws).await;
            texts.push(v["text"].as_str().unwrap().to_string());
        }
        assert_eq!(texts, vec!["w0", "w1", "w2"]);
        ws.send(Message::Text(r#"{"ack": 2}"#.into()))
            .await
            .unwrap();
        // Events already in flight may come before the answer.
        loop {
            let v = next(&mut ws).await;
            if v.get("acked").is_some() {
                assert_eq!(v["acked"], 2);
                break;
            }
        }
        drop(ws);
        // A new socket starts after what was acknowledged.
        let (mut ws, _) = connect(None).await.expect("upgrade");
        assert_eq!(next(&mut ws).await["text"], "w2");
        ws.send(Message::Text(r#"{"ack": 99}"#.into()))
            .await
            .unwrap();
        loop {
            let v = next(&mut ws).await;
            if v.get("error").is_some() {
                assert_eq!(v["field"], "ack");
                break;
            }
        }
    });
    // Without an upgrade the endpoint answers a JSON error.
    let mut b = bob.client();
    let r = b.get("/v1/events/ws").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
}
