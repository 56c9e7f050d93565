//! Property tests of the wire codec: every frame round-trips, sizes are
//! exact, truncated and random input fails cleanly, and hostile length fields
//! are refused before anything is allocated for them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use tern_core::wire::limits::*;
use tern_core::wire::varint::MAX;
use tern_core::wire::{
    Ack, DecodeError, Deliver, EncodeError, EntryBody, Frame, Header, Packet, PacketBuilder,
    Reader, Send, TRAILER,
};

#[path = "common/proptest_seed.rs"]
mod proptest_seed;

#[path = "common/datagrams.rs"]
mod datagrams;
use datagrams::{damage_verdict, datagram, with_trailer, H};

// ---------------------------------------------------------------------------
// Allocation tracking: the largest single allocation made by this thread while
// tracking is on. Other test threads are not counted.

struct TrackingAlloc;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// Runs `f` and returns its result with the largest allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|m| m.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGEST.with(|m| m.get()))
}

// ---------------------------------------------------------------------------
// Values. Every wire value comes from tern-core's `arbitrary` feature, the
// same generator the fuzz targets use, so the protocol's limits are written
// down once (`wire::arb`): proptest draws random bytes, `Arbitrary`
// turns them into values within the limits (biased towards the varint
// length boundaries), and shrinking the bytes shrinks the value.

/// Random bytes enough for the largest frame (a 1024-byte payload and its
/// fields) with room to spare.
const FRAME_BYTES: usize = 2048;

/// Any `T` the `arbitrary` feature generates, from up to `max_bytes` random
/// bytes.
fn arb<T: for<'a> Arbitrary<'a> + std::fmt::Debug>(max_bytes: usize) -> impl Strategy<Value = T> {
    vec(any::<u8>(), 0..=max_bytes).prop_map(|b| {
        T::arbitrary(&mut Unstructured::new(&b)).expect("the wire generators never give up")
    })
}

/// Any varint value, as `wire::arb::varint` draws them.
fn varint() -> impl Strategy<Value = u64> {
    vec(any::<u8>(), 0..=16).prop_map(|b| {
        tern_core::wire::arb::varint(&mut Unstructured::new(&b)).expect("never gives up")
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    arb::<Frame>(FRAME_BYTES)
}

fn header() -> impl Strategy<Value = Header> {
    arb::<Header>(32)
}

/// Adjacent padding frames are one run of zero bytes on the wire and decode
/// as one frame: merge them so that the packet has a single encoding.
fn merge_padding(frames: Vec<Frame>) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::with_capacity(frames.len());
    for f in frames {
        match (out.last_mut(), &f) {
            (Some(Frame::Padding(a)), Frame::Padding(b)) => *a += b,
            _ => out.push(f),
        }
    }
    out
}

/// Any packet of up to 5 frames, possibly too large to be received.
fn any_packet() -> impl Strategy<Value = Packet> {
    (header(), vec(frame(), 0..6)).prop_map(|(header, frames)| Packet {
        header,
        // Frames of a later version than the header's are not this packet's.
        frames: merge_padding(
            frames
                .into_iter()
                .filter(|f| f.min_version() <= header.version)
                .collect(),
        ),
    })
}

/// A packet a sender could send (at most `MAX_DATAGRAM` bytes).
fn packet() -> impl Strategy<Value = Packet> {
    arb::<Packet>(2 * FRAME_BYTES)
}

fn encode_frame(f: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    f.encode(&mut out);
    out
}

fn decode_frame(b: &[u8]) -> (Result<Frame, DecodeError>, usize) {
    let mut r = Reader::new(Bytes::copy_from_slice(b));
    let f = Frame::decode(&mut r);
    (f, r.remaining())
}

// ---------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(proptest_seed::config(512))]

    #[test]
    fn every_frame_round_trips(f in frame()) {
        prop_assert_eq!(f.validate(), Ok(()));
        let bytes = encode_frame(&f);
        prop_assert_eq!(bytes.len(), f.encoded_len());
        let (decoded, left) = decode_frame(&bytes);
        prop_assert_eq!(decoded, Ok(f));
        prop_assert_eq!(left, 0);
    }

    #[test]
    fn generated_packets_round_trip_exactly(p in packet()) {
        // What `Arbitrary for Packet` promises the fuzz targets.
        let bytes = p.encode();
        prop_assert!(bytes.len() <= MAX_DATAGRAM);
        prop_assert_eq!(Packet::decode(bytes), Ok(p));
    }

    #[test]
    fn packets_of_several_frames_round_trip(p in any_packet()) {
        let bytes = p.encode();
        let expected_len =
            p.header.len() + p.frames.iter().map(Frame::encoded_len).sum::<usize>() + TRAILER;
        prop_assert_eq!(bytes.len(), expected_len);
        let decoded = Packet::decode(bytes.clone());
        if bytes.len() <= MAX_RECV_DATAGRAM {
            prop_assert_eq!(decoded, Ok(p.clone()));
        } else {
            prop_assert_eq!(decoded, Err(DecodeError::TooLong {
                field: "datagram",
                len: bytes.len() as u64,
                max: MAX_RECV_DATAGRAM,
            }));
        }
        // The builder produces the same bytes when everything fits.
        let mut b = PacketBuilder::new(p.header, 1 << 16);
        for f in &p.frames {
            prop_assert_eq!(b.push(f), Ok(()));
        }
        prop_assert_eq!(b.finish(), bytes);
    }

    #[test]
    fn builder_never_exceeds_its_limit(h in header(), frames in vec(frame(), 1..12)) {
        let mut b = PacketBuilder::new(h, MAX_DATAGRAM);
        let mut pushed = Vec::new();
        for f in frames {
            let before = b.remaining();
            match b.push(&f) {
                Ok(()) => {
                    prop_assert_eq!(before - b.remaining(), f.encoded_len());
                    pushed.push(f);
                }
                Err(EncodeError::WrongVersion { .. }) => prop_assert!(f.min_version() > h.version),
                Err(_) => prop_assert!(f.encoded_len() > before),
            }
        }
        let bytes = b.finish();
        prop_assert!(bytes.len() <= MAX_DATAGRAM);
        let decoded = Packet::decode(bytes).expect("a built packet decodes");
        prop_assert_eq!(decoded.frames, merge_padding(pushed));
    }

    #[test]
    fn every_strict_prefix_of_a_datagram_fails(p in packet()) {
        // A datagram cut short in transit loses its trailer: it is refused
        // as damaged (or as too short to hold a trailer), never misread.
        let bytes = p.encode();
        for cut in 0..bytes.len() {
            let got = Packet::decode(bytes.slice(..cut));
            if cut < TRAILER {
                prop_assert_eq!(got, Err(DecodeError::Incomplete { needed: TRAILER - cut }));
            } else {
                let body = &bytes[..cut - TRAILER];
                let trailer = u32::from_be_bytes(bytes[cut - TRAILER..cut].try_into().unwrap());
                if crc32fast::hash(body) != trailer {
                    prop_assert_eq!(got, Err(DecodeError::Checksum));
                } else {
                    // A 1 in 2^32 coincidence: then it must still not panic.
                    let _ = got;
                }
            }
        }
    }

    #[test]
    fn prefixes_behind_a_fresh_trailer_are_incomplete_or_frame_prefixes(p in packet()) {
        // The same cuts made by a buggy sender that puts a correct trailer
        // on what it has: the frame decoders must see the truncation and
        // say Incomplete.
        let full = p.encode();
        let body = &full[..full.len() - TRAILER];
        prop_assert!(full.len() <= MAX_RECV_DATAGRAM);
        let mut bounds = vec![p.header.len()];
        for f in &p.frames {
            bounds.push(bounds.last().unwrap() + f.encoded_len());
        }
        for cut in 0..body.len() {
            let got = Packet::decode(with_trailer(&body[..cut]));
            if cut == 0 {
                // Only the trailer is left, and its first byte is read as the version.
                prop_assert!(
                    matches!(got, Err(DecodeError::UnsupportedVersion(_) | DecodeError::Incomplete { .. })),
                    "empty body: {:?}", got
                );
                continue;
            }
            if cut < p.header.len() {
                match got {
                    Err(DecodeError::Incomplete { needed }) => {
                        prop_assert!(needed >= 1 && needed <= p.header.len() - cut)
                    }
                    other => prop_assert!(false, "header cut at {}: {:?}", cut, other),
                }
                continue;
            }
            // The frame the cut falls in (or just before).
            let i = bounds.iter().rposition(|b| *b <= cut).unwrap();
            let mut want: Vec<Frame> = p.frames[..i].to_vec();
            if bounds[i] == cut {
                prop_assert_eq!(got, Ok(Packet { header: p.header, frames: want }));
            } else if let Frame::Padding(_) = p.frames[i] {
                // A cut inside a run of padding leaves a shorter run.
                want.push(Frame::Padding(cut - bounds[i]));
                prop_assert_eq!(got, Ok(Packet { header: p.header, frames: want }));
            } else {
                match got {
                    Err(DecodeError::Incomplete { needed }) => {
                        prop_assert!(needed >= 1 && needed <= bounds[i + 1] - cut)
                    }
                    other => prop_assert!(false, "cut at {} inside {:?}: {:?}", cut, p.frames[i], other),
                }
            }
        }
    }

    #[test]
    fn single_frame_prefixes_behind_a_fresh_trailer_are_incomplete(
        h in header(),
        // Padding is left out (a prefix of a run is a shorter run); a filter
        // counts against the local limit of 65,536 rejects, not the global one.
        f in frame().prop_filter("not padding", |f| !matches!(f, Frame::Padding(_))),
    ) {
        // A frame travels in a packet of a version that defines it.
        let h = Header { version: h.version.max(f.min_version()), ..h };
        let p = Packet { header: h, frames: vec![f] };
        let full = p.encode();
        prop_assert!(full.len() <= MAX_RECV_DATAGRAM);
        let body = &full[..full.len() - TRAILER];
        for cut in 0..body.len() {
            let got = Packet::decode(with_trailer(&body[..cut]));
            if cut == 0 {
                // Only the trailer is left, and its first byte is read as the version.
                prop_assert!(
                    matches!(got, Err(DecodeError::UnsupportedVersion(_) | DecodeError::Incomplete { .. })),
                    "empty body: {:?}", got
                );
            } else if cut == h.len() {
                // The header alone is a valid, empty packet.
                prop_assert_eq!(got, Ok(Packet { header: h, frames: vec![] }));
            } else {
                prop_assert!(
                    matches!(got, Err(DecodeError::Incomplete { .. })),
                    "cut at {}: {:?}", cut, got
                );
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(b in vec(any::<u8>(), 0..1600)) {
        let _ = Packet::decode(Bytes::from(b));
    }

    #[test]
    fn random_frames_never_panic_and_decode_canonically(
        h in header(),
        body in vec(any::<u8>(), 0..400),
    ) {
        // Behind a valid header, random bytes reach the frame decoders.
        let bytes = datagram(h, &body);
        if let Ok(p) = Packet::decode(bytes.clone()) {
            // Whatever decodes re-encodes (minimally) to something that decodes
            // to the same packet and is no longer than the input.
            let again = p.encode();
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(Packet::decode(again), Ok(p));
        }
    }

    #[test]
    fn mutated_packets_never_panic(
        p in packet(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let full = p.encode();
        let mut body = full[..full.len() - TRAILER].to_vec();
        let mut raw = full.to_vec();
        for (at, value) in flips {
            let i = at.index(body.len());
            let changed = body[i] != value;
            body[i] = value;
            raw[i] = value;
            // Damage in transit is caught by the trailer, unless it hits one
            // of the two bytes read before the trailer (packet.md
            // "Decoding"): a version this side does not speak, or flags of exactly 0x01,
            // which mark a sealed packet (a tag, no trailer).
            if changed && crc32fast::hash(&raw[..body.len()]) != crc32fast::hash(&full[..body.len()]) {
                prop_assert_eq!(Packet::decode(Bytes::from(raw.clone())), Err(damage_verdict(&raw)));
            }
        }
        // Behind a fresh trailer the damage reaches the frame decoders: no
        // panic, and whatever decodes re-encodes to the same packet.
        if let Ok(q) = Packet::decode(with_trailer(&body)) {
            prop_assert_eq!(Packet::decode(q.encode()), Ok(q));
        }
    }

    #[test]
    fn claimed_lengths_are_checked_before_reading(
        which in 0usize..6,
        claimed in prop_oneof![1u64..2048, varint().prop_map(|v| v.max(1))],
        present in any::<prop::sample::Index>(),
    ) {
        // A length-prefixed field claiming `claimed` bytes with only `present`
        // (fewer, at most 63) bytes actually there. Drawn below `claimed`
        // rather than filtered: rejected cases count against proptest's
        // global limit of 1024, which a long exploration run reaches.
        let present = present.index(claimed.min(64) as usize);
        let (prefix, max): (&[u8], usize) = match which {
            0 => (&[0x01], MAX_TOKEN),                          // LOGIN token
            1 => (&[0x10, 0x01, 0x02, 0x03, 0x00], MAX_PAYLOAD), // SEND payload
            2 => (&[0x11, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x00, 0x00], MAX_PAYLOAD), // DELIVER payload
            3 => (&[0x31, 0x01, 0x10, 0x00], MAX_REASON),       // ERROR reason
            4 => (&[0x23, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], MAX_PREVIEW), // preview head
            _ => (&[0x7f], MAX_EXTENSION),                      // extension body
        };
        let mut body = prefix.to_vec();
        tern_core::wire::varint::put(&mut body, claimed);
        body.extend(std::iter::repeat_n(0x61, present));
        let (got, largest) = largest_allocation(|| Packet::decode(datagram(H, &body)));
        if claimed > max as u64 {
            prop_assert!(
                matches!(got, Err(DecodeError::TooLong { len, max: m, .. }) if len == claimed && m == max),
                "{:?}", got
            );
        } else {
            prop_assert_eq!(got, Err(DecodeError::Incomplete { needed: claimed as usize - present }));
        }
        prop_assert!(largest < 1024, "decode allocated {} bytes", largest);
    }
}

// ---------------------------------------------------------------------------
// Fixed cases.

#[test]
fn huge_counts_and_lengths_are_refused_without_allocating() {
    let max8 = [0xff; 8]; // varint 2^62 - 1
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            [&[0x12, 0x00, 0x00, 0x00][..], &max8].concat(),
            DecodeError::TooLong {
                field: "ack ranges",
                len: MAX,
                max: MAX_ACK_RANGES,
            },
        ),
        (
            vec![0x12, 0x00, 0x00, 0x00, 0x20],
            DecodeError::Incomplete { needed: 1 },
        ),
        (
            vec![0x23, 0, 0, 0, 0, 0, 0, 0xff],
            DecodeError::TooLong {
                field: "previews",
                len: 255,
                max: MAX_PREVIEWS,
            },
        ),
        (
            vec![0x23, 0, 0, 0, 0, 0, 0, 8],
            DecodeError::Incomplete { needed: 1 },
        ),
        (
            [&[0x01][..], &max8].concat(),
            DecodeError::TooLong {
                field: "token",
                len: MAX,
                max: MAX_TOKEN,
            },
        ),
        (
            [&[0x31, 0x01, 0x00, 0x00][..], &max8].concat(),
            DecodeError::TooLong {
                field: "reason",
                len: MAX,
                max: MAX_REASON,
            },
        ),
        (
            [&[0x41][..], &max8].concat(),
            DecodeError::TooLong {
                field: "extension",
                len: MAX,
                max: MAX_EXTENSION,
            },
        ),
        (
            [&[0x40][..], &max8].concat(),
            DecodeError::TooLong {
                field: "address_token",
                len: MAX,
                max: MAX_COOKIE,
            },
        ),
    ];
    for (body, want) in cases {
        let (got, largest) = largest_allocation(|| Packet::decode(datagram(H, &body)));
        assert_eq!(got, Err(want), "body {body:02x?}");
        assert!(
            largest < 1024,
            "body {body:02x?}: allocated {largest} bytes"
        );
    }
}

#[test]
fn largest_frames_fit_in_a_datagram() {
    // A SEND and a DELIVER with every field at its widest still fit in
    // MAX_DATAGRAM, header included.
    let header = Header {
        session_id: u64::MAX,
        packet_number: MAX,
        version: tern_core::wire::VERSION,
    };
    let payload = Bytes::from(vec![0u8; MAX_PAYLOAD]);
    let send = Frame::Send(Send {
        seq: MAX,
        to: MAX,
        conv: MAX,
        msg_type: MAX,
        payload: payload.clone(),
    });
    let deliver = Frame::Deliver(Deliver {
        seq: MAX,
        conv: MAX,
        from_user: MAX,
        from_device: u32::MAX,
        from_seq: MAX,
        time_ms: MAX,
        body: EntryBody::Message {
            msg_type: MAX,
            payload,
        },
    });
    for f in [send, deliver] {
        let mut b = PacketBuilder::new(header, MAX_DATAGRAM);
        assert_eq!(b.push(&f), Ok(()));
        assert!(b.finish().len() <= MAX_DATAGRAM);
    }
}

#[test]
fn invalid_ack_ranges_are_refused_by_validate() {
    let bad = [
        (10, vec![(10, 12)]),           // starts at or below cumulative
        (10, vec![(11, 12), (13, 14)]), // touches the previous range
        (10, vec![(15, 14)]),           // end before start
        (10, vec![(20, 21), (12, 13)]), // not ascending
        (10, vec![(11, MAX + 1)]),      // beyond the varint range
    ];
    for (cumulative, ranges) in bad {
        let f = Frame::Ack(Ack {
            receiver_online: false,
            cumulative,
            delay_us: 0,
            ranges: ranges.clone(),
        });
        assert!(f.validate().is_err(), "{ranges:?} accepted");
    }
    let too_many = Frame::Ack(Ack {
        receiver_online: false,
        cumulative: 0,
        delay_us: 0,
        ranges: (0..=MAX_ACK_RANGES as u64)
            .map(|i| (1 + 3 * i, 1 + 3 * i))
            .collect(),
    });
    assert!(too_many.validate().is_err());
}

#[test]
fn allocation_tracker_sees_allocations() {
    // The bound checked above means something only if the tracker works.
    let (v, largest) = largest_allocation(|| vec![1u8; 4096]);
    assert_eq!(v.len(), 4096);
    assert!(largest >= 4096);
}
