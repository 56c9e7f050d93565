//! Raw bytes from the network into the decoder.
//!
//! A datagram ends in a CRC-32 trailer, which random bytes almost never get
//! right. So the input is used twice:
//! - as the datagram itself (exercises the length and checksum checks);
//! - as a datagram *body*, with the correct trailer appended (exercises the
//!   header and frame decoders behind the checksum).
//!
//! Properties:
//! - `Packet::decode` never panics, whatever the bytes.
//! - Decoding the body by hand (`Reader` + `Header::decode` + `Frame::decode`)
//!   agrees with `Packet::decode` (same frames, or both fail).
//! - `Frame::decode` straight on the bytes (no header) never panics either.
//! - Every decoded frame passes `validate()` (the decoder enforces the limits
//!   the encoder checks) and its `encoded_len()` is its encoded size.
//! - Canonical round trip: decode(encode(p)) == p, and encode of that is
//!   byte-identical (the canonical form is a fixed point). The canonical
//!   encoding is never longer than the input (varints may be non-minimal on
//!   input, never on output), and its trailer is the CRC-32 of its body
//!   (checked against an independent CRC implementation).
//! - A `PacketBuilder` whose limit is exactly the canonical size accepts every
//!   frame and produces exactly the canonical bytes.
//! - Flipping any one bit of an accepted datagram makes it rejected.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tern_core::wire::limits::MAX_RECV_DATAGRAM;
use tern_core::wire::{
    encode_to_bytes, DecodeError, Frame, Header, Packet, PacketBuilder, Reader, TRAILER,
};
use tern_fuzz::{crc32, hex, with_trailer};

fn check_frame(f: &Frame, consumed: usize) {
    let enc = encode_to_bytes(f);
    assert_eq!(enc.len(), f.encoded_len(), "encoded_len of {f:?}");
    assert!(
        enc.len() <= consumed,
        "canonical encoding of {f:?} ({} bytes) longer than its input ({consumed})",
        enc.len()
    );
    if let Err(e) = f.validate() {
        panic!("decoded frame fails validate(): {e}: {f:?}");
    }
    let mut r = Reader::new(enc.clone());
    let back = Frame::decode(&mut r)
        .unwrap_or_else(|e| panic!("re-decoding {f:?} from {} failed: {e}", hex(&enc)));
    assert_eq!(&back, f, "frame round trip");
    assert!(r.is_empty(), "re-decoding {f:?} left {} bytes", r.remaining());
}

/// Frames decoded one by one from `r` until it is empty or an error.
fn frames_from(mut r: Reader) -> Result<Vec<Frame>, ()> {
    let mut frames = Vec::new();
    while !r.is_empty() {
        let before = r.remaining();
        match Frame::decode(&mut r) {
            Ok(f) => {
                let consumed = before - r.remaining();
                assert!(consumed >= 1, "Frame::decode consumed nothing");
                check_frame(&f, consumed);
                frames.push(f);
            }
            Err(_) => return Err(()),
        }
    }
    Ok(frames)
}

/// Checks a packet `Packet::decode` accepted from `datagram`.
fn check_packet(packet: &Packet, datagram: &Bytes) {
    assert!(packet.header.packet_number >= 1);
    let body = &datagram[..datagram.len() - TRAILER];
    assert_eq!(
        &datagram[body.len()..],
        crc32(body).to_be_bytes(),
        "accepted a datagram whose trailer is not the CRC-32 of its body"
    );

    let canonical = packet.encode();
    assert!(canonical.len() <= datagram.len(), "canonical encoding grew");
    assert_eq!(
        canonical.len(),
        packet.header.len() + packet.frames.iter().map(Frame::encoded_len).sum::<usize>() + TRAILER
    );
    let (cbody, ctrailer) = canonical.split_at(canonical.len() - TRAILER);
    assert_eq!(ctrailer, crc32(cbody).to_be_bytes(), "encode() wrote a wrong trailer");
    let again = Packet::decode(canonical.clone())
        .unwrap_or_else(|e| panic!("canonical re-encoding {} fails: {e}", hex(&canonical)));
    assert_eq!(&again, packet, "decode(encode(p)) != p");
    assert_eq!(again.encode(), canonical, "canonical encoding is not a fixed point");

    let mut b = PacketBuilder::new(packet.header, canonical.len());
    for f in &packet.frames {
        b.push(f)
            .unwrap_or_else(|e| panic!("PacketBuilder refused {f:?}: {e}"));
    }
    assert_eq!(b.remaining(), 0);
    assert_eq!(b.finish(), canonical);

    // CRC-32 detects every single-bit error.
    let bit = crc32(datagram) as usize % (datagram.len() * 8);
    let mut damaged = datagram.to_vec();
    damaged[bit / 8] ^= 1 << (bit % 8);
    match Packet::decode(damaged.into()) {
        Err(_) => {}
        Ok(p) => panic!("bit {bit} flipped and the datagram still decodes: {p:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);

    // Frames alone, as if the header had already been consumed.
    let _ = frames_from(Reader::new(input.clone()));

    // 1. The bytes as a datagram, as received.
    match Packet::decode(input.clone()) {
        Ok(p) => check_packet(&p, &input),
        // A datagram too long as a whole; a field too long inside one is
        // refused the same way (e.g. an extension frame's length).
        Err(DecodeError::TooLong {
            field: "datagram", ..
        }) => assert!(data.len() > MAX_RECV_DATAGRAM),
        Err(_) => {}
    }

    // 2. The bytes as a body behind a correct trailer.
    let datagram = with_trailer(data);
    let decoded = Packet::decode(datagram.clone());
    let by_hand = if datagram.len() > MAX_RECV_DATAGRAM {
        Err(())
    } else {
        let mut r = Reader::new(input.clone());
        match Header::decode(&mut r) {
            // A version 1 packet knows no version 2 frame type.
            Ok(h) => frames_from(r).and_then(|frames| {
                if frames.iter().any(|f| f.min_version() > h.version) {
                    Err(())
                } else {
                    Ok((h, frames))
                }
            }),
            Err(_) => Err(()),
        }
    };
    match (decoded, by_hand) {
        (Ok(p), Ok((h, frames))) => {
            assert_eq!(p.header, h);
            assert_eq!(p.frames, frames);
            check_packet(&p, &datagram);
        }
        (Err(e), Err(())) => assert!(
            !matches!(e, DecodeError::Checksum),
            "a correct trailer was reported as a checksum mismatch"
        ),
        (Ok(p), Err(())) => panic!("Packet::decode accepted what Frame::decode rejects: {p:?}"),
        (Err(e), Ok(_)) => panic!("Packet::decode rejected ({e}) what Frame::decode accepts"),
    }
});
