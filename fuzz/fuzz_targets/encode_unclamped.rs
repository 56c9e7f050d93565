//! Frames with field values as a buggy caller (or a frame built from
//! untrusted sizes) might hand the encoder: tern-core's valid `Arbitrary`
//! frames bent by `tern_fuzz::unchecked` (lengths past the protocol limits,
//! zero where the decoder wants non-zero, ACK ranges out of order, touching,
//! overlapping or at the top of the varint range, more than 32 of them).
//! Numbers stay within the varint range: `varint::put` debug-asserts that.
//!
//! Properties:
//! - `validate()` accepts exactly the frames the protocol allows
//!   (`tern_fuzz::unchecked::expected_valid`: bounded lengths, ACK ranges with
//!   the first at `cumulative + 1` or later, each later one at
//!   `previous end + 2` or later, `end >= start`, computed without wrapping);
//! - `encoded_len()` and `encode()` never panic, on any frame (their docs say
//!   over-long frames are written and left for the peer to reject), and agree
//!   on the size;
//! - `PacketBuilder::push` never panics and refuses every invalid frame;
//! - decoding whatever was encoded never panics.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tern_core::wire::limits::MAX_RECV_DATAGRAM;
use tern_core::wire::{Header, Packet, PacketBuilder, TRAILER};
use tern_fuzz::unchecked::{expected_valid, Unchecked};
use tern_fuzz::with_trailer;

#[derive(Arbitrary, Debug)]
struct Input {
    frames: Vec<Unchecked>,
}

fuzz_target!(|input: Input| {
    let header = Header {
        session_id: 1,
        packet_number: 1,
        version: tern_core::wire::VERSION,
    };
    let mut b = PacketBuilder::new(header, MAX_RECV_DATAGRAM);
    let mut all = BytesMut::new();
    header.encode(&mut all);
    for m in &input.frames {
        let f = m.frame();
        let len = f.encoded_len();
        let mut enc = Vec::new();
        f.encode(&mut enc);
        assert_eq!(
            enc.len(),
            len,
            "encoded_len disagrees with encode for {f:?}"
        );
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
    if all.len() + TRAILER <= MAX_RECV_DATAGRAM {
        let _ = Packet::decode(with_trailer(&all));
    }
});
