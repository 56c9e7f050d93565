//! Checks `proto-spec/test-vectors-groups.md` (protocol version 2,
//! `groups.md`) against the codec, with the harness in
//! `common/vectors.rs`.

#[path = "common/vectors.rs"]
mod vectors;

use tern_core::wire::{
    ConvKind, ConvRef, DecodeError, Entry, Frame, GroupAction, GroupEvent, GroupEventKind, GroupOp,
    GroupRole, Header, Member, MembersEnd, MembersRequest, Packet, ReadCounts, ReadCountsRequest,
    Record, RecordBody, SyncBody, VERSION_2,
};
use vectors::Expect;

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto-spec/test-vectors-groups.md"
);

// The cast of test-vectors.md; Carol is user 99.
const SESSION: u64 = 0x3f8e_2c91_d4a7_b615;
const ALICE: u64 = 42;
const ALICE_DEVICE: u32 = 7;
const BOB: u64 = 77;
const CAROL: u64 = 99;
const T0: u64 = 1_767_225_600_123;
/// The group the server assigned.
const GROUP: u64 = 0x2a5f_3c1d_0e9b_4477;

fn valid(packet_number: u64, frames: Vec<Frame>) -> Expect {
    Expect::Valid(Packet {
        header: Header {
            session_id: SESSION,
            packet_number,
            version: VERSION_2,
        },
        frames,
    })
}

fn invalid(e: DecodeError) -> Expect {
    Expect::Invalid(e)
}

fn group_conv() -> ConvRef {
    ConvRef {
        kind: ConvKind::Group,
        id: GROUP,
    }
}

fn vectors() -> Vec<(&'static str, Expect)> {
    vec![
        (
            "group_create",
            valid(
                30,
                vec![Frame::GroupOp(GroupOp {
                    seq: 30,
                    group: 0,
                    action: GroupAction::Create,
                    users: vec![BOB, CAROL],
                })],
            ),
        ),
        (
            "group_add_admin",
            valid(
                31,
                vec![Frame::GroupOp(GroupOp {
                    seq: 31,
                    group: GROUP,
                    action: GroupAction::Add { admin: true },
                    users: vec![CAROL],
                })],
            ),
        ),
        (
            "group_leave",
            valid(
                32,
                vec![Frame::GroupOp(GroupOp {
                    seq: 32,
                    group: GROUP,
                    action: GroupAction::Leave,
                    users: vec![],
                })],
            ),
        ),
        (
            "entry_member_added",
            valid(
                7,
                vec![Frame::Entry(Entry {
                    seq: 140,
                    conv: group_conv(),
                    conv_seq: 2,
                    topic: 0,
                    from_user: ALICE,
                    from_device: ALICE_DEVICE,
                    from_seq: 30,
                    time_ms: T0,
                    body: SyncBody::Member(GroupEvent {
                        kind: GroupEventKind::Added,
                        user: BOB,
                        role: GroupRole::Member,
                    }),
                })],
            ),
        ),
        (
            "record_member_removed",
            valid(
                8,
                vec![Frame::Record(Record {
                    request_id: 9,
                    conv: group_conv(),
                    conv_seq: 14,
                    topic: 0,
                    from_user: ALICE,
                    from_device: ALICE_DEVICE,
                    from_seq: 33,
                    time_ms: T0,
                    body: RecordBody::Member(GroupEvent {
                        kind: GroupEventKind::Removed,
                        user: CAROL,
                        role: GroupRole::Admin,
                    }),
                })],
            ),
        ),
        (
            "members_page",
            valid(
                33,
                vec![Frame::Members(MembersRequest {
                    request_id: 10,
                    group: GROUP,
                    after: 0,
                    max: 64,
                    read_at: 0,
                })],
            ),
        ),
        (
            "readers_page",
            valid(
                35,
                vec![Frame::Members(MembersRequest {
                    request_id: 12,
                    group: GROUP,
                    after: 0,
                    max: 64,
                    read_at: 4,
                })],
            ),
        ),
        (
            "members_answer",
            valid(
                9,
                vec![
                    Frame::Member(Member {
                        request_id: 10,
                        user: ALICE,
                        role: GroupRole::Owner,
                        since: 1,
                    }),
                    Frame::Member(Member {
                        request_id: 10,
                        user: BOB,
                        role: GroupRole::Member,
                        since: 2,
                    }),
                    Frame::MembersEnd(MembersEnd {
                        request_id: 10,
                        group: GROUP,
                        count: 2,
                        next_after: BOB,
                        complete: true,
                        members: 2,
                        last_seq: 15,
                    }),
                ],
            ),
        ),
        (
            "read_counts_request",
            valid(
                34,
                vec![Frame::ReadCountsRequest(ReadCountsRequest {
                    request_id: 11,
                    group: GROUP,
                    low: 4,
                    count: 3,
                })],
            ),
        ),
        (
            "read_counts_answer",
            valid(
                10,
                vec![Frame::ReadCounts(ReadCounts {
                    request_id: 11,
                    group: GROUP,
                    low: 4,
                    members: 3,
                    read_by: vec![2, 1, 0],
                })],
            ),
        ),
        (
            "bad_group_action",
            invalid(DecodeError::InvalidValue {
                field: "group action",
            }),
        ),
        (
            "bad_group_role",
            invalid(DecodeError::InvalidValue {
                field: "group role",
            }),
        ),
        (
            "too_many_group_users",
            invalid(DecodeError::TooLong {
                field: "users",
                len: 33,
                max: 32,
            }),
        ),
    ]
}

#[test]
fn group_spec_vectors_match_the_codec() {
    vectors::check_file(SPEC, vectors());
}
