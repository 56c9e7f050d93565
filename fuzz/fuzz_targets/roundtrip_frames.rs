//! Structured frames (tern-core's `Arbitrary` frames, within the protocol
//! limits) through the encoder and back.
//!
//! Properties, for every frame:
//! - `validate()` accepts it;
//! - `encoded_len()` is the size `encode()` writes;
//! - decode(encode(f)) == f and consumes exactly the encoding;
//! - every strict prefix of the encoding fails to decode with `Incomplete`
//!   (a prefix of a padding run is a shorter padding run);
//!
//! and for the whole packet:
//! - decode(encode(packet)) == packet (adjacent padding runs merged), and the
//!   encoding is header + frames + the CRC-32 of both;
//! - the datagram cut short anywhere fails (checksum or incomplete); the
//!   body cut short anywhere, behind a correct trailer, either fails with
//!   `Incomplete` or decodes to frames whose encoding is exactly that prefix
//!   (a cut at a frame boundary);
//! - `PacketBuilder` never writes past its limit, refuses exactly the frames
//!   that do not fit, accounts `remaining()` exactly, pads as asked, and what
//!   it builds decodes to the frames it accepted; `push_encoded` of each
//!   frame's bytes builds the same datagram as `push`.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tern_core::wire::limits::{MAX_DATAGRAM, MAX_RECV_DATAGRAM};
use tern_core::wire::{
    encode_to_bytes, DecodeError, EncodeError, Frame, Header, Packet, PacketBuilder, Reader,
    TRAILER,
};
use tern_fuzz::{hex, normalize, with_trailer};

#[derive(Arbitrary, Debug)]
struct Input {
    header: Header,
    /// Builder limit (taken modulo MAX_RECV_DATAGRAM + 1).
    limit: u16,
    /// `pad_to` argument for the builder.
    pad_to: u16,
    frames: Vec<Frame>,
}

fn check_frame(f: &Frame) {
    if let Err(e) = f.validate() {
        panic!("validate() refused a generated frame: {e}: {f:?}");
    }
    let enc = encode_to_bytes(f);
    assert_eq!(enc.len(), f.encoded_len(), "encoded_len of {f:?}");

    let mut r = Reader::new(enc.clone());
    let back = Frame::decode(&mut r)
        .unwrap_or_else(|e| panic!("decode of {} ({f:?}) failed: {e}", hex(&enc)));
    assert_eq!(&back, f, "frame round trip of {}", hex(&enc));
    assert!(r.is_empty(), "{} bytes left after {f:?}", r.remaining());

    // Every cut; for a padding run (up to 1500 zero bytes, each prefix of
    // which decodes in linear time) only the interesting ones.
    let cuts: Vec<usize> = match f {
        Frame::Padding(_) => [0, 1, enc.len() / 2, enc.len() - 1]
            .into_iter()
            .filter(|&c| c < enc.len())
            .collect(),
        _ => (0..enc.len()).collect(),
    };
    for cut in cuts {
        let mut r = Reader::new(enc.slice(..cut));
        let got = Frame::decode(&mut r);
        match (f, got) {
            (Frame::Padding(_), Ok(Frame::Padding(n))) if cut > 0 => assert_eq!(n, cut),
            (_, Err(e)) if e.is_incomplete() => {}
            (_, other) => panic!(
                "prefix {cut}/{} of {f:?} ({}) gave {other:?}, not Incomplete",
                enc.len(),
                hex(&enc)
            ),
        }
    }
}

fn check_packet_prefixes(enc: &Bytes) {
    let body = enc.slice(..enc.len() - TRAILER);
    // Every cut for small packets, a spread of cuts for large ones.
    let step = (body.len() / 64).max(1);
    let mut cut = 0;
    while cut <= body.len() {
        // The datagram itself, cut: never accepted.
        if let Ok(p) = Packet::decode(enc.slice(..cut)) {
            panic!("datagram cut at {cut} of {} still decodes: {p:?}", hex(enc));
        }
        // The body cut, behind a fresh trailer.
        let dg = with_trailer(&body[..cut]);
        match Packet::decode(dg.clone()) {
            Ok(p) => assert_eq!(
                p.encode(),
                dg,
                "body prefix {cut} decoded to frames that are not that prefix"
            ),
            Err(DecodeError::Incomplete { .. }) => {}
            // An empty body: the trailer's first byte is read as the version.
            Err(_) if cut == 0 => {}
            Err(e) => panic!("body prefix {cut} of {}: {e}", hex(enc)),
        }
        cut += if cut + step > body.len() && cut < body.len() {
            body.len() - cut
        } else {
            step
        };
    }
}

fuzz_target!(|input: Input| {
    let Input {
        header,
        limit,
        pad_to,
        frames,
    } = input;
    for f in &frames {
        check_frame(f);
    }

    // A version 1 packet cannot carry version 2 frames: its decoder calls
    // them unknown, and the builder refuses them (checked below).
    if let Some(f) = frames.iter().find(|f| f.min_version() > header.version) {
        let enc = Packet {
            header,
            frames: vec![f.clone()],
        }
        .encode();
        if enc.len() <= MAX_RECV_DATAGRAM {
            assert!(
                matches!(Packet::decode(enc.clone()), Err(DecodeError::UnknownFrame(_))),
                "a version {} packet decoded a version {} frame: {}",
                header.version,
                f.min_version(),
                hex(&enc)
            );
        }
    }
    let (frames, too_new): (Vec<Frame>, Vec<Frame>) = frames
        .into_iter()
        .partition(|f| f.min_version() <= header.version);

    // The whole packet.
    let packet = Packet {
        header,
        frames: frames.clone(),
    };
    let enc = packet.encode();
    let body_len = header.len() + frames.iter().map(Frame::encoded_len).sum::<usize>();
    assert_eq!(enc.len(), body_len + TRAILER);
    assert_eq!(
        enc,
        with_trailer(&enc[..body_len]),
        "trailer is not the CRC-32 of the body"
    );
    if enc.len() <= MAX_RECV_DATAGRAM {
        let back = Packet::decode(enc.clone())
            .unwrap_or_else(|e| panic!("packet decode failed: {e}: {}", hex(&enc)));
        assert_eq!(back.header, header);
        assert_eq!(back.frames, normalize(&frames), "packet round trip");
        check_packet_prefixes(&enc);
    } else {
        assert!(matches!(
            Packet::decode(enc.clone()),
            Err(DecodeError::TooLong { .. })
        ));
    }

    // The builder.
    let limit = usize::from(limit) % (MAX_RECV_DATAGRAM + 1);
    let mut b = PacketBuilder::new(header, limit);
    let mut b2 = PacketBuilder::new(header, limit);
    assert!(b.is_empty());
    for f in &too_new {
        assert!(
            matches!(b.push(f), Err(EncodeError::WrongVersion { .. })),
            "the builder put a version {} frame in a version {} packet",
            f.min_version(),
            header.version
        );
    }
    let mut accepted = Vec::new();
    // Datagram length so far, trailer included.
    let mut len = header.len() + TRAILER;
    for f in &frames {
        let before = b.remaining();
        assert_eq!(before, limit.saturating_sub(len));
        let pushed_encoded = b2.push_encoded(&encode_to_bytes(f));
        let pushed = b.push(f);
        assert_eq!(
            pushed.is_ok(),
            pushed_encoded.is_ok(),
            "push vs push_encoded of {f:?}"
        );
        assert_eq!(b.remaining(), b2.remaining());
        match pushed {
            Ok(()) => {
                len += f.encoded_len();
                assert!(len <= limit, "builder went past its limit {limit}: {len}");
                assert_eq!(b.remaining(), before - f.encoded_len());
                assert!(!b.is_empty());
                accepted.push(f.clone());
            }
            Err(EncodeError::NoRoom { needed, remaining }) => {
                assert_eq!(needed, f.encoded_len());
                assert_eq!(remaining, before);
                assert!(needed > remaining, "NoRoom with {needed} <= {remaining}");
                assert_eq!(b.remaining(), before, "a refused frame used space");
            }
            Err(e) => panic!("builder refused a valid frame: {e}: {f:?}"),
        }
    }
    let pad_to = usize::from(pad_to) % (MAX_DATAGRAM * 2);
    b.pad_to(pad_to);
    b2.pad_to(pad_to);
    let padded = len.max(pad_to.min(limit));
    if padded > len {
        accepted.push(Frame::Padding(padded - len));
    }
    let out = b.finish();
    assert_eq!(out, b2.finish(), "push_encoded built different bytes");
    assert_eq!(
        out.len(),
        padded,
        "builder output size (limit {limit}, pad_to {pad_to})"
    );
    assert!(out.len() <= limit.max(header.len() + TRAILER));
    let back = Packet::decode(out.clone())
        .unwrap_or_else(|e| panic!("builder output does not decode: {e}: {}", hex(&out)));
    assert_eq!(back.header, header);
    assert_eq!(
        back.frames,
        normalize(&accepted),
        "builder output round trip"
    );
});
