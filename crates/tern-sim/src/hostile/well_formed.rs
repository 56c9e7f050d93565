//! Well-formed packets covering every frame type: what the hostile
//! datagrams of [`super`] are mutations of, and the seeds of the fuzz
//! target `decode_packet` (their bodies are written to
//! `fuzz/seeds/decode_packet/` by `fuzz/examples/gen_seeds.rs`).

use bytes::Bytes;
use tern_core::wire::{self, EntryBody, Frame, Header, Packet, ReceiptStatus};

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

fn sample(session_id: u64, packet_number: u64, frames: Vec<Frame>) -> Packet {
    Packet {
        header: Header {
            session_id,
            packet_number,
            version: tern_core::wire::VERSION,
        },
        frames,
    }
}

/// Named sample packets. Every one decodes and re-encodes to itself.
pub fn packets() -> Vec<(&'static str, Packet)> {
    let deliver = |seq, body| {
        Frame::Deliver(wire::Deliver {
            seq,
            conv: 77,
            from_user: 1001,
            from_device: 2,
            from_seq: 9,
            time_ms: 1_700_000_000_000,
            body,
        })
    };
    vec![
        (
            "login",
            sample(
                0,
                1,
                vec![Frame::Login(wire::Login {
                    token: b(b"v1.user=42.dev=1.exp=1700000000.sig=0123456789abcdef"),
                    epoch: 0,
                    checkpoint: 0,
                })],
            ),
        ),
        (
            "login_ok",
            sample(
                0x1122_3344_5566_7788,
                1,
                vec![Frame::LoginOk(wire::LoginOk {
                    user: 42,
                    device: 1,
                    epoch: 0xdead_beef,
                    head: 1000,
                    checkpoint: 990,
                    next_send_seq: 17,
                    heartbeat_ms: 15_000,
                    idle_timeout_ms: 45_000,
                    server_time_ms: 1_700_000_000_123,
                })],
            ),
        ),
        (
            "heartbeat",
            sample(7, 2, vec![Frame::Heartbeat(0x3fff), Frame::HeartbeatAck(5)]),
        ),
        (
            "send_and_ack",
            sample(
                7,
                300,
                vec![
                    Frame::Ack(wire::Ack {
                        receiver_online: false,
                        cumulative: 10,
                        delay_us: 2500,
                        ranges: vec![(11, 11), (13, 14), (20, 20), (70, 90)],
                    }),
                    Frame::Send(wire::Send {
                        seq: 17,
                        to: 43,
                        conv: 77,
                        msg_type: 0,
                        payload: b("hello, tern".as_bytes()),
                    }),
                    Frame::Send(wire::Send {
                        seq: 18,
                        to: 43,
                        conv: 77,
                        msg_type: 1,
                        payload: Bytes::from(vec![0xab; 200]),
                    }),
                ],
            ),
        ),
        (
            "deliver_all_bodies",
            sample(
                7,
                70_000,
                vec![
                    deliver(
                        5,
                        EntryBody::Message {
                            msg_type: 0,
                            payload: b(b"hi"),
                        },
                    ),
                    deliver(
                        6,
                        EntryBody::Receipt {
                            status: ReceiptStatus::Delivered,
                            target_device: 1,
                            target_seq: 17,
                        },
                    ),
                    deliver(
                        7,
                        EntryBody::Receipt {
                            status: ReceiptStatus::Read,
                            target_device: 1,
                            target_seq: 18,
                        },
                    ),
                    deliver(
                        8,
                        EntryBody::Recall {
                            target_device: 3,
                            target_seq: 4,
                        },
                    ),
                ],
            ),
        ),
        (
            "ack_max_ranges",
            sample(
                9,
                1 << 40,
                vec![Frame::Ack(wire::Ack {
                    receiver_online: true,
                    cumulative: 1 << 33,
                    delay_us: 0,
                    ranges: (0..wire::limits::MAX_ACK_RANGES as u64)
                        .map(|i| {
                            let s = (1 << 33) + 2 + i * 3;
                            (s, s)
                        })
                        .collect(),
                })],
            ),
        ),
        (
            "read_recall_logout",
            sample(
                9,
                3,
                vec![
                    Frame::Read(wire::Read {
                        seq: 19,
                        conv: 77,
                        peer: 43,
                        target_device: 2,
                        target_seq: 9,
                    }),
                    Frame::Recall(wire::Recall {
                        seq: 20,
                        to: 43,
                        conv: 77,
                        target_seq: 18,
                    }),
                    Frame::Logout,
                ],
            ),
        ),
        (
            "pull_page",
            sample(
                9,
                4,
                vec![
                    Frame::Pull(wire::Pull {
                        request_id: 1,
                        after: 990,
                        max_entries: 256,
                    }),
                    Frame::PageEnd(wire::PageEnd {
                        request_id: 1,
                        last: 1000,
                        end: true,
                        head: 1000,
                    }),
                ],
            ),
        ),
        (
            "summary",
            sample(
                9,
                5,
                vec![
                    Frame::SummaryRequest(wire::SummaryRequest {
                        request_id: 2,
                        cursor: 0,
                        max_convs: 50,
                    }),
                    Frame::Summary(wire::Summary {
                        request_id: 2,
                        conv: 77,
                        unread: 3,
                        first_unread_seq: 998,
                        first_unread_time_ms: 1_700_000_000_000,
                        last_seq: 1000,
                        previews: (0..3)
                            .map(|i| wire::Preview {
                                seq: 998 + i,
                                from_user: 43,
                                time_ms: 1_700_000_000_000 + i,
                                msg_type: 0,
                                head: b(b"preview text"),
                            })
                            .collect(),
                    }),
                    Frame::SummaryEnd(wire::SummaryEnd {
                        request_id: 2,
                        next_cursor: 0,
                        conv_count: 1,
                        total_unread: 3,
                        head: 1000,
                    }),
                ],
            ),
        ),
        (
            "kick_error",
            sample(
                9,
                6,
                vec![
                    Frame::Error(wire::ErrorFrame {
                        code: 11,
                        frame_type: wire::ty::SEND,
                        seq: 99,
                        reason: "seq out of window".into(),
                    }),
                    Frame::Notify(1000),
                    Frame::Kick(1),
                ],
            ),
        ),
        (
            "extension_padding",
            sample(
                9,
                7,
                vec![
                    Frame::Extension {
                        ty: 0x41,
                        body: b(b"ext"),
                    },
                    Frame::Heartbeat(1),
                    Frame::Padding(40),
                ],
            ),
        ),
    ]
}

/// The encoded sample packets.
pub fn encoded() -> Vec<(&'static str, Bytes)> {
    packets()
        .into_iter()
        .map(|(n, p)| (n, p.encode()))
        .collect()
}
