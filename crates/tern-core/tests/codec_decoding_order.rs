//! The order in which a datagram is judged (proto-spec/packet.md,
//! "Decoding"): the version byte, then the sealed flag, then the CRC-32
//! trailer, then the header and frames; and the size limit, read exactly.

use bytes::Bytes;
use tern_core::wire::limits::*;
use tern_core::wire::{DecodeError, Frame, Header, Packet, FLAG_SEALED, TRAILER};

#[path = "common/datagrams.rs"]
mod datagrams;
use datagrams::{damage_verdict, datagram, with_trailer, H};

#[test]
fn version_then_sealed_flag_then_trailer() {
    // packet.md "Decoding": the version byte, then the sealed flag, are read
    // before the trailer; any other flags value is judged with the header,
    // after the trailer.
    let clear = Packet {
        header: H,
        frames: vec![Frame::Heartbeat(5)],
    }
    .encode();
    let with_byte = |i: usize, v: u8, fix_trailer: bool| {
        let mut d = clear.to_vec();
        d[i] = v;
        if fix_trailer {
            with_trailer(&d[..d.len() - TRAILER])
        } else {
            Bytes::from(d)
        }
    };
    for fix in [false, true] {
        assert_eq!(
            Packet::decode(with_byte(1, FLAG_SEALED, fix)),
            Err(DecodeError::Sealed)
        );
        assert_eq!(
            Packet::decode(with_byte(0, 3, fix)),
            Err(DecodeError::UnsupportedVersion(3))
        );
    }
    assert_eq!(
        Packet::decode(with_byte(1, 0x02, false)),
        Err(DecodeError::Checksum)
    );
    assert_eq!(
        Packet::decode(with_byte(1, 0x02, true)),
        Err(DecodeError::InvalidValue { field: "flags" })
    );
    // The flag needs only byte 1: too short for a trailer, still sealed.
    assert_eq!(
        Packet::decode(Bytes::from_static(&[1, FLAG_SEALED])),
        Err(DecodeError::Sealed)
    );
    assert_eq!(
        Packet::decode(Bytes::from_static(&[1])),
        Err(DecodeError::Incomplete { needed: 3 })
    );
}

#[test]
fn a_bit_flip_that_sets_the_sealed_flag_is_sealed_not_checksum() {
    // The input that made `mutated_packets_never_panic` fail about one run in
    // eight (issue 10, item 1): an empty packet whose flags byte became 0x01.
    let mut d = Packet {
        header: Header {
            session_id: 0,
            packet_number: 1,
            version: tern_core::wire::VERSION,
        },
        frames: vec![],
    }
    .encode()
    .to_vec();
    d[1] = 1;
    assert_eq!(damage_verdict(&d), DecodeError::Sealed);
    assert_eq!(Packet::decode(Bytes::from(d)), Err(DecodeError::Sealed));
}

#[test]
fn oversized_datagrams_are_refused_unread() {
    let big = Bytes::from(vec![0u8; MAX_RECV_DATAGRAM + 1]);
    assert_eq!(
        Packet::decode(big),
        Err(DecodeError::TooLong {
            field: "datagram",
            len: MAX_RECV_DATAGRAM as u64 + 1,
            max: MAX_RECV_DATAGRAM,
        })
    );
    // Exactly the limit is read: a header, padding, the trailer.
    let pad = MAX_RECV_DATAGRAM - H.len() - TRAILER;
    let ok = datagram(H, &vec![0u8; pad]);
    assert_eq!(ok.len(), MAX_RECV_DATAGRAM);
    assert_eq!(
        Packet::decode(ok),
        Ok(Packet {
            header: H,
            frames: vec![Frame::Padding(pad)],
        })
    );
}
