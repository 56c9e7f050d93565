//! A message to an online receiver is stored, pushed at once, and the
//! sender learns SENT (stored, receiver online) and then DELIVERED.

mod support;

use support::{next_message, payload_of, pushed_and_receipted, Daemon};

#[tokio::test]
async fn online_message_is_pushed_and_receipted() {
    let d = Daemon::start().await;
    let mut alice = d.client(1, 1).await;
    let mut bob = d.client(2, 1).await;
    pushed_and_receipted(&mut alice, &mut bob).await;
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
