//! Checks `proto-spec/test-vectors-v2.md` (protocol version 2,
//! `conversations.md`) against the codec, with the harness in
//! `common/vectors.rs`.

#[path = "common/vectors.rs"]
mod vectors;

use bytes::Bytes;
use tern_core::wire::{
    ConvKind, ConvRef, DecodeError, Delete, DeleteScope, Entry, Frame, Header, HistoryEnd,
    HistoryRequest, ListEnd, ListItem, ListPreview, ListRequest, Login, MarkRead, Packet, Post,
    ReceiptStatus, Record, RecordBody, Retract, SyncBody, VERSION, VERSION_2,
};
use vectors::{unhex, Expect};

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto-spec/test-vectors-v2.md"
);

// The cast of test-vectors.md.
const SESSION: u64 = 0x3f8e_2c91_d4a7_b615;
const EPOCH: u64 = 0x1d2c_3b4a_5968_7766;
const ALICE: u64 = 42;
const ALICE_DEVICE: u32 = 7;
const BOB: u64 = 77;
const BOB_DEVICE: u32 = 3;
const TOPIC: u64 = 9001;
const T0: u64 = 1_767_225_600_123;
const TOKEN: &str = "01000000000000002a00000007000000006955b900\
                     76d29587bac51b6ae2afecd7345364d1f410c26a4efbb5321a26043bf43cf2a6";

/// Alice's name for her direct conversation with Bob.
const WITH_BOB: ConvRef = ConvRef {
    kind: ConvKind::Direct,
    id: BOB,
};

fn packet(version: u8, session_id: u64, packet_number: u64, frames: Vec<Frame>) -> Packet {
    Packet {
        header: Header {
            session_id,
            packet_number,
            version,
        },
        frames,
    }
}

fn valid(session_id: u64, packet_number: u64, frames: Vec<Frame>) -> Expect {
    Expect::Valid(packet(VERSION_2, session_id, packet_number, frames))
}

fn invalid(e: DecodeError) -> Expect {
    Expect::Invalid(e)
}

fn text(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn entry(seq: u64, conv_seq: u64, from: (u64, u32, u64), time_ms: u64, body: SyncBody) -> Frame {
    Frame::Entry(Entry {
        seq,
        conv: WITH_BOB,
        conv_seq,
        topic: TOPIC,
        from_user: from.0,
        from_device: from.1,
        from_seq: from.2,
        time_ms,
        body,
    })
}

fn vectors() -> Vec<(&'static str, Expect)> {
    vec![
        (
            "login_v2",
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
            "post",
            valid(
                SESSION,
                20,
                vec![Frame::Post(Post {
                    seq: 18,
                    conv: WITH_BOB,
                    topic: TOPIC,
                    msg_type: 0,
                    payload: text("hi bob"),
                })],
            ),
        ),
        (
            "mark_read",
            valid(
                SESSION,
                21,
                vec![Frame::MarkRead(MarkRead {
                    seq: 19,
                    conv: WITH_BOB,
                    up_to: 12,
                    receipt_device: BOB_DEVICE,
                    receipt_seq: 410,
                })],
            ),
        ),
        (
            "retract",
            valid(
                SESSION,
                22,
                vec![Frame::Retract(Retract {
                    seq: 20,
                    conv: WITH_BOB,
                    target: 13,
                })],
            ),
        ),
        (
            "delete_message",
            valid(
                SESSION,
                23,
                vec![Frame::Delete(Delete {
                    seq: 21,
                    conv: WITH_BOB,
                    scope: DeleteScope::Message,
                    target: 11,
                })],
            ),
        ),
        (
            "entry_message",
            valid(
                SESSION,
                5,
                vec![entry(
                    136,
                    12,
                    (BOB, BOB_DEVICE, 410),
                    T0 + 1333,
                    SyncBody::Message {
                        msg_type: 0,
                        payload: text("hi back"),
                    },
                )],
            ),
        ),
        (
            "entry_own_copy",
            valid(
                SESSION,
                6,
                vec![entry(
                    137,
                    13,
                    (ALICE, ALICE_DEVICE, 18),
                    T0 + 2000,
                    SyncBody::Message {
                        msg_type: 0,
                        payload: text("hi bob"),
                    },
                )],
            ),
        ),
        (
            "entry_read",
            valid(
                SESSION,
                7,
                vec![entry(138, 13, (ALICE, 9, 5), T0 + 2500, SyncBody::Read)],
            ),
        ),
        (
            "entry_receipt",
            valid(
                SESSION,
                8,
                vec![entry(
                    139,
                    13,
                    (BOB, BOB_DEVICE, 0),
                    T0 + 2600,
                    SyncBody::Receipt {
                        status: ReceiptStatus::Delivered,
                        target_device: ALICE_DEVICE,
                        target_seq: 18,
                    },
                )],
            ),
        ),
        (
            "list",
            valid(
                SESSION,
                24,
                vec![Frame::List(ListRequest {
                    request_id: 7,
                    since: 0,
                    max_items: 512,
                    preview_len: 12,
                })],
            ),
        ),
        (
            "list_answer",
            valid(
                SESSION,
                9,
                vec![
                    Frame::ListItem(ListItem {
                        request_id: 7,
                        conv: WITH_BOB,
                        version: 31,
                        hidden: false,
                        last_seq: 13,
                        read_seq: 12,
                        unread: 1,
                        cleared_to: 0,
                        preview: Some(ListPreview {
                            from_user: BOB,
                            age_s: 4,
                            msg_type: 0,
                            recalled: false,
                            head: text("hi back"),
                        }),
                    }),
                    Frame::ListEnd(ListEnd {
                        request_id: 7,
                        items: 1,
                        next_since: 31,
                        list_version: 31,
                        complete: true,
                        total_unread: 1,
                        server_time_ms: T0 + 5000,
                    }),
                ],
            ),
        ),
        (
            "history",
            valid(
                SESSION,
                25,
                vec![Frame::History(HistoryRequest {
                    request_id: 8,
                    conv: WITH_BOB,
                    before: 0,
                    max: 64,
                })],
            ),
        ),
        (
            "history_page",
            valid(
                SESSION,
                10,
                vec![
                    Frame::Record(Record {
                        request_id: 8,
                        conv: WITH_BOB,
                        conv_seq: 12,
                        topic: TOPIC,
                        from_user: BOB,
                        from_device: BOB_DEVICE,
                        from_seq: 410,
                        time_ms: T0 + 1333,
                        body: RecordBody::Message {
                            msg_type: 0,
                            payload: text("hi back"),
                        },
                    }),
                    Frame::Record(Record {
                        request_id: 8,
                        conv: WITH_BOB,
                        conv_seq: 13,
                        topic: TOPIC,
                        from_user: ALICE,
                        from_device: ALICE_DEVICE,
                        from_seq: 18,
                        time_ms: T0 + 2000,
                        body: RecordBody::Recalled { msg_type: 0 },
                    }),
                    Frame::HistoryEnd(HistoryEnd {
                        request_id: 8,
                        conv: WITH_BOB,
                        low: 1,
                        high: 13,
                        floor: 0,
                        count: 2,
                        last_seq: 13,
                    }),
                ],
            ),
        ),
        (
            "v2_frame_in_v1_packet",
            invalid(DecodeError::UnknownFrame(0x15)),
        ),
        (
            "bad_conv_kind",
            invalid(DecodeError::InvalidValue { field: "conv kind" }),
        ),
        (
            "bad_list_flags",
            invalid(DecodeError::InvalidValue {
                field: "list flags",
            }),
        ),
    ]
}

#[test]
fn v2_spec_vectors_match_the_codec() {
    vectors::check_file(SPEC, vectors());
}

#[test]
fn the_v1_form_of_a_v2_vector_is_refused() {
    // What `v2_frame_in_v1_packet` shows, built rather than read.
    let p = packet(
        VERSION,
        SESSION,
        20,
        vec![Frame::Retract(Retract {
            seq: 20,
            conv: WITH_BOB,
            target: 13,
        })],
    );
    assert_eq!(
        Packet::decode(p.encode()),
        Err(DecodeError::UnknownFrame(0x17))
    );
}
