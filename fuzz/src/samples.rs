//! Valid packets covering every frame type, used to seed `decode_packet`
//! (their bodies are written to `fuzz/seeds/decode_packet/` by
//! `examples/gen_seeds.rs`). They live in the one catalogue of hostile
//! datagrams, `tern_sim::hostile`, as the well-formed packets its hostile
//! datagrams are mutations of; the named hostile datagrams are offered here
//! too, as further seeds.

use bytes::Bytes;

pub use tern_sim::hostile::well_formed::packets;

/// The encoded sample packets.
pub fn encoded() -> Vec<(&'static str, Bytes)> {
    packets().into_iter().map(|(n, p)| (n, p.encode())).collect()
}

/// The catalogue's fixed hostile datagrams (trailers valid or not, as
/// named): forbidden headers, unknown frame types, frames before login.
pub fn hostile() -> Vec<(String, Bytes)> {
    use tern_sim::hostile as h;
    let mut out: Vec<(String, Bytes)> = h::forbidden_headers()
        .into_iter()
        .map(|d| (d.name, d.bytes.into()))
        .collect();
    for t in h::UNKNOWN_FRAME_TYPES {
        out.push((format!("frame type {t:#04x}"), h::unknown_frame(1, 24, t).into()));
    }
    for (name, frames) in h::frames_before_login(b"token") {
        out.push((format!("{name} before login"), h::packet(0, 1, frames).into()));
    }
    out
}
