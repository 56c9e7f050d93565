//! The sealed-packet vector of `proto-spec/sealed.md`: a clear packet sealed
//! under a fixed key must give exactly the bytes the spec shows, and those
//! bytes must open to the same packet.

use bytes::Bytes;
use tern_core::seal::{Channel, OpenError};
use tern_core::wire::{Frame, Header, Packet, PacketBuilder};

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto-spec/sealed.md");

fn key(byte0: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = byte0.wrapping_add(i as u8);
    }
    k
}

/// The hex block that follows the heading `### name`.
fn vector(name: &str) -> Vec<u8> {
    let md = std::fs::read_to_string(SPEC).unwrap_or_else(|e| panic!("{SPEC}: {e}"));
    let start = md
        .find(&format!("### {name}\n"))
        .unwrap_or_else(|| panic!("vector {name} missing from {SPEC}"));
    let block = &md[start..];
    let open = block.find("```hex\n").expect("hex block") + 7;
    let close = open + block[open..].find("```").expect("closed hex block");
    let digits: String = block[open..close]
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn clear_packet() -> Bytes {
    let mut pb = PacketBuilder::new(
        Header {
            session_id: 0x3f8e_2c91_d4a7_b615,
            packet_number: 7,
            version: tern_core::wire::VERSION,
        },
        1200,
    );
    pb.push(&Frame::Heartbeat(5)).unwrap();
    pb.finish()
}

#[test]
fn sealed_heartbeat_matches_the_spec() {
    // Client side: sends under the client-to-server key.
    let client = Channel::new(key(0x00), key(0x80));
    let sealed = client.seal(&clear_packet());
    if std::env::var_os("TERN_PRINT_VECTORS").is_some() {
        println!("{}", hex(&sealed));
    }
    assert_eq!(hex(&sealed), hex(&vector("sealed_heartbeat")));
    let mut server = Channel::new(key(0x80), key(0x00));
    assert_eq!(
        server.open(&sealed).unwrap(),
        Packet::decode(clear_packet()).unwrap()
    );
    assert!(matches!(server.open(&sealed), Err(OpenError::Replay(_))));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn handshake_datagram_is_padded_to_256_bytes_trailer_included() {
    // sealed.md, message 1: the whole datagram, CRC-32 trailer included, is
    // at least 256 bytes; a short token leaves it at exactly 256.
    use tern_core::client::{ClientConfig, ClientConn};
    use tern_core::seal::StaticKey;
    use tern_core::time::Time;

    let mut cfg = ClientConfig::new(Bytes::from_static(b"short token"));
    cfg.server_key = Some(StaticKey::from_secret([9; 32]).public());
    let mut conn = ClientConn::new(cfg, Time::ZERO, 1);
    let datagram = conn.poll_transmit(Time::ZERO).expect("a HANDSHAKE packet");
    assert_eq!(datagram.len(), 256);
    let packet = Packet::decode(datagram).expect("a clear packet with a valid trailer");
    assert!(matches!(packet.frames[0], Frame::Handshake(_)));
    assert!(matches!(packet.frames[1..], [Frame::Padding(_)]));
}
