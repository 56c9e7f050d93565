//! Writes the seed corpus of `decode_packet`: one valid packet per file,
//! *without* its CRC-32 trailer (the target appends the right trailer to its
//! input so that mutations get past the checksum to the frame decoder).
//!
//! ```sh
//! cd fuzz && cargo run --example gen_seeds            # into fuzz/seeds/decode_packet
//! cd fuzz && cargo run --example gen_seeds -- OUTDIR
//! ```
//! Each packet is checked to decode back to itself before it is written.

use std::path::PathBuf;

use tern_core::wire::{Packet, TRAILER};

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/decode_packet"));
    std::fs::create_dir_all(&dir)?;
    for (name, packet) in tern_fuzz::samples::packets() {
        let bytes = packet.encode();
        let back = Packet::decode(bytes.clone()).expect("sample packet must decode");
        assert_eq!(back, packet, "sample {name} does not round-trip");
        let body = &bytes[..bytes.len() - TRAILER];
        assert_eq!(tern_fuzz::with_trailer(body), bytes, "trailer of {name}");
        let path = dir.join(format!("{name}.bin"));
        std::fs::write(&path, body)?;
        println!("{} ({} bytes)", path.display(), body.len());
    }
    Ok(())
}
