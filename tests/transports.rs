//! The same behaviour over both transports: every scenario below is one
//! body, `async fn scenario(t: Transport)`, run as `scenario::udp` and
//! `scenario::quic` against a daemon that serves raw UDP and QUIC at once.
//! Then what only QUIC has: certificate checks, UDP and QUIC peers in one
//! broker, and reconnection after a daemon restart.

#[macro_use]
#[path = "support/transport.rs"]
mod transport;

use std::time::Duration;

use tern::client::{Client, ClientError, ClientOptions, Event, ServerTrust};
use transport::*;

over_both_transports!(
    online_relay_with_receipts,
    offline_pseudo_ack_then_pull,
    address_change_keeps_the_session,
);

/// Online receiver: SENT says "receiver online", the message is pushed at
/// once, DELIVERED and READ come back; then a burst with full-size
/// payloads (the largest packets Tern sends) arrives once, in order.
async fn online_relay_with_receipts(t: Transport) {
    let net = Net::start().await;
    let mut alice = net.client(t, 1, 1).await;
    let mut bob = net.client(t, 2, 1).await;
    pushed_and_receipted(&mut alice, &mut bob).await;

    let max = net.cfg.limits.max_payload;
    let n = 120u64;
    let len = |i: u64| {
        if i.is_multiple_of(3) {
            max
        } else {
            10 + i as usize
        }
    };
    let sent = send_all(&alice, 2, 12, (0..n).map(|i| payload(i, len(i))).collect()).await;
    for i in 0..n {
        let m = next_message(&mut bob, 10).await;
        let p = payload_of(&m);
        assert_eq!(index_of(&p), i, "message {i} in order, exactly once");
        assert_eq!(p.len(), len(i));
        assert_eq!(m.from_seq, sent[i as usize].seq);
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        alice.wait_delivered(sent.last().unwrap().seq),
    )
    .await
    .expect("DELIVERED for the whole burst")
    .unwrap();
    alice.close().await;
    bob.close().await;
    net.stop().await;
}

/// Offline receiver: every SEND gets the pseudo-ACK (stored, receiver not
/// online); at its next login the receiver has more than the push limit
/// waiting, pulls it page by page, and gets each message once, in order;
/// a live message follows, and the sender learns DELIVERED for all.
async fn offline_pseudo_ack_then_pull(t: Transport) {
    let net = Net::start_with(|c| c.limits.page_entries = 25).await;
    // Bob registers his device, then goes away.
    net.client(t, 2, 1).await.close().await;

    let alice = net.client(t, 1, 1).await;
    let n = 90u64;
    let sent = send_all(&alice, 2, 5, (0..n).map(|i| payload(i, 40)).collect()).await;
    assert!(
        sent.iter().all(|s| !s.receiver_online),
        "every ACK is a pseudo-ACK"
    );

    let mut bob = net.client(t, 2, 1).await;
    match wait_for(&mut bob, 5, |e| matches!(e, Event::Connected { .. })).await {
        Event::Connected {
            head, pull_mode, ..
        } => {
            assert!(head >= n, "the backlog is in bob's inbox");
            assert!(pull_mode, "{n} entries exceed the push limit: pull mode");
        }
        _ => unreachable!(),
    }
    for i in 0..n {
        let m = next_message(&mut bob, 10).await;
        assert_eq!(index_of(&payload_of(&m)), i, "message {i} in order, once");
        assert_eq!(m.from_seq, sent[i as usize].seq);
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), next_message(&mut bob, 1)).await;
    assert!(extra.is_err(), "no duplicate after the backlog");
    // Bob is online now: the next message is pushed, and its DELIVERED
    // covers the whole backlog ("every message up to target_seq").
    let live = alice.send(2, 5, 0, payload(n, 40)).await.unwrap();
    assert!(live.receiver_online);
    assert_eq!(index_of(&payload_of(&next_message(&mut bob, 5).await)), n);
    tokio::time::timeout(Duration::from_secs(10), alice.wait_delivered(live.seq))
        .await
        .expect("DELIVERED for the backlog and the live message")
        .unwrap();
    alice.close().await;
    bob.close().await;
    net.stop().await;
}

/// Both devices move to new local ports, several times, with messages
/// before, between and after; the sessions continue, nothing is lost or
/// duplicated, and receipts still arrive. (Over UDP the server follows the
/// new address by the packet-number rule; over QUIC the connection migrates
/// and the broker never sees a change.)
async fn address_change_keeps_the_session(t: Transport) {
    let net = Net::start().await;
    let alice = net.client(t, 1, 1).await;
    let mut bob = net.client(t, 2, 1).await;

    let mut ports = Vec::new();
    let n = 30u64;
    let mut last = 0;
    for i in 0..n {
        if i % 10 == 5 {
            let addr = alice.rebind().await.expect("alice rebinds");
            ports.push(addr.port());
        }
        let s = alice.send(2, 7, 0, payload(i, 30)).await.unwrap();
        assert!(s.receiver_online);
        last = s.seq;
    }
    for i in 0..n {
        let m = next_message(&mut bob, 10).await;
        assert_eq!(index_of(&payload_of(&m)), i, "message {i} in order, once");
    }

    // Bob moves, then answers: his next packet tells the server where he is.
    let addr = bob.rebind().await.expect("bob rebinds");
    ports.push(addr.port());
    bob.send(1, 7, 0, payload(1000, 30)).await.unwrap();
    let mut alice = alice;
    let m = next_message(&mut alice, 10).await;
    assert_eq!(index_of(&payload_of(&m)), 1000);

    // Downlink to both new addresses.
    let s = alice.send(2, 7, 0, payload(n, 30)).await.unwrap();
    let m = next_message(&mut bob, 10).await;
    assert_eq!(index_of(&payload_of(&m)), n);
    tokio::time::timeout(Duration::from_secs(10), alice.wait_delivered(s.seq))
        .await
        .expect("DELIVERED after the moves")
        .unwrap();
    assert!(last < s.seq);
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "every rebind got a new port");
    alice.close().await;
    bob.close().await;
    net.stop().await;
}

/// One broker serves UDP and QUIC peers together: a UDP sender, a QUIC
/// receiver with two devices (one on each transport), and receipts across.
#[tokio::test]
async fn udp_and_quic_peers_share_one_broker() {
    let net = Net::start().await;
    let mut alice = net.client(Transport::Udp, 1, 1).await;
    let mut bob_quic = net.client(Transport::Quic, 2, 1).await;
    let mut bob_udp = net.client(Transport::Udp, 2, 2).await;

    let s = alice.send(2, 3, 0, payload(0, 1000)).await.unwrap();
    assert!(s.receiver_online);
    for bob in [&mut bob_quic, &mut bob_udp] {
        let m = next_message(bob, 5).await;
        assert_eq!(index_of(&payload_of(&m)), 0);
    }
    tokio::time::timeout(Duration::from_secs(5), alice.wait_delivered(s.seq))
        .await
        .expect("DELIVERED from the QUIC side")
        .unwrap();

    let r = bob_quic.send(1, 3, 0, payload(1, 20)).await.unwrap();
    let m = next_message(&mut alice, 5).await;
    assert_eq!((index_of(&payload_of(&m)), m.from_seq), (1, r.seq));
    tokio::time::timeout(Duration::from_secs(5), bob_quic.wait_delivered(r.seq))
        .await
        .expect("DELIVERED from the UDP side")
        .unwrap();
    net.stop().await;
}

/// A pin that does not match the server certificate fails `connect` at
/// once with a QUIC error, rather than timing out.
#[tokio::test]
async fn quic_refuses_a_certificate_that_does_not_match_the_pin() {
    let net = Net::start().await;
    let mut o = net.options(Transport::Quic, 1, 1);
    let mut wrong = tern::transport::quic::parse_fingerprint(&net.fingerprint).unwrap();
    wrong[0] ^= 1;
    o.quic.trust = Some(ServerTrust::Fingerprint(wrong));
    let started = std::time::Instant::now();
    match Client::connect(o).await {
        Err(ClientError::Quic(reason)) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}")
        }
        Ok(_) => panic!("connected to a server whose certificate is not pinned"),
        Err(e) => panic!("unexpected error {e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    // No trust at all is refused before any packet is sent.
    let mut o = net.options(Transport::Quic, 1, 1);
    o.quic.trust = None;
    assert!(matches!(
        Client::connect(o).await,
        Err(ClientError::Quic(_))
    ));
    net.stop().await;
}

/// The generated certificate also works as a CA file: the server name is
/// then checked (it is issued for localhost, 127.0.0.1 and ::1).
#[tokio::test]
async fn quic_trusts_a_certificate_file_and_checks_the_name() {
    let net = Net::start().await;
    let (cert, _) = net.cfg.quic_cert_paths();
    let url = format!("quic://localhost:{}", net.quic.port());
    let mut o = ClientOptions::with_server(url.parse().unwrap(), net.token(1, 1));
    o.quic.trust = Some(ServerTrust::CaFile(cert.clone()));
    let alice = Client::connect(o).await.expect("name and chain verify");
    let mut bob = net.client(Transport::Quic, 2, 1).await;
    alice.send(2, 1, 0, payload(7, 10)).await.unwrap();
    assert_eq!(index_of(&payload_of(&next_message(&mut bob, 5).await)), 7);

    let mut o = net.options(Transport::Quic, 3, 1);
    o.quic.trust = Some(ServerTrust::CaFile(cert));
    o.quic.server_name = Some("tern.example".into());
    assert!(matches!(
        Client::connect(o).await,
        Err(ClientError::Quic(_))
    ));
    net.stop().await;
}

/// After a restart the daemon keeps its generated certificate (so pins stay
/// valid), and a QUIC client whose connection died with the old process
/// reconnects by itself, logs in again and goes on sending.
#[tokio::test]
async fn quic_client_reconnects_after_a_daemon_restart() {
    let net = Net::start().await;
    let (udp, quic, fingerprint) = (net.udp, net.quic, net.fingerprint.clone());
    let mut alice = net.client(Transport::Quic, 1, 1).await;
    let mut bob = net.client(Transport::Udp, 2, 1).await;
    alice.send(2, 1, 0, payload(0, 10)).await.unwrap();
    assert_eq!(index_of(&payload_of(&next_message(&mut bob, 5).await)), 0);

    let (dir, cfg) = net.stop().await;
    let net = Net::restart(dir, cfg, udp, quic).await;
    assert_eq!(net.fingerprint, fingerprint, "the certificate is kept");

    wait_for(&mut alice, 20, |e| matches!(e, Event::Connected { .. })).await;
    let s = tokio::time::timeout(Duration::from_secs(20), alice.send(2, 1, 0, payload(1, 10)))
        .await
        .expect("sent after the restart")
        .unwrap();
    assert!(s.seq > 1);
    assert_eq!(index_of(&payload_of(&next_message(&mut bob, 20).await)), 1);
    net.stop().await;
}

/// `ternd serve --quic` is SIGKILLed and started again on the same ports.
/// The QUIC client's connection died with the process without a word; the
/// new process answers its packets with a stateless reset it recognises
/// (the reset key derives from the certificate key, which persists), so it
/// reconnects at once, logs in again and its pending message is stored
/// exactly once.
#[tokio::test]
async fn quic_client_survives_a_sigkilled_ternd() {
    let dir = tempfile::tempdir().unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let first = Ternd::spawn(dir.path(), any, any);
    let (udp, quic, fingerprint) = (first.udp, first.quic, first.fingerprint.clone());
    let mut cfg = tern::config::Config::default();
    cfg.server.data_dir = dir.path().to_path_buf();
    let token =
        |user| hex::decode(tern::server::issue_token(&cfg, user, 1, 3600).unwrap()).unwrap();
    let mut o = ClientOptions::with_server(format!("quic://{quic}").parse().unwrap(), token(1));
    o.quic.trust = Some(ServerTrust::fingerprint(&fingerprint).unwrap());
    let alice = Client::connect(o).await.expect("alice connects over QUIC");
    let mut bob_opts = ClientOptions::new(udp, token(2));
    bob_opts.seal_key = first.seal_key;
    let mut bob = Client::connect(bob_opts)
        .await
        .expect("bob connects over sealed UDP");
    alice.send(2, 1, 0, payload(0, 10)).await.unwrap();
    assert_eq!(index_of(&payload_of(&next_message(&mut bob, 5).await)), 0);

    first.kill();
    let started = std::time::Instant::now();
    let pending = alice.send(2, 1, 0, payload(1, 10));
    tokio::pin!(pending);
    // The message cannot be stored while no daemon runs.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut pending)
            .await
            .is_err()
    );
    let second = Ternd::spawn(dir.path(), udp, quic);
    assert_eq!(
        second.fingerprint, fingerprint,
        "same certificate after a crash"
    );
    tokio::time::timeout(Duration::from_secs(15), &mut pending)
        .await
        .expect("stored after the restart, well before QUIC's idle timeout")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    // Bob (idle, UDP) learns that his session is gone from his next packet.
    bob.send(1, 1, 0, payload(2, 30)).await.unwrap();
    assert_eq!(index_of(&payload_of(&next_message(&mut bob, 15).await)), 1);
    let dup = tokio::time::timeout(Duration::from_millis(500), next_message(&mut bob, 1)).await;
    assert!(dup.is_err(), "no duplicate");
    second.kill();
}
