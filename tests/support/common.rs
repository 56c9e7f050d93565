//! What `support/mod.rs` and `support/transport.rs` (included on its own
//! with `#[path]`) both use: a daemon running as a task of the test, and
//! waiting for what a client is handed.
#![allow(dead_code)]

use std::time::Duration;

use tern::client::{Client, Entry, Event, SyncBody};
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};

/// A bound daemon serving as a task of the test's runtime.
pub struct ServerTask {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerTask {
    /// Runs `server` until [`ServerTask::stop`].
    pub fn spawn(server: tern::server::Server) -> ServerTask {
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("daemon runs");
        });
        ServerTask {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops it gracefully (drained) and waits for the task; an error if
    /// the task failed.
    pub async fn stop(&mut self) -> Result<(), JoinError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => t.await,
            None => Ok(()),
        }
    }
}

/// Next inbox entry within `secs`, skipping other events.
pub async fn next_entry(c: &mut Client, secs: u64) -> Entry {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(Some(Event::Entry(d))) => return d,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("client stopped"),
            Err(_) => panic!("no entry within {secs}s"),
        }
    }
}

/// Next message received from another user (skipping receipts, other
/// events, and this user's own copies, which its devices sync).
pub async fn next_message(c: &mut Client, secs: u64) -> Entry {
    let me = c.identity().0;
    loop {
        let d = next_entry(c, secs).await;
        if matches!(d.body, SyncBody::Message { .. }) && d.from_user != me {
            return d;
        }
    }
}

pub fn payload_of(d: &Entry) -> Vec<u8> {
    match &d.body {
        SyncBody::Message { payload, .. } => payload.to_vec(),
        other => panic!("not a message: {other:?}"),
    }
}

/// Polls every future concurrently (in order of first poll, so operations
/// are submitted in vector order) and returns their outputs in order.
pub async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Waits for an event matching `pred` within `secs`; other events go to `skipped`.
pub async fn wait_for(
    c: &mut Client,
    secs: u64,
    skipped: &mut Vec<Event>,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(e)) => skipped.push(e),
            Ok(None) => panic!("client stopped while waiting; saw {skipped:?}"),
            Err(_) => panic!("no matching event within {secs}s; saw {skipped:?}"),
        }
    }
}

/// Alice (user 1, device 1) sends online Bob (user 2, device 1) one
/// message in conversation 12: SENT says "receiver online", the message is
/// pushed at once, then DELIVERED and READ come back to Alice. Returns the
/// message's uplink sequence.
pub async fn pushed_and_receipted(alice: &mut Client, bob: &mut Client) -> u64 {
    let sent = alice.send(2, 12, 0, "hi bob".into()).await.unwrap();
    assert!(sent.receiver_online, "bob is online: not a pseudo-ACK");
    let m = next_message(bob, 5).await;
    assert_eq!(payload_of(&m), b"hi bob");
    assert_eq!(
        (m.from_user, m.from_device, m.from_seq, m.topic),
        (1, 1, sent.seq, 12)
    );
    tokio::time::timeout(Duration::from_secs(5), alice.wait_delivered(sent.seq))
        .await
        .expect("DELIVERED receipt arrives")
        .unwrap();

    // READ travels back as a receipt entry in alice's inbox.
    bob.read_up_to(12, 1, 1, sent.seq).await.unwrap();
    let read = loop {
        let e = next_entry(alice, 5).await;
        if let SyncBody::Receipt {
            status: tern::client::ReceiptStatus::Read,
            target_seq,
            ..
        } = e.body
        {
            break target_seq;
        }
    };
    assert_eq!(read, sent.seq);
    sent.seq
}
