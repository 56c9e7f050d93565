//! Frames with field values exactly as the fuzzer gives them: lengths past the
//! protocol limits, numbers past the varint range (2^62-1), zero where the
//! decoder wants non-zero, ACK ranges that are out of order or sit at u64::MAX.
//! This is what a buggy caller (or a frame built from untrusted sizes) hands
//! the encoder.
//!
//! Properties:
//! - `validate()` accepts exactly the frames the protocol allows
//!   (`tern_fuzz::mirror::expected_valid`: bounded lengths, ACK ranges
//!   ascending with `start >= prev_end + 2` computed without wrapping);
//! - `encoded_len()` and `encode()` never panic, on any frame (their docs say
//!   over-long frames are written and left for the peer to reject), and agree
//!   on the size;
//! - `PacketBuilder::push` never panics and refuses every invalid frame;
//! - decoding whatever was encoded never panics.
//!
//! Set `TERN_FUZZ_SKIP_KNOWN=1` to skip inputs that hit an already reported
//! bug (see docs/fuzzing.md), so a long run can look for new ones.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tern_core::wire::limits::MAX_RECV_DATAGRAM;
use tern_core::wire::{Frame, Header, Packet, PacketBuilder};
use tern_fuzz::mirror::{expected_valid, FrameM};
use tern_fuzz::with_trailer;

#[derive(Arbitrary, Debug)]
struct Input {
    frames: Vec<FrameM>,
}

fn skip_known() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("TERN_FUZZ_SKIP_KNOWN").is_some_and(|v| v != "0"))
}

/// Known bug 1 (invalid frames only): an ACK whose cumulative point, or a
/// range end, is u64::MAX with a range after it overflows `prev_end + 1` in
/// `Frame::encoded_len` / `Frame::encode` (a panic with overflow checks on,
/// a wrapped gap without).
fn hits_known_bug(f: &Frame) -> bool {
    match f {
        Frame::Ack(a) => {
            let mut prev_end = a.cumulative;
            for &(_, end) in &a.ranges {
                if prev_end == u64::MAX {
                    return true;
                }
                prev_end = end;
            }
            false
        }
        _ => false,
    }
}

fuzz_target!(|input: Input| {
    let header = Header {
        session_id: 1,
        packet_number: 1,
    };
    let mut b = PacketBuilder::new(header, MAX_RECV_DATAGRAM);
    let mut all = BytesMut::new();
    header.encode(&mut all);
    for m in &input.frames {
        let f = m.raw();
        if skip_known() && hits_known_bug(&f) {
            continue;
        }
        let len = f.encoded_len();
        let mut enc = Vec::new();
        f.encode(&mut enc);
        assert_eq!(enc.len(), len, "encoded_len disagrees with encode for {f:?}");
        all.extend_from_slice(&enc);

        let valid = f.validate();
        assert_eq!(
            valid.is_ok(),
            expected_valid(&f),
            "validate() says {valid:?} for {f:?}"
        );
        let pushed = b.push(&f);
        if valid.is_err() {
            assert!(pushed.is_err(), "PacketBuilder took an invalid frame {f:?}");
        }
    }
    let _ = Packet::decode(b.finish());
    if all.len() + 4 <= MAX_RECV_DATAGRAM {
        let _ = Packet::decode(with_trailer(&all));
    }
});
