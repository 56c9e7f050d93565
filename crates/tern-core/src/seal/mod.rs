//! Sealed raw UDP: the handshake and per-packet encryption that make a raw
//! UDP port safe to expose (QUIC gets the same from TLS 1.3).
//!
//! - [`handshake`]: a Noise `NK` handshake (the client knows the server's
//!   static X25519 key, the server learns who the client is from the LOGIN
//!   token carried, encrypted, in the first message). One round trip; it
//!   rides on the LOGIN / LOGIN_OK exchange, so logging in costs nothing extra.
//! - [`channel`]: after it, every packet is sealed with ChaCha20-Poly1305
//!   under per-direction keys; the header is the associated data and the
//!   packet number the nonce, so tampering, truncation and forgery fail the
//!   tag, and a [`replay`] window drops copies.
//! - [`keys`]: static key pairs and their text form; [`entropy`]: where the
//!   ephemeral keys' randomness comes from (the driver's CSPRNG, or a seeded
//!   one in the simulator).
//!
//! The normative description is `proto-spec/sealed.md`.

pub mod channel;
pub mod entropy;
pub mod handshake;
pub mod keys;
pub mod replay;

pub use channel::{Channel, OpenError, SEAL_OVERHEAD};
pub use entropy::Entropy;
pub use handshake::{HandshakeError, Hello, Initiator, Responder};
pub use keys::{KeyParseError, PublicKey, StaticKey};
pub use replay::ReplayWindow;

/// The Noise protocol name: pattern NK, X25519, ChaCha20-Poly1305, BLAKE2s.
pub const NOISE_PARAMS: &str = "Noise_NK_25519_ChaChaPoly_BLAKE2s";
/// Start of the Noise prologue; the address-validation cookie (if any)
/// follows, so a handshake cannot be moved to another cookie.
pub const PROLOGUE: &[u8] = b"tern/1 sealed-udp";
/// Bytes of the Poly1305 tag at the end of a sealed packet.
pub const TAG_LEN: usize = 16;
/// Bytes of an X25519 public key (the ephemeral key opening each handshake message).
pub const KEY_LEN: usize = 32;
pub use crate::wire::FLAG_SEALED;
