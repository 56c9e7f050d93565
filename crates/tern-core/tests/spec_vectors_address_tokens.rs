//! Checks `proto-spec/test-vectors-address-tokens.md` (address tokens,
//! `address-tokens.md`) against the codec, with the harness in
//! `common/vectors.rs`.

#[path = "common/vectors.rs"]
mod vectors;

use bytes::Bytes;
use tern_core::wire::{DecodeError, Frame, Header, Login, LoginOk, Packet};
use vectors::{unhex, Expect};

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto-spec/test-vectors-address-tokens.md"
);

// The cast of test-vectors.md.
const SESSION: u64 = 0x3f8e_2c91_d4a7_b615;
const EPOCH: u64 = 0x1d2c_3b4a_5968_7766;
const T0: u64 = 1_767_225_600_123;
const TOKEN: &str = "01000000000000002a00000007000000006955b900\
                     76d29587bac51b6ae2afecd7345364d1f410c26a4efbb5321a26043bf43cf2a6";
/// The example address token: kind `a7`, issued at T0 (in µs), an example
/// MAC. Opaque to clients.
const ADDRESS_TOKEN: &str = "a7 0006474846222078 0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn packet(session_id: u64, packet_number: u64, version: u8, frames: Vec<Frame>) -> Packet {
    Packet {
        header: Header {
            session_id,
            packet_number,
            version,
        },
        frames,
    }
}

fn token() -> Bytes {
    Bytes::from(unhex(ADDRESS_TOKEN))
}

fn login_ok() -> Frame {
    Frame::LoginOk(LoginOk {
        user: 42,
        device: 7,
        epoch: EPOCH,
        head: 135,
        checkpoint: 130,
        next_send_seq: 18,
        heartbeat_ms: 15_000,
        idle_timeout_ms: 45_000,
        server_time_ms: T0,
    })
}

fn login(checkpoint: u64) -> Frame {
    Frame::Login(Login {
        token: Bytes::from(unhex(TOKEN)),
        epoch: EPOCH,
        checkpoint,
    })
}

fn vectors() -> Vec<(&'static str, Expect)> {
    vec![
        (
            "login_ok_with_address_token",
            Expect::Valid(packet(
                SESSION,
                1,
                1,
                vec![login_ok(), Frame::AddressToken(token())],
            )),
        ),
        (
            "login_with_address_token",
            Expect::Valid(packet(0, 40, 1, vec![Frame::Cookie(token()), login(140)])),
        ),
        (
            "login_with_address_token_v2",
            Expect::Valid(packet(0, 41, 2, vec![Frame::Cookie(token()), login(140)])),
        ),
        (
            "oversize_address_token",
            Expect::Invalid(DecodeError::TooLong {
                field: "address_token",
                len: 65,
                max: 64,
            }),
        ),
    ]
}

#[test]
fn address_token_vectors_match_the_codec() {
    vectors::check_file(SPEC, vectors());
}
