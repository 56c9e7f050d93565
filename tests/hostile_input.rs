//! Hostile and broken input: garbage, truncated and oversized datagrams,
//! other versions, unknown frame types, bad tokens, unknown sessions and
//! frames that are not allowed where they appear. Each gets a typed ERROR
//! no larger than the datagram that caused it (or nothing, where the spec
//! allows), creates no session, and a legitimate client is served
//! throughout. The datagrams come from the one catalogue of hostile input,
//! `tern_sim::hostile`; the answers they must get are stated here.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::*;
use tern::client::{Client, ClientError, Event, SyncBody};
use tern::transport::intake_filter::admits;
use tern_core::auth::TokenKeys;
use tern_core::wire::EntryBody;
use tern_core::wire::{Deliver, ErrorCode, ErrorFrame, Frame, Header, Packet};
use tern_sim::hostile::{self, header_bytes, login, packet, padded, with_trailer, BadTokens};
use tokio::net::UdpSocket;

const ALICE: u64 = 1;
const BOB: u64 = 2;
const MALLORY: u64 = 66;
/// Smallest stateless ERROR (empty reason): nothing is sent to less.
const MIN_ANSWERED: usize = 20;

fn frames_of(datagram: &[u8]) -> (Header, Vec<Frame>) {
    let p = Packet::decode(Bytes::copy_from_slice(datagram)).expect("the server's packet decodes");
    let frames = p
        .frames
        .into_iter()
        .filter(|f| !matches!(f, Frame::Padding(_)))
        .collect();
    (p.header, frames)
}

/// A stateless answer: one packet, no larger than what was sent, session
/// id 0, packet number 1, a single ERROR with seq 0 and a short reason.
fn stateless_error(reply: &[u8], sent: usize, what: &str) -> ErrorFrame {
    assert!(
        reply.len() <= sent,
        "{what}: {} bytes answered to {sent} bytes (amplification)",
        reply.len()
    );
    let (h, frames) = frames_of(reply);
    assert_eq!(h.packet_number, 1, "{what}: packet number");
    match &frames[..] {
        [Frame::Error(e)] => {
            // Session id 0, except UNKNOWN_SESSION answering a sealed
            // packet, which echoes the id (proto-spec/sealed.md).
            assert!(
                h.session_id == 0 || e.code == ErrorCode::UnknownSession as u64,
                "{what}: session id {} in a stateless answer",
                h.session_id
            );
            assert_eq!(e.seq, 0, "{what}: refuses no operation");
            assert!(e.reason.len() <= 60, "{what}: reason too long");
            e.clone()
        }
        other => panic!("{what}: expected one ERROR, got {other:?}"),
    }
}

/// A raw UDP peer of the daemon.
struct Raw {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Raw {
    async fn new(server: SocketAddr) -> Raw {
        Raw {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
        }
    }

    /// Sends `data`; returns what comes back within `ms` (stopping shortly
    /// after the first answer).
    async fn exchange(&self, data: &[u8], ms: u64) -> Vec<Vec<u8>> {
        self.sock.send_to(data, self.server).await.unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        let mut deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Ok(r) = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await {
            let (n, from) = r.unwrap();
            assert_eq!(from, self.server);
            out.push(buf[..n].to_vec());
            deadline = deadline.min(tokio::time::Instant::now() + Duration::from_millis(30));
        }
        out
    }

    /// The datagram must be answered by exactly one stateless ERROR whose
    /// code is one of `codes`.
    async fn expect_error(&self, data: &[u8], codes: &[ErrorCode], what: &str) -> ErrorFrame {
        let replies = self.exchange(data, 1000).await;
        assert_eq!(replies.len(), 1, "{what}: exactly one answer");
        let e = stateless_error(&replies[0], data.len(), what);
        assert!(
            codes.iter().any(|c| *c as u64 == e.code),
            "{what}: error code {} ({:?}), expected one of {codes:?}",
            e.code,
            ErrorCode::from_code(e.code)
        );
        e
    }

    /// The datagram must get no answer at all.
    async fn expect_silence(&self, data: &[u8], what: &str) {
        let replies = self.exchange(data, 150).await;
        assert!(
            replies.is_empty(),
            "{what}: expected no answer, got {replies:?}"
        );
    }

    /// Either nothing, or one stateless ERROR with one of `codes`.
    async fn expect_error_or_silence(&self, data: &[u8], codes: &[ErrorCode], what: &str) {
        let replies = self.exchange(data, 250).await;
        assert!(replies.len() <= 1, "{what}: at most one answer");
        if let Some(r) = replies.first() {
            let e = stateless_error(r, data.len(), what);
            assert!(
                codes.iter().any(|c| *c as u64 == e.code),
                "{what}: error code {}, expected one of {codes:?}",
                e.code
            );
        }
    }

    /// LOGIN with `token`, echoing the address-validation cookie if the
    /// server asks for one. Returns (size of the LOGIN datagram sent last,
    /// the answers to it).
    async fn login(&self, token: &[u8]) -> (usize, Vec<Vec<u8>>) {
        // Padded so that even a LOGIN with an empty token leaves the server
        // room for an answer (it never answers with more than it got).
        let build = |pn, mut frames: Vec<Frame>| {
            frames.push(login(token));
            let bare = packet(0, pn, frames.clone()).len();
            if bare < 80 {
                padded(0, pn, frames, 80)
            } else {
                packet(0, pn, frames)
            }
        };
        let first = build(1, vec![]);
        let replies = self.exchange(&first, 1000).await;
        assert_eq!(replies.len(), 1, "one answer to LOGIN");
        assert!(replies[0].len() <= first.len(), "no amplification on LOGIN");
        let (_, frames) = frames_of(&replies[0]);
        match &frames[..] {
            [Frame::Retry(cookie)] => {
                let second = build(2, vec![Frame::Cookie(cookie.clone())]);
                let replies = self.exchange(&second, 1000).await;
                (second.len(), replies)
            }
            _ => (first.len(), replies),
        }
    }

    /// A LOGIN that must be refused with `code` (frame type LOGIN).
    async fn expect_login_refused(&self, token: &[u8], code: ErrorCode, what: &str) {
        let (sent, replies) = self.login(token).await;
        assert_eq!(replies.len(), 1, "{what}: one answer");
        let e = stateless_error(&replies[0], sent, what);
        assert_eq!(e.code, code as u64, "{what}: error code");
        assert_eq!(e.frame_type, 0x01, "{what}: names the LOGIN frame");
    }
}

/// Alice sends bob one message; bob gets it, and his session was not
/// disturbed on the way.
async fn still_serving(alice: &Client, bob: &mut Client, i: u64, what: &str) {
    let sent = tokio::time::timeout(
        Duration::from_secs(5),
        alice.send(BOB, 1, 0, tagged(ALICE, i)),
    )
    .await
    .unwrap_or_else(|_| panic!("after {what}: alice's send is not acknowledged"))
    .unwrap();
    assert!(sent.receiver_online, "after {what}: bob still online");
    let mut skipped = Vec::new();
    let e = wait_for(
        bob,
        5,
        &mut skipped,
        |e| matches!(e, Event::Entry(m) if matches!(m.body, SyncBody::Message { .. })),
    )
    .await;
    let Event::Entry(m) = e else { unreachable!() };
    assert_eq!(untag(&payload_of(&m)), (ALICE, i), "after {what}");
    assert!(
        !skipped
            .iter()
            .any(|e| matches!(e, Event::Disconnected | Event::Connected { .. })),
        "after {what}: bob's session was disturbed: {skipped:?}"
    );
}

fn secret_keys(d: &Daemon) -> TokenKeys {
    let text = std::fs::read_to_string(d.dir.path().join("token.secret")).unwrap();
    TokenKeys::new(hex::decode(text.trim()).unwrap(), vec![])
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_datagrams_get_typed_errors_and_the_daemon_keeps_serving() {
    // Clear LOGINs are part of what is probed: sealing optional (sealed
    // sessions are attacked in transport_security.rs).
    let d = Daemon::start_with(|c| c.seal.policy = tern::config::SealPolicyName::Optional).await;
    let alice = d.client(ALICE, 1).await;
    let mut bob = d.client(BOB, 1).await;
    let _ = next_event(&mut bob, 5).await; // Connected
    let raw = Raw::new(d.addr).await;
    let mut step = 0u64;
    still_serving(&alice, &mut bob, step, "start").await;

    // Random bytes of random sizes (seeded: the same run every time).
    let mut rng = SmallRng::seed_from_u64(0x7e57_0001);
    for k in 0..120 {
        let len = if k < 8 {
            rng.gen_range(1..MIN_ANSWERED)
        } else {
            rng.gen_range(MIN_ANSWERED..=1500)
        };
        let mut data = vec![0u8; len];
        rng.fill(&mut data[..]);
        let what = format!("random datagram #{k} ({len} bytes)");
        // The daemon's kernel filter drops most random bytes unanswered.
        if len < MIN_ANSWERED || !admits(&data) {
            raw.expect_silence(&data, &what).await;
        } else {
            raw.expect_error_or_silence(
                &data,
                &[
                    ErrorCode::Malformed,
                    ErrorCode::UnsupportedVersion,
                    ErrorCode::UnknownFrame,
                ],
                &what,
            )
            .await;
        }
    }
    step += 1;
    still_serving(&alice, &mut bob, step, "random datagrams").await;

    // A 1400-byte garbage datagram of our version: its trailer is wrong.
    let mut big = vec![0u8; 1400];
    rng.fill(&mut big[..]);
    big[0] = 1;
    big[1] = 0; // a clear packet (other flags are dropped in the kernel)
    let e = raw
        .expect_error(&big, &[ErrorCode::Malformed], "1400-byte garbage")
        .await;
    assert_eq!(e.frame_type, 0);
    // The same with a valid trailer: the frames themselves are garbage.
    let mut body = header_bytes(0, 1);
    body.resize(1396, 0xee);
    raw.expect_error(
        &with_trailer(body),
        &[ErrorCode::Malformed, ErrorCode::UnknownFrame],
        "1400 bytes, valid trailer, garbage frames",
    )
    .await;
    // Larger than any datagram a peer may send (1500): dropped unread.
    let mut huge = vec![0u8; 1600];
    rng.fill(&mut huge[..]);
    huge[0] = 1;
    raw.expect_silence(&huge, "1600-byte datagram").await;
    step += 1;
    still_serving(&alice, &mut bob, step, "oversized datagrams").await;

    // Truncated packets: a valid LOGIN cut short loses its trailer.
    let good_login = packet(0, 1, vec![login(&d.token(MALLORY, 1))]);
    for cut in [1, 3, 4, 11, 19, 20, 21, 40, good_login.len() - 1] {
        let data = &good_login[..cut];
        let what = format!("LOGIN cut to {cut} bytes");
        if cut < MIN_ANSWERED {
            raw.expect_silence(data, &what).await;
        } else {
            raw.expect_error(data, &[ErrorCode::Malformed], &what).await;
        }
    }
    // Cut inside a frame but with a matching trailer (the sender wrote a
    // short packet): incomplete.
    for cut in [12, 20, 40, good_login.len() - 6] {
        let data = with_trailer(good_login[..cut].to_vec());
        let what = format!("LOGIN frame cut to {cut} bytes, valid trailer");
        if data.len() < MIN_ANSWERED {
            raw.expect_silence(&data, &what).await;
        } else {
            raw.expect_error(&data, &[ErrorCode::Malformed], &what)
                .await;
        }
    }
    // Forbidden header values, trailer valid (a flags byte other than 0
    // or 1 is dropped in the kernel, unanswered).
    for h in hostile::forbidden_headers() {
        if admits(&h.bytes) {
            raw.expect_error(&h.bytes, &[ErrorCode::Malformed], &h.name)
                .await;
        } else {
            raw.expect_silence(&h.bytes, &h.name).await;
        }
    }
    step += 1;
    still_serving(&alice, &mut bob, step, "truncated and invalid packets").await;

    // Other versions: answered in version 1 with UnsupportedVersion, up to
    // version 15 (0 and higher ones are dropped in the kernel).
    for v in hostile::OTHER_VERSIONS {
        let data = hostile::other_version(v, 40, &mut rng);
        if !admits(&data) {
            assert!(v == 0 || v > 15);
            raw.expect_silence(&data, &format!("version {v}")).await;
            continue;
        }
        let e = raw
            .expect_error(
                &data,
                &[ErrorCode::UnsupportedVersion],
                &format!("version {v}"),
            )
            .await;
        assert_eq!(e.code, ErrorCode::UnsupportedVersion as u64);
        let tiny = hostile::other_version(v, MIN_ANSWERED - 1, &mut rng);
        raw.expect_silence(&tiny, &format!("version {v}, {} bytes", tiny.len()))
            .await;
    }
    step += 1;
    still_serving(&alice, &mut bob, step, "other versions").await;

    // Unknown frame types outside the extension range.
    for t in hostile::UNKNOWN_FRAME_TYPES {
        // Padding first: a valid start.
        let data = hostile::unknown_frame(1, 24, t);
        raw.expect_error(
            &data,
            &[ErrorCode::UnknownFrame],
            &format!("frame type {t:#04x}"),
        )
        .await;
    }
    step += 1;
    still_serving(&alice, &mut bob, step, "unknown frame types").await;

    // Frames other than LOGIN (and COOKIE, PADDING) before login.
    let send = hostile::send_frame(b"sneaky");
    let before_login = hostile::frames_before_login(&d.token(MALLORY, 1));
    for (name, frames) in before_login {
        let len = packet(0, 1, frames.clone()).len() + 30;
        let data = padded(0, 1, frames, len);
        let e = raw
            .expect_error(
                &data,
                &[ErrorCode::NotAllowed],
                &format!("{name} before login"),
            )
            .await;
        assert_eq!(e.code, ErrorCode::NotAllowed as u64);
    }
    // A packet with nothing but padding asks for nothing.
    raw.expect_error_or_silence(
        &padded(0, 1, vec![], 40),
        &[ErrorCode::NotAllowed],
        "padding only",
    )
    .await;
    step += 1;
    still_serving(&alice, &mut bob, step, "frames before login").await;

    // Bad tokens.
    let keys = secret_keys(&d);
    let valid = d.token(MALLORY, 1);
    let bad = BadTokens::new(&keys, &valid, MALLORY, unix_now());
    for (what, token, code) in bad.all() {
        raw.expect_login_refused(token, code, what).await;
    }
    // Unpadded, that LOGIN is 19 bytes: too small to be answered at all.
    raw.expect_silence(&packet(0, 1, vec![login(&[])]), "19-byte LOGIN")
        .await;
    // Through the client library: a typed, final refusal.
    for (token, code) in [(bad.expired.clone(), 6), (bad.forged_mac.clone(), 5)] {
        let mut o = d.options(MALLORY, 1);
        o.token = token;
        o.connect_timeout = Duration::from_secs(5);
        match Client::connect(o).await {
            Err(ClientError::LoginRefused(c)) => assert_eq!(c, code),
            Err(e) => panic!("expected LoginRefused({code}), got {e}"),
            Ok(_) => panic!("a bad token logged in"),
        }
    }
    step += 1;
    still_serving(&alice, &mut bob, step, "bad tokens").await;

    // Unknown session ids.
    let ghost = 0x0bad_5e55_1011_0001u64;
    raw.expect_silence(
        &packet(ghost, 1, vec![Frame::Heartbeat(1)]),
        "unknown session, datagram below 20 bytes",
    )
    .await;
    raw.expect_error(
        &padded(ghost, 1, vec![Frame::Heartbeat(1)], 48),
        &[ErrorCode::UnknownSession],
        "unknown session",
    )
    .await;
    raw.expect_error(
        &padded(ghost, 7, vec![send.clone()], 64),
        &[ErrorCode::UnknownSession],
        "SEND on an unknown session",
    )
    .await;
    step += 1;
    still_serving(&alice, &mut bob, step, "unknown sessions").await;

    // A raw session of our own: frames in the wrong direction are refused
    // inside it, unknown extensions are skipped, and once it is closed its
    // id is unknown.
    let (_, replies) = raw.login(&valid).await;
    let sid = replies
        .iter()
        .find_map(|r| {
            let (h, frames) = frames_of(r);
            frames
                .iter()
                .any(|f| matches!(f, Frame::LoginOk(_)))
                .then_some(h.session_id)
        })
        .expect("a valid LOGIN is answered with LOGIN_OK");
    assert_ne!(sid, 0);
    let deliver = Frame::Deliver(Deliver {
        seq: 1,
        conv: 1,
        from_user: BOB,
        from_device: 1,
        from_seq: 1,
        time_ms: 0,
        body: EntryBody::Message {
            msg_type: 0,
            payload: Bytes::from_static(b"forged delivery"),
        },
    });
    let mut pn = 1;
    for (name, frame, ty) in [
        ("DELIVER", deliver, 0x11u8),
        ("KICK", Frame::Kick(1), 0x30),
        ("LOGIN", login(&valid), 0x01),
    ] {
        let replies = raw.exchange(&packet(sid, pn, vec![frame]), 1000).await;
        pn += 1;
        let errors: Vec<ErrorFrame> = replies
            .iter()
            .flat_map(|r| {
                let (h, frames) = frames_of(r);
                assert_eq!(h.session_id, sid, "{name}: answered in the session");
                frames
            })
            .filter_map(|f| match f {
                Frame::Error(e) => Some(e),
                _ => None,
            })
            .collect();
        assert!(
            errors
                .iter()
                .any(|e| e.code == ErrorCode::NotAllowed as u64 && e.frame_type == ty),
            "{name} from a client: ERROR NotAllowed naming it, got {errors:?}"
        );
    }
    let replies = raw
        .exchange(
            &packet(
                sid,
                pn,
                vec![
                    Frame::Extension {
                        ty: 0x7e,
                        body: Bytes::from_static(b"future feature"),
                    },
                    Frame::Heartbeat(4242),
                ],
            ),
            1000,
        )
        .await;
    pn += 1;
    let frames: Vec<Frame> = replies.iter().flat_map(|r| frames_of(r).1).collect();
    assert!(
        frames.contains(&Frame::HeartbeatAck(4242)),
        "extension skipped, heartbeat answered: {frames:?}"
    );
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Error(_))),
        "an extension frame is not an error: {frames:?}"
    );
    let replies = raw
        .exchange(&packet(sid, pn, vec![Frame::Logout]), 1000)
        .await;
    let frames: Vec<Frame> = replies.iter().flat_map(|r| frames_of(r).1).collect();
    assert!(
        frames.contains(&Frame::Kick(2)),
        "LOGOUT answered with KICK LoggedOut"
    );
    raw.expect_error(
        &padded(sid, pn + 1, vec![Frame::Heartbeat(1)], 48),
        &[ErrorCode::UnknownSession],
        "the closed session",
    )
    .await;
    step += 1;
    still_serving(&alice, &mut bob, step, "a raw session").await;

    // A burst of garbage from many sockets at once, then service as usual.
    let mut socks = Vec::new();
    for _ in 0..8 {
        socks.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    let mut sent = 0;
    for k in 0..2000 {
        let len = rng.gen_range(1..=1500);
        let mut data = vec![0u8; len];
        rng.fill(&mut data[..]);
        if k % 2 == 0 {
            data[0] = 1;
        }
        socks[k % socks.len()].send_to(&data, d.addr).await.unwrap();
        sent += 1;
    }
    let mut answers = 0;
    let mut buf = vec![0u8; 2048];
    for s in &socks {
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(100), s.recv_from(&mut buf)).await
        {
            stateless_error(&buf[..n], 1500, "answer to the burst");
            answers += 1;
        }
    }
    assert!(answers <= sent, "at most one answer per datagram");
    step += 1;
    still_serving(&alice, &mut bob, step, "a burst of 2000 garbage datagrams").await;

    alice.close().await;
    bob.close().await;
    let (_, _, stats) = d.stop_keep().await;
    // alice, bob, mallory's raw session: nothing else logged in.
    assert_eq!(stats.broker.logins, 3, "no session from hostile input");
    // Most random bytes never reach the broker (the kernel filter drops
    // about 19 in 20); those that do are counted.
    assert!(stats.broker.malformed > 20, "{}", stats.broker.malformed);
    assert!(stats.broker.login_refused >= 9);
}
