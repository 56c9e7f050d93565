//! Attacks on the raw-UDP transport of a daemon with the default policy
//! (sealed sessions required): replayed, bit-flipped, truncated and forged
//! sealed packets; replayed handshakes; handshakes under a wrong key or a
//! stolen cookie; clear logins; forged, expired and re-targeted tokens; a
//! flood. Each ends in a typed rejection or a silent drop, and a counter
//! moves; nothing is acted on, and legitimate clients keep working.
//!
//! The attacker's own client is the sans-IO `ClientConn` over a plain UDP
//! socket (`support/raw_client.rs`), so the test can keep, replay and alter
//! the exact datagrams a real client sends.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::raw_client::{unix_ms, RawClient};
use support::*;
use tern::server::Snapshot;
use tern_core::auth::{Claims, TokenKeys};
use tern_core::client::{ClientEvent, Outgoing};
use tern_core::seal::StaticKey;
use tern_core::wire::{ErrorCode, Frame, Header, Login, Packet};

const ALICE: u64 = 1;
const BOB: u64 = 2;
const MALLORY: u64 = 66;

fn secret_keys(d: &Daemon) -> TokenKeys {
    let hex_secret = std::fs::read_to_string(d.cfg.secret_path()).unwrap();
    TokenKeys::new(hex::decode(hex_secret.trim()).unwrap(), vec![])
}

/// Waits (bounded) until the published counters satisfy `pred`; they are
/// refreshed about once a second.
async fn counters(d: &Daemon, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let s = d.metrics.snapshot();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < end,
            "counter never moved: {what}: {:?}",
            s.broker
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(f)
}

/// Alice (a real client library) sends to Bob, who must get it: the daemon
/// is still serving legitimate sessions.
async fn still_serving(alice: &tern::client::Client, bob: &mut tern::client::Client, i: u64) {
    alice
        .send(BOB, 1, 0, tagged(ALICE, i))
        .await
        .unwrap_or_else(|e| panic!("send {i} after the attack: {e}"));
    let d = next_message(bob, 10).await;
    assert_eq!(untag(&payload_of(&d)), (ALICE, i));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_replayed_and_truncated_sealed_packets_are_dropped_and_counted() {
    let d = Daemon::start().await;
    let key = d.seal_key.expect("sealing is on by default");
    let alice = d.client(ALICE, 1).await;
    let mut bob = d.client(BOB, 1).await;

    // Mallory logs in for real (sealed) and sends a message, keeping the
    // datagrams.
    let (addr, token) = (d.addr, d.token(MALLORY, 1));
    let mut mallory = blocking(move || {
        let mut m = RawClient::new(addr, token, Some(key), 1);
        assert!(m.logged_in(), "sealed login");
        m.conn
            .submit(
                m.now(),
                Outgoing::Send {
                    to: BOB,
                    conv: 9,
                    msg_type: 0,
                    payload: tagged(MALLORY, 1),
                },
            )
            .unwrap();
        assert!(
            m.run_until(Duration::from_secs(10), |c| c
                .events
                .iter()
                .any(|e| matches!(e, ClientEvent::Stored { .. }))),
            "message stored"
        );
        m
    })
    .await
    .unwrap();
    assert_eq!(
        untag(&payload_of(&next_message(&mut bob, 10).await)),
        (MALLORY, 1)
    );
    let before = counters(&d, "login seen", |s| s.broker.logins >= 3).await;

    // Replays: every sealed datagram sent so far, again. Nothing is stored
    // twice (Bob receives nothing more), each is counted as a replay.
    let sealed = mallory.sealed_sent();
    assert!(!sealed.is_empty());
    for p in &sealed {
        mallory.inject(p);
    }
    let replays = sealed.len() as u64;
    counters(&d, "replays", |s| {
        s.broker.sealed_replayed >= before.broker.sealed_replayed + replays
    })
    .await;

    // Bit flips anywhere (header, ciphertext, tag) and truncations, on a
    // packet the server has not seen: none verifies.
    let now = mallory.now();
    mallory.conn.ping(now);
    let fresh = mallory.conn.poll_transmit(now).expect("a heartbeat");
    assert_eq!(fresh[1], 0x01, "sealed");
    let mut bad = 0u64;
    for i in [
        2usize,
        9,
        10,
        fresh.len() / 2,
        fresh.len() - 17,
        fresh.len() - 1,
    ] {
        let mut x = fresh.to_vec();
        x[i] ^= 0x04;
        mallory.inject(&x);
        bad += 1;
    }
    for cut in [fresh.len() - 1, fresh.len() - 16, 12] {
        mallory.inject(&fresh[..cut]);
        // Under 15 bytes the kernel filter drops it before the daemon.
        bad += u64::from(tern::transport::intake_filter::admits(&fresh[..cut]));
    }
    // A forgery: a well-formed sealed header and random "ciphertext".
    let mut forged = fresh[..11].to_vec();
    forged.extend(std::iter::repeat_n(0xab, 40));
    mallory.inject(&forged);
    bad += 1;
    let after = counters(&d, "rejected", |s| {
        s.broker.sealed_rejected + s.broker.unknown_session
            >= before.broker.sealed_rejected + before.broker.unknown_session + bad
    })
    .await;
    assert!(after.broker.sealed_rejected >= before.broker.sealed_rejected + 7);
    // The untouched packet still opens: the forgeries did not consume its number.
    mallory.inject(&fresh);
    let opened = counters(&d, "fresh packet accepted", |s| {
        s.broker.datagrams_in > after.broker.datagrams_in
    })
    .await;
    assert_eq!(opened.broker.sealed_rejected, after.broker.sealed_rejected);

    // A clear packet naming Mallory's sealed session is not believed.
    let sid = Header::peek(&fresh).unwrap().1;
    let clear = Packet {
        header: Header {
            session_id: sid,
            packet_number: 1_000,
            version: tern_core::wire::VERSION,
        },
        frames: vec![Frame::Logout],
    }
    .encode();
    mallory.inject(&clear);
    counters(&d, "clear packet for a sealed session", |s| {
        s.broker.seal_mismatch > before.broker.seal_mismatch
    })
    .await;

    // Mallory's session survived all of that (nothing forged logged it out):
    // a new message is stored over the same session, with no new login.
    let logins_before = d.metrics.snapshot().broker.logins;
    let mut mallory = blocking(move || {
        let stored = |c: &RawClient| {
            c.events
                .iter()
                .filter(|e| matches!(e, ClientEvent::Stored { .. }))
                .count()
        };
        let n = stored(&mallory);
        mallory
            .conn
            .submit(
                mallory.now(),
                Outgoing::Send {
                    to: BOB,
                    conv: 9,
                    msg_type: 0,
                    payload: tagged(MALLORY, 2),
                },
            )
            .unwrap();
        assert!(
            mallory.run_until(Duration::from_secs(10), |c| stored(c) > n),
            "second message stored"
        );
        assert!(
            !mallory
                .events
                .iter()
                .any(|e| matches!(e, ClientEvent::Disconnected)),
            "the session was never lost"
        );
        mallory
    })
    .await
    .unwrap();
    assert!(mallory.conn.is_active());
    assert_eq!(
        untag(&payload_of(&next_message(&mut bob, 10).await)),
        (MALLORY, 2)
    );
    assert_eq!(
        d.metrics.snapshot().broker.logins,
        logins_before,
        "no re-login"
    );
    // Nothing was stored or delivered twice: Bob saw Mallory's message once.
    for e in drain_quiet(&mut bob, 500).await {
        if let tern::client::Event::Entry(m) = e {
            assert_ne!(untag(&payload_of(&m)), (MALLORY, 1), "delivered twice");
        }
    }
    still_serving(&alice, &mut bob, 1).await;
    mallory.conn.logout();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handshakes_that_are_replayed_or_for_another_key_open_nothing() {
    let d = Daemon::start().await;
    let key = d.seal_key.unwrap();
    let alice = d.client(ALICE, 1).await;
    let mut bob = d.client(BOB, 1).await;
    let (addr, token) = (d.addr, d.token(MALLORY, 1));

    // Two real logins of the same device, one after the other; the first
    // handshake is kept.
    let (old_handshake, m1, m2) = blocking(move || {
        let mut m1 = RawClient::new(addr, token.clone(), Some(key), 1);
        assert!(m1.logged_in());
        let old = m1.last_handshake();
        std::thread::sleep(Duration::from_millis(5));
        let mut m2 = RawClient::new(addr, token, Some(key), 2);
        assert!(m2.logged_in(), "a newer handshake replaces the session");
        (old, m1, m2)
    })
    .await
    .unwrap();
    let before = counters(&d, "logins", |s| s.broker.logins >= 4).await;

    // The first handshake, replayed from its own address: its cookie is
    // still valid, but it is older than the live session's.
    m1.inject(&old_handshake);
    counters(&d, "replayed handshake", |s| {
        s.broker.handshake_replayed > before.broker.handshake_replayed
    })
    .await;
    // From any other address its cookie is not valid.
    m2.inject(&old_handshake);
    let replayer = UdpSocket::bind("127.0.0.1:0").unwrap();
    replayer.send_to(&old_handshake, d.addr).unwrap();
    counters(&d, "handshake with a cookie for another address", |s| {
        s.broker.bad_cookies >= before.broker.bad_cookies + 2
    })
    .await;
    let s = d.metrics.snapshot();
    assert_eq!(
        s.broker.logins, before.broker.logins,
        "no session from a replay"
    );
    assert_eq!(s.broker.replaced, before.broker.replaced);

    // A handshake to the wrong server key: nothing decrypts, nothing answers.
    let wrong = StaticKey::from_secret([42; 32]).public();
    let token = d.token(MALLORY, 2);
    let answered = blocking(move || {
        let mut w = RawClient::new(addr, token, Some(wrong), 3);
        !w.run_until(Duration::from_secs(2), |c| c.conn.is_active())
    })
    .await
    .unwrap();
    assert!(answered, "no session under a wrong key");
    counters(&d, "handshake under the wrong key", |s| {
        s.broker.handshake_failed > before.broker.handshake_failed
    })
    .await;
    still_serving(&alice, &mut bob, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clear_logins_and_bad_tokens_get_typed_refusals() {
    let d = Daemon::start_with(|c| c.limits.validate_addresses = false).await;
    let key = d.seal_key.unwrap();
    let alice = d.client(ALICE, 1).await;
    let mut bob = d.client(BOB, 1).await;
    let keys = secret_keys(&d);
    let addr = d.addr;

    // A clear LOGIN (a client without the key): SealRequired, final.
    let token = d.token(MALLORY, 1);
    let refused = blocking(move || {
        let mut c = RawClient::new(addr, token, None, 1);
        c.run_until(Duration::from_secs(5), |c| c.conn.is_closed());
        c.events
    })
    .await
    .unwrap();
    assert!(
        refused.iter().any(|e| matches!(e, ClientEvent::LoginRefused { code } if *code == ErrorCode::SealRequired as u64)),
        "{refused:?}"
    );

    // Sealed, but with a forged token (signed with another secret), an
    // expired one, and one re-targeted at another device (the claims
    // changed after signing).
    let forged =
        TokenKeys::new(b"not the secret, not the secret!!".to_vec(), vec![]).sign(Claims {
            user: MALLORY,
            device: 1,
            expires: u64::MAX,
        });
    let expired = keys.sign(Claims {
        user: MALLORY,
        device: 1,
        expires: unix_ms() / 1000 - 10,
    });
    let mut retargeted = keys
        .sign(Claims {
            user: MALLORY,
            device: 1,
            expires: u64::MAX,
        })
        .to_vec();
    retarget_device(&mut retargeted, 2);
    for (what, token, code) in [
        ("forged", forged.to_vec(), ErrorCode::BadToken),
        ("expired", expired.to_vec(), ErrorCode::TokenExpired),
        ("other device", retargeted, ErrorCode::BadToken),
    ] {
        let events = blocking(move || {
            let mut c = RawClient::new(addr, token, Some(key), 7);
            c.run_until(Duration::from_secs(5), |c| c.conn.is_closed());
            c.events
        })
        .await
        .unwrap();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ClientEvent::LoginRefused { code: c } if *c == code as u64)),
            "{what}: {events:?}"
        );
    }
    let s = counters(&d, "refusals", |s| s.broker.login_refused >= 4).await;
    assert_eq!(s.broker.seal_required, 1);
    assert_eq!(s.broker.logins, 2, "only alice and bob");
    still_serving(&alice, &mut bob, 3).await;
}

/// Changes the device id inside a signed token without re-signing it.
fn retarget_device(token: &mut [u8], device: u32) {
    // Layout (proto-spec/auth.md): version u8, user u64, device u32, ...
    token[9..13].copy_from_slice(&device.to_be_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stolen_cookie_does_not_validate_another_address() {
    let d = Daemon::start().await;
    let key = d.seal_key.unwrap();
    let token = d.token(MALLORY, 1);
    let addr = d.addr;
    // The victim gets a cookie for its address...
    let (cookie_packet, victim) = blocking(move || {
        let mut v = RawClient::new(addr, token, Some(key), 1);
        assert!(v.logged_in());
        (v.last_handshake(), v)
    })
    .await
    .unwrap();
    assert!(Packet::decode(cookie_packet.clone())
        .unwrap()
        .frames
        .iter()
        .any(|f| matches!(f, Frame::Cookie(_))));
    let before = counters(&d, "login", |s| s.broker.logins >= 1).await;
    // ...and the attacker sends the very same packet from its own address.
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    attacker.send_to(&cookie_packet, addr).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = attacker.recv_from(&mut buf).expect("a RETRY");
    assert!(n <= cookie_packet.len(), "never more than it sent");
    let p = Packet::decode(Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert!(matches!(p.frames[..], [Frame::Retry(_)]), "{p:?}");
    let s = counters(&d, "bad cookie", |s| {
        s.broker.bad_cookies > before.broker.bad_cookies
    })
    .await;
    assert_eq!(s.broker.logins, before.broker.logins);
    drop(victim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_is_rate_limited_and_legitimate_clients_keep_working() {
    let d = Daemon::start_with(|c| c.limits.prelogin_rate = 200.0).await;
    let alice = d.client(ALICE, 1).await;
    let mut bob = d.client(BOB, 1).await;
    let addr = d.addr;
    // 20,000 clear LOGINs and junk from one source, as fast as it can.
    let flood = blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let login = Packet {
            header: Header {
                session_id: 0,
                packet_number: 1,
                version: tern_core::wire::VERSION,
            },
            frames: vec![Frame::Login(Login {
                token: Bytes::from_static(b"junk"),
                epoch: 0,
                checkpoint: 0,
            })],
        }
        .encode();
        for i in 0..20_000u32 {
            let _ = if i % 2 == 0 {
                s.send_to(&login, addr)
            } else {
                s.send_to(&i.to_be_bytes(), addr)
            };
        }
    });
    for i in 0..20 {
        still_serving(&alice, &mut bob, 100 + i).await;
    }
    flood.await.unwrap();
    let s = counters(&d, "rate limited", |s| s.broker.rate_limited > 0).await;
    assert!(s.broker.rate_limited > 1_000, "{:?}", s.broker);
    still_serving(&alice, &mut bob, 200).await;
}
