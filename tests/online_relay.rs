//! A message to an online receiver is stored, pushed at once, and the
//! sender learns SENT (stored, receiver online) and then DELIVERED.

mod support;

use std::time::Duration;

use support::{next_message, payload_of, Daemon};
use tern::client::{EntryBody, ReceiptStatus};

#[tokio::test]
async fn online_message_is_pushed_and_receipted() {
    let d = Daemon::start().await;
    let alice = d.client(1, 1).await;
    let mut bob = d.client(2, 1).await;

    let sent = alice.send(2, 12, 0, "hi bob".into()).await.unwrap();
    assert!(
        sent.receiver_online,
        "bob is online, so the ACK is not a pseudo-ACK"
    );

    let m = next_message(&mut bob, 5).await;
    assert_eq!(payload_of(&m), b"hi bob");
    assert_eq!(
        (m.from_user, m.from_device, m.from_seq, m.conv),
        (1, 1, sent.seq, 12)
    );

    tokio::time::timeout(Duration::from_secs(5), alice.wait_delivered(sent.seq))
        .await
        .expect("DELIVERED receipt arrives")
        .unwrap();

    // READ travels back as a receipt entry in alice's inbox.
    bob.read_up_to(12, 1, 1, sent.seq).await.unwrap();
    let mut alice = alice;
    let read = loop {
        let e = support::next_entry(&mut alice, 5).await;
        if let EntryBody::Receipt {
            status: ReceiptStatus::Read,
            target_seq,
            ..
        } = e.body
        {
            break target_seq;
        }
    };
    assert_eq!(read, sent.seq);
    d.stop().await;
}

#[tokio::test]
async fn many_messages_arrive_once_and_in_order() {
    let d = Daemon::start().await;
    let alice = d.client(1, 1).await;
    let mut bob = d.client(2, 1).await;
    let n = 500u32;
    let sender = tokio::spawn(async move {
        let mut handles = Vec::new();
        for i in 0..n {
            handles.push(alice.send(2, 1, 0, i.to_be_bytes().to_vec().into()));
        }
        for h in handles {
            h.await.unwrap();
        }
        alice
    });
    for i in 0..n {
        let m = next_message(&mut bob, 10).await;
        assert_eq!(payload_of(&m), i.to_be_bytes(), "message {i} in order");
    }
    sender.await.unwrap();
    d.stop().await;
}
