//! The driver against a real daemon: the durable outbox ordering rule.

use std::time::Duration;

use bytes::Bytes;
use tern_core::client::Outgoing;

use crate::client::outbox::Outbox;
use crate::client::{Client, ClientOptions, Event, SyncBody};

/// An operation stored before any login (no sequence yet, e.g. by a
/// client that crashed before its first login) gets its sequence at the
/// login and is stored with it before it is sent; in debug builds
/// `flush` checks that (a send first would leave a window in which a
/// crash makes the next start send it again as a new operation).
#[tokio::test]
async fn operation_without_a_sequence_is_stored_with_it_before_it_is_sent() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = crate::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.server.data_dir = data.path().to_path_buf();
    let server = crate::server::Server::bind(cfg.clone()).await.unwrap();
    let addr = server.local_addr();
    let seal_key = server.seal_key();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let token = |user, device| {
        hex::decode(crate::server::issue_token(&cfg, user, device, 3600).unwrap()).unwrap()
    };

    let state = tempfile::tempdir().unwrap();
    let early = Outgoing::Send {
        to: 2,
        conv: 1,
        msg_type: 0,
        payload: Bytes::from_static(b"early"),
    };
    Outbox::open(state.path())
        .unwrap()
        .put(1, 0, &early)
        .unwrap();

    let mut bob_opts = ClientOptions::new(addr, token(2, 1));
    bob_opts.seal_key = seal_key;
    let mut bob = Client::connect(bob_opts).await.unwrap();
    let mut opts = ClientOptions::new(addr, token(1, 1));
    opts.seal_key = seal_key;
    opts.state_dir = Some(state.path().to_path_buf());
    let alice = Client::connect(opts).await.unwrap();
    let m = loop {
        match tokio::time::timeout(Duration::from_secs(5), bob.recv()).await {
            Ok(Some(Event::Entry(m))) => break m,
            Ok(Some(_)) => {}
            other => panic!("the early message never came: {other:?}"),
        }
    };
    assert_eq!((m.from_user, m.from_seq), (1, 1));
    assert!(matches!(m.body, SyncBody::Message { ref payload, .. } if payload == "early"));
    // Whether or not its ACK came back before closing, the outbox has
    // it under the sequence the server stored it with...
    alice.close().await;
    let rows = loop {
        match Outbox::open(state.path()) {
            Ok(o) => break o.rows().unwrap(),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert!(
        rows.iter().all(|r| r.seq == 1),
        "stored under sequence {:?}",
        rows.iter().map(|r| r.seq).collect::<Vec<_>>()
    );
    // ...so a restart does not send it a second time.
    let mut opts = ClientOptions::new(addr, token(1, 1));
    opts.seal_key = seal_key;
    opts.state_dir = Some(state.path().to_path_buf());
    let alice = Client::connect(opts).await.unwrap();
    while let Ok(e) = tokio::time::timeout(Duration::from_millis(300), bob.recv()).await {
        assert!(
            !matches!(e, Some(Event::Entry(_))),
            "delivered again: {e:?}"
        );
    }
    alice.close().await;
    bob.close().await;
    let _ = stop.send(());
    let _ = daemon.await;
}
