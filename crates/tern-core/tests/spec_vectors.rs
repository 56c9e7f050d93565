//! Checks `proto-spec/test-vectors.md` (protocol version 1) against the
//! codec, with the harness in `common/vectors.rs`.

#[path = "spec_vectors/bounds.rs"]
mod bounds;
#[path = "common/vectors.rs"]
mod vectors;

use bytes::Bytes;
use tern_core::wire::{
    Ack, DecodeError, Deliver, EntryBody, ErrorFrame, Frame, Header, Login, LoginOk, Packet,
    PageEnd, Preview, Pull, Read, Recall, ReceiptStatus, Send, Summary, SummaryEnd, SummaryRequest,
};
use vectors::{unhex, Expect};

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto-spec/test-vectors.md"
);

// Values shared by the vectors (see the "Cast" section of test-vectors.md).
const SESSION: u64 = 0x3f8e_2c91_d4a7_b615;
const EPOCH: u64 = 0x1d2c_3b4a_5968_7766;
const ALICE: u64 = 42;
const ALICE_DEVICE: u32 = 7;
const BOB: u64 = 77;
const BOB_DEVICE: u32 = 3;
const CONV: u64 = 9001;
const T0: u64 = 1_767_225_600_123;
const TOKEN: &str = "01000000000000002a00000007000000006955b900\
                     76d29587bac51b6ae2afecd7345364d1f410c26a4efbb5321a26043bf43cf2a6";
/// The example address-validation cookie of the `retry` vectors.
const COOKIE: &str = "000000000387d9e08f1c2a3b4c5d6e7f8091a2b3c4d5e6f7";

fn packet(session_id: u64, packet_number: u64, frames: Vec<Frame>) -> Packet {
    Packet {
        header: Header {
            session_id,
            packet_number,
            version: tern_core::wire::VERSION,
        },
        frames,
    }
}

fn text(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn message(seq: u64, from_seq: u64, time_ms: u64, payload: &'static str) -> Frame {
    Frame::Deliver(Deliver {
        seq,
        conv: CONV,
        from_user: BOB,
        from_device: BOB_DEVICE,
        from_seq,
        time_ms,
        body: EntryBody::Message {
            msg_type: 0,
            payload: text(payload),
        },
    })
}

fn deliver(seq: u64, from_seq: u64, time_ms: u64, body: EntryBody) -> Frame {
    Frame::Deliver(Deliver {
        seq,
        conv: CONV,
        from_user: BOB,
        from_device: BOB_DEVICE,
        from_seq,
        time_ms,
        body,
    })
}

fn ack(receiver_online: bool, cumulative: u64, delay_us: u64, ranges: &[(u64, u64)]) -> Frame {
    Frame::Ack(Ack {
        receiver_online,
        cumulative,
        delay_us,
        ranges: ranges.to_vec(),
    })
}

fn valid(session_id: u64, packet_number: u64, frames: Vec<Frame>) -> Expect {
    Expect::Valid(packet(session_id, packet_number, frames))
}

fn invalid(e: DecodeError) -> Expect {
    Expect::Invalid(e)
}

fn bad_value(field: &'static str) -> Expect {
    invalid(DecodeError::InvalidValue { field })
}

fn too_long(field: &'static str, len: u64, max: usize) -> Expect {
    invalid(DecodeError::TooLong { field, len, max })
}

/// Every vector the markdown must hold, by name.
fn vectors() -> Vec<(&'static str, Expect)> {
    let mut all = vec![
        (
            "login",
            valid(
                0,
                1,
                vec![Frame::Login(Login {
                    token: Bytes::from(unhex(TOKEN)),
                    epoch: EPOCH,
                    checkpoint: 130,
                })],
            ),
        ),
        (
            "retry",
            valid(0, 1, vec![Frame::Retry(Bytes::from(unhex(COOKIE)))]),
        ),
        (
            "login_with_cookie",
            valid(
                0,
                2,
                vec![
                    Frame::Cookie(Bytes::from(unhex(COOKIE))),
                    Frame::Login(Login {
                        token: Bytes::from(unhex(TOKEN)),
                        epoch: EPOCH,
                        checkpoint: 130,
                    }),
                ],
            ),
        ),
        (
            "login_ok",
            valid(
                SESSION,
                1,
                vec![Frame::LoginOk(LoginOk {
                    user: ALICE,
                    device: ALICE_DEVICE,
                    epoch: EPOCH,
                    head: 135,
                    checkpoint: 130,
                    next_send_seq: 18,
                    heartbeat_ms: 15_000,
                    idle_timeout_ms: 45_000,
                    server_time_ms: T0,
                })],
            ),
        ),
        (
            "login_ok_after_refusal",
            valid(
                SESSION,
                1,
                vec![
                    Frame::Error(ErrorFrame {
                        code: 7,
                        frame_type: 0,
                        seq: 17,
                        reason: String::new(),
                    }),
                    Frame::LoginOk(LoginOk {
                        user: ALICE,
                        device: ALICE_DEVICE,
                        epoch: EPOCH,
                        head: 135,
                        checkpoint: 130,
                        next_send_seq: 18,
                        heartbeat_ms: 15_000,
                        idle_timeout_ms: 45_000,
                        server_time_ms: T0,
                    }),
                ],
            ),
        ),
        ("heartbeat", valid(SESSION, 2, vec![Frame::Heartbeat(4660)])),
        (
            "heartbeat_ack",
            valid(SESSION, 2, vec![Frame::HeartbeatAck(4660)]),
        ),
        (
            "send",
            valid(
                SESSION,
                3,
                vec![Frame::Send(Send {
                    seq: 18,
                    to: BOB,
                    conv: CONV,
                    msg_type: 0,
                    payload: text("hello, tern"),
                })],
            ),
        ),
        (
            "ack_pseudo",
            valid(SESSION, 3, vec![ack(false, 18, 1500, &[])]),
        ),
        (
            "ack_online_with_ranges",
            valid(SESSION, 4, vec![ack(true, 18, 2000, &[(20, 21), (25, 25)])]),
        ),
        (
            "ack_staged_range",
            valid(SESSION, 6, vec![ack(false, 18, 0, &[(19, 23)])]),
        ),
        (
            "ack_downlink",
            valid(SESSION, 5, vec![ack(false, 136, 10_000, &[(138, 138)])]),
        ),
        (
            "deliver_message",
            valid(SESSION, 5, vec![message(136, 410, T0 + 1333, "hi back")]),
        ),
        (
            "deliver_receipt_delivered",
            valid(
                SESSION,
                6,
                vec![deliver(
                    137,
                    0,
                    T0 + 1400,
                    EntryBody::Receipt {
                        status: ReceiptStatus::Delivered,
                        target_device: ALICE_DEVICE,
                        target_seq: 18,
                    },
                )],
            ),
        ),
        (
            "deliver_receipt_read",
            valid(
                SESSION,
                7,
                vec![deliver(
                    138,
                    411,
                    T0 + 5000,
                    EntryBody::Receipt {
                        status: ReceiptStatus::Read,
                        target_device: ALICE_DEVICE,
                        target_seq: 18,
                    },
                )],
            ),
        ),
        (
            "deliver_recall",
            valid(
                SESSION,
                8,
                vec![deliver(
                    139,
                    412,
                    T0 + 9000,
                    EntryBody::Recall {
                        target_device: BOB_DEVICE,
                        target_seq: 410,
                    },
                )],
            ),
        ),
        (
            "read",
            valid(
                SESSION,
                6,
                vec![Frame::Read(Read {
                    seq: 19,
                    conv: CONV,
                    peer: BOB,
                    target_device: BOB_DEVICE,
                    target_seq: 410,
                })],
            ),
        ),
        (
            "recall",
            valid(
                SESSION,
                7,
                vec![Frame::Recall(Recall {
                    seq: 20,
                    to: BOB,
                    conv: CONV,
                    target_seq: 18,
                })],
            ),
        ),
        (
            "pull",
            valid(
                SESSION,
                8,
                vec![Frame::Pull(Pull {
                    request_id: 1,
                    after: 130,
                    max_entries: 200,
                })],
            ),
        ),
        (
            "pull_page",
            valid(
                SESSION,
                9,
                vec![
                    message(131, 400, T0 - 60_000, "are you there?"),
                    message(132, 401, T0 - 59_000, "call me"),
                    Frame::PageEnd(PageEnd {
                        request_id: 1,
                        last: 132,
                        end: false,
                        head: 135,
                    }),
                ],
            ),
        ),
        (
            "page_end_final",
            valid(
                SESSION,
                10,
                vec![Frame::PageEnd(PageEnd {
                    request_id: 3,
                    last: 135,
                    end: true,
                    head: 135,
                })],
            ),
        ),
        (
            "summary_request",
            valid(
                SESSION,
                9,
                vec![Frame::SummaryRequest(SummaryRequest {
                    request_id: 2,
                    cursor: 0,
                    max_convs: 20,
                })],
            ),
        ),
        (
            "summary",
            valid(
                SESSION,
                11,
                vec![Frame::Summary(Summary {
                    request_id: 2,
                    conv: CONV,
                    unread: 5,
                    first_unread_seq: 131,
                    first_unread_time_ms: T0 - 60_000,
                    last_seq: 135,
                    previews: vec![
                        Preview {
                            seq: 134,
                            from_user: BOB,
                            time_ms: T0 - 2_000,
                            msg_type: 0,
                            head: text("see you at 8"),
                        },
                        Preview {
                            seq: 135,
                            from_user: BOB,
                            time_ms: T0 - 1_000,
                            msg_type: 0,
                            head: text("ok?"),
                        },
                    ],
                })],
            ),
        ),
        (
            "summary_end",
            valid(
                SESSION,
                12,
                vec![Frame::SummaryEnd(SummaryEnd {
                    request_id: 2,
                    next_cursor: 0,
                    conv_count: 1,
                    total_unread: 5,
                    head: 135,
                })],
            ),
        ),
        ("notify", valid(SESSION, 15, vec![Frame::Notify(140)])),
        ("kick", valid(SESSION, 13, vec![Frame::Kick(1)])),
        (
            "error_with_ack",
            valid(
                SESSION,
                14,
                vec![
                    Frame::Error(ErrorFrame {
                        code: 7,
                        frame_type: 0,
                        seq: 21,
                        reason: String::new(),
                    }),
                    ack(false, 21, 0, &[]),
                ],
            ),
        ),
        (
            "error_unknown_session",
            valid(
                0,
                1,
                vec![Frame::Error(ErrorFrame {
                    code: 4,
                    frame_type: 0,
                    seq: 0,
                    reason: String::new(),
                })],
            ),
        ),
        (
            "error_bad_token",
            valid(
                0,
                1,
                vec![Frame::Error(ErrorFrame {
                    code: 5,
                    frame_type: 0x01,
                    seq: 0,
                    reason: "token signature is invalid".into(),
                })],
            ),
        ),
        (
            "error_unsupported_version",
            valid(
                0,
                1,
                vec![Frame::Error(ErrorFrame {
                    code: 2,
                    frame_type: 0,
                    seq: 0,
                    reason: "unsupported protocol version 3".into(),
                })],
            ),
        ),
        ("logout", valid(SESSION, 10, vec![Frame::Logout])),
        (
            "extension",
            valid(
                SESSION,
                11,
                vec![
                    Frame::Extension {
                        ty: 0x5a,
                        body: Bytes::from_static(&[0xde, 0xad, 0xbe]),
                    },
                    Frame::Heartbeat(5),
                ],
            ),
        ),
        (
            "padding",
            valid(SESSION, 12, vec![Frame::Heartbeat(9), Frame::Padding(6)]),
        ),
        ("header_only", valid(SESSION, 13, vec![])),
        (
            "noncanonical_varints",
            Expect::NonCanonical {
                packet: packet(SESSION, 1, vec![Frame::Heartbeat(5)]),
                canonical: "01 00 3f8e2c91d4a7b615 01 03 05 ef034dd5",
            },
        ),
        (
            "tiny_datagram",
            invalid(DecodeError::Incomplete { needed: 2 }),
        ),
        ("truncated_datagram", invalid(DecodeError::Checksum)),
        ("corrupted_payload", invalid(DecodeError::Checksum)),
        (
            "short_header",
            invalid(DecodeError::Incomplete { needed: 5 }),
        ),
        (
            "short_payload",
            invalid(DecodeError::Incomplete { needed: 4 }),
        ),
        (
            "short_varint",
            invalid(DecodeError::Incomplete { needed: 3 }),
        ),
        ("bad_version", invalid(DecodeError::UnsupportedVersion(3))),
        ("nonzero_flags", bad_value("flags")),
        ("sealed_flags", invalid(DecodeError::Sealed)),
        ("damaged_flags_sealed", invalid(DecodeError::Sealed)),
        ("damaged_flags", invalid(DecodeError::Checksum)),
        ("zero_packet_number", bad_value("packet_number")),
        (
            "unknown_frame_0x99",
            invalid(DecodeError::UnknownFrame(0x99)),
        ),
        (
            "unknown_frame_0x80",
            invalid(DecodeError::UnknownFrame(0x80)),
        ),
        (
            "valid_frame_then_unknown",
            invalid(DecodeError::UnknownFrame(0x09)),
        ),
    ];
    all.extend(bounds::vectors());
    all
}

#[test]
fn spec_vectors_match_the_codec() {
    vectors::check_file(SPEC, vectors());
}
