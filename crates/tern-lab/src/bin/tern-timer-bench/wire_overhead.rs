//! Bytes on the wire for one 20-byte text message, measured on real encoded
//! datagrams and broken down field by field.

use bytes::Bytes;
use tern_core::wire::limits::MAX_DATAGRAM;
use tern_core::wire::varint;
use tern_core::wire::{
    Ack, Deliver, EntryBody, Frame, Header, Packet, PacketBuilder, Send, TRAILER,
};

use crate::tern_flow::TEXT;

/// Tern's overhead target for a 20-byte message (own bytes, no IP/UDP).
pub const TARGET_OVERHEAD: usize = 32;

fn datagram(header: Header, frame: &Frame) -> Bytes {
    let mut pb = PacketBuilder::new(header, MAX_DATAGRAM);
    pb.push(frame).expect("fits");
    let d = pb.finish();
    // Round-trip check: what we measure is what a peer accepts.
    let p = Packet::decode(d.clone()).expect("decodes");
    assert_eq!(p.frames, vec![frame.clone()]);
    d
}

struct Row {
    field: &'static str,
    value: String,
    bytes: usize,
}

fn row(field: &'static str, value: impl ToString, bytes: usize) -> Row {
    Row {
        field,
        value: value.to_string(),
        bytes,
    }
}

fn print_rows(title: &str, rows: &[Row], total: usize) -> usize {
    println!("  {title}");
    let sum: usize = rows.iter().map(|r| r.bytes).sum();
    assert_eq!(sum, total, "breakdown must add up to the encoded datagram");
    for r in rows {
        println!("    {:<28} {:>15}  {:>3} B", r.field, r.value, r.bytes);
    }
    let overhead = total - TEXT.len();
    println!("    {:<28} {:>15}  {:>3} B", "total datagram", "", total);
    println!(
        "    {:<28} {:>15}  {:>3} B   (target <= {TARGET_OVERHEAD} B: {})",
        "overhead (total - 20)",
        "",
        overhead,
        if overhead <= TARGET_OVERHEAD {
            "met"
        } else {
            "MISSED"
        }
    );
    overhead
}

fn header_rows(h: &Header) -> Vec<Row> {
    vec![
        row("header: version, flags", "1, 0", 2),
        row("header: session id (u64)", "random", 8),
        row(
            "header: packet number (vi)",
            h.packet_number,
            varint::len(h.packet_number),
        ),
    ]
}

pub struct Overheads {
    pub send: usize,
    pub send_wide_ids: usize,
    pub deliver: usize,
    pub ack_datagram: usize,
}

fn send_case(title: &str, seq: u64, to: u64, conv: u64) -> usize {
    let h = Header {
        session_id: 0x5EED_0F7E_2A11_0001,
        packet_number: 1000,
        version: tern_core::wire::VERSION,
    };
    let f = Frame::Send(Send {
        seq,
        to,
        conv,
        msg_type: 0,
        payload: Bytes::from_static(TEXT),
    });
    let d = datagram(h, &f);
    let mut rows = header_rows(&h);
    rows.extend([
        row("SEND: frame type", "0x10", 1),
        row("SEND: seq (vi)", seq, varint::len(seq)),
        row("SEND: to user (vi)", to, varint::len(to)),
        row("SEND: conv (vi)", conv, varint::len(conv)),
        row("SEND: msg_type (vi)", 0, 1),
        row("SEND: payload length (vi)", 20, 1),
        row("payload (UTF-8 text)", "20 bytes", 20),
        row("CRC-32 trailer", "", TRAILER),
    ]);
    print_rows(title, &rows, d.len())
}

pub fn run() -> Overheads {
    println!("== Wire overhead of one 20-byte text message (Tern's own bytes) ==");
    println!("  vi = QUIC-style varint: 1 B < 64, 2 B < 16384, 4 B < 2^30, else 8 B");
    let send = send_case(
        "client -> server: SEND (uplink seq 1000, to user 10^6, conv 10^9, packet number 1000)",
        1000,
        1_000_000,
        1_000_000_000,
    );
    println!();
    let send_wide_ids = send_case(
        "same, with ids >= 2^30 (to user 2^40, conv 2^40): 8-byte varints",
        1000,
        1 << 40,
        1 << 40,
    );
    println!();

    let h = Header {
        session_id: 0x5EED_0F7E_2A11_0002,
        packet_number: 1000,
        version: tern_core::wire::VERSION,
    };
    let time_ms = 1_700_000_000_000u64;
    let d = Deliver {
        seq: 1000,
        conv: 1_000_000_000,
        from_user: 1_000_001,
        from_device: 1,
        from_seq: 1000,
        time_ms,
        body: EntryBody::Message {
            msg_type: 0,
            payload: Bytes::from_static(TEXT),
        },
    };
    let dg = datagram(h, &Frame::Deliver(d.clone()));
    let mut rows = header_rows(&h);
    rows.extend([
        row("DELIVER: frame type", "0x11", 1),
        row("DELIVER: inbox seq (vi)", d.seq, varint::len(d.seq)),
        row("DELIVER: conv (vi)", d.conv, varint::len(d.conv)),
        row(
            "DELIVER: from user (vi)",
            d.from_user,
            varint::len(d.from_user),
        ),
        row("DELIVER: from device (vi)", d.from_device, 1),
        row(
            "DELIVER: from seq (vi)",
            d.from_seq,
            varint::len(d.from_seq),
        ),
        row(
            "DELIVER: time_ms (vi)",
            "1.7e12 (2023+)",
            varint::len(time_ms),
        ),
        row("DELIVER: body kind", "0 = message", 1),
        row("DELIVER: msg_type (vi)", 0, 1),
        row("DELIVER: payload length (vi)", 20, 1),
        row("payload (UTF-8 text)", "20 bytes", 20),
        row("CRC-32 trailer", "", TRAILER),
    ]);
    let deliver = print_rows(
        "server -> client: DELIVER (inbox seq 1000, from user 10^6+1, device 1, from seq 1000)",
        &rows,
        dg.len(),
    );
    println!();

    let ack = Frame::Ack(Ack {
        receiver_online: true,
        cumulative: 1000,
        delay_us: 2_000,
        ranges: vec![],
    });
    let ack_datagram = datagram(h, &ack).len();
    println!(
        "  an ACK-only datagram (cumulative 1000, delay 2 ms, no ranges): {ack_datagram} B \
         (header {} + ACK frame {} + CRC {TRAILER})",
        h.len(),
        ack.encoded_len()
    );
    println!(
        "  IPv4 + UDP headers add 28 B per datagram (IPv6 + UDP: 48 B); not counted in the target."
    );
    println!();
    Overheads {
        send,
        send_wide_ids,
        deliver,
        ack_datagram,
    }
}
