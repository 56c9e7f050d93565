//! The Noise `NK` handshake that opens a sealed session, carried by the
//! LOGIN exchange (one round trip, nothing added to logging in).
//!
//! ```text
//! client → server  HANDSHAKE frame:       NK message 1 (-> e, es)
//!                  payload: client time (u64 ms) + LOGIN frame
//! server → client  HANDSHAKE_REPLY frame: NK message 2 (<- e, ee)
//!                  payload: session id (u64) + LOGIN_OK (and refusals)
//! ```
//!
//! The client must know the server's static public key: only that server
//! can read the LOGIN token, and only it can produce a reply the client
//! accepts, so a man in the middle learns nothing and can forge nothing.
//! The prologue binds the protocol name and the address-validation cookie.
//! The client time lets the server refuse a recorded message 1 replayed
//! later: a device's live session is only ever replaced by a newer handshake.

use bytes::{BufMut, Bytes, BytesMut};
use snow::HandshakeState;
use thiserror::Error;

use super::channel::Channel;
use super::entropy::Entropy;
use super::keys::{PublicKey, StaticKey};
use super::{KEY_LEN, NOISE_PARAMS, PROLOGUE, TAG_LEN};
use crate::wire::{DecodeError, Frame, Login, Reader};

/// Why a handshake message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The message is too short to be one.
    #[error("handshake message too short")]
    TooShort,
    /// Decryption failed: another server key, another cookie, or tampering.
    #[error("handshake message does not decrypt (wrong key, cookie or tampered)")]
    Decrypt,
    /// It decrypted, but the payload is not what the protocol puts there.
    #[error("handshake payload malformed: {0}")]
    Payload(#[from] DecodeError),
    /// The payload does not fit in a handshake message.
    #[error("handshake payload of {0} bytes is too large")]
    TooLarge(usize),
}

/// The client side, between sending message 1 and receiving message 2.
pub struct Initiator {
    hs: Box<HandshakeState>,
    /// Protocol version of the login (decodes the answer's frames).
    version: u8,
}

/// What the client said in message 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The client's clock (Unix ms) when it started this handshake.
    pub client_time_ms: u64,
    /// The LOGIN it carries.
    pub login: Login,
    /// The client's ephemeral public key: identifies this handshake (a
    /// retransmitted message 1 repeats it).
    pub ephemeral: [u8; KEY_LEN],
}

/// The server side, between reading message 1 and writing message 2.
pub struct Responder {
    hs: Box<HandshakeState>,
}

/// What the server said in message 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The session id to put in every sealed packet.
    pub session_id: u64,
    /// The frames of the login answer (LOGIN_OK, refusals before it).
    pub frames: Vec<Frame>,
}

/// The prologue of protocol `version`: `tern/1 sealed-udp` (or `tern/2 …`),
/// then the cookie. Binding the version means an on-path attacker cannot
/// rewrite a HANDSHAKE packet's version byte without the handshake failing.
fn prologue(version: u8, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut p = PROLOGUE.to_vec();
    if version != crate::wire::VERSION {
        // "tern/1 sealed-udp" → "tern/2 sealed-udp"
        p[5] = b'0' + version;
    }
    p.extend_from_slice(cookie.unwrap_or_default());
    p
}

fn builder(entropy: &mut Entropy) -> snow::Builder<'static> {
    // A constant the tests exercise: it always parses.
    let params = NOISE_PARAMS.parse().expect("valid Noise parameters");
    snow::Builder::with_resolver(params, entropy.resolver())
}

/// Largest payload this module will put into a message.
const MAX_PAYLOAD: usize = 2048;

impl Initiator {
    /// Starts a handshake with the server whose static key is `server`,
    /// under `cookie` (the last RETRY's, if any). Returns message 1.
    pub fn start(
        entropy: &mut Entropy,
        server: &PublicKey,
        cookie: Option<&[u8]>,
        client_time_ms: u64,
        login: &Login,
        version: u8,
    ) -> Result<(Initiator, Bytes), HandshakeError> {
        let mut payload = BytesMut::new();
        payload.put_u64(client_time_ms);
        Frame::Login(login.clone()).encode(&mut payload);
        if payload.len() > MAX_PAYLOAD {
            return Err(HandshakeError::TooLarge(payload.len()));
        }
        let prologue = prologue(version, cookie);
        let mut hs = builder(entropy)
            .prologue(&prologue)
            .and_then(|b| b.remote_public_key(&server.0))
            .and_then(|b| b.build_initiator())
            .map_err(|_| HandshakeError::Decrypt)?;
        let mut msg = vec![0u8; KEY_LEN + payload.len() + TAG_LEN];
        let n = hs
            .write_message(&payload, &mut msg)
            .map_err(|_| HandshakeError::Decrypt)?;
        msg.truncate(n);
        Ok((
            Initiator {
                hs: Box::new(hs),
                version,
            },
            Bytes::from(msg),
        ))
    }

    /// Reads message 2: the server's welcome and the session's keys.
    pub fn finish(mut self, msg2: &[u8]) -> Result<(Welcome, Channel), HandshakeError> {
        if msg2.len() < KEY_LEN + TAG_LEN + 8 {
            return Err(HandshakeError::TooShort);
        }
        let mut payload = vec![0u8; msg2.len()];
        let n = self
            .hs
            .read_message(msg2, &mut payload)
            .map_err(|_| HandshakeError::Decrypt)?;
        payload.truncate(n);
        let mut r = Reader::new(Bytes::from(payload));
        let session_id = r.u64()?;
        let frames = crate::wire::decode_frames(&mut r, self.version)?;
        let (i2r, r2i) = self.hs.dangerously_get_raw_split();
        Ok((Welcome { session_id, frames }, Channel::new(i2r, r2i)))
    }
}

impl Responder {
    /// Reads message 1 with the server's static key, under the cookie the
    /// packet carried in the clear.
    pub fn accept(
        entropy: &mut Entropy,
        key: &StaticKey,
        cookie: Option<&[u8]>,
        msg1: &[u8],
        version: u8,
    ) -> Result<(Responder, Hello), HandshakeError> {
        if msg1.len() < KEY_LEN + TAG_LEN + 8 {
            return Err(HandshakeError::TooShort);
        }
        let prologue = prologue(version, cookie);
        let mut hs = builder(entropy)
            .prologue(&prologue)
            .and_then(|b| b.local_private_key(key.secret()))
            .and_then(|b| b.build_responder())
            .map_err(|_| HandshakeError::Decrypt)?;
        let mut payload = vec![0u8; msg1.len()];
        let n = hs
            .read_message(msg1, &mut payload)
            .map_err(|_| HandshakeError::Decrypt)?;
        payload.truncate(n);
        let mut r = Reader::new(Bytes::from(payload));
        let client_time_ms = r.u64()?;
        let login = match Frame::decode(&mut r)? {
            Frame::Login(l) => l,
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "handshake payload",
                }
                .into())
            }
        };
        if !r.is_empty() {
            return Err(DecodeError::InvalidValue {
                field: "handshake payload",
            }
            .into());
        }
        let mut ephemeral = [0u8; KEY_LEN];
        ephemeral.copy_from_slice(&msg1[..KEY_LEN]);
        Ok((
            Responder { hs: Box::new(hs) },
            Hello {
                client_time_ms,
                login,
                ephemeral,
            },
        ))
    }

    /// Writes message 2 carrying `session_id` and the already encoded
    /// login-answer `frames`; returns it with the session's keys.
    pub fn reply(
        mut self,
        session_id: u64,
        frames: &[u8],
    ) -> Result<(Bytes, Channel), HandshakeError> {
        let mut payload = BytesMut::with_capacity(8 + frames.len());
        payload.put_u64(session_id);
        payload.extend_from_slice(frames);
        if payload.len() > MAX_PAYLOAD {
            return Err(HandshakeError::TooLarge(payload.len()));
        }
        let mut msg = vec![0u8; KEY_LEN + payload.len() + TAG_LEN];
        let n = self
            .hs
            .write_message(&payload, &mut msg)
            .map_err(|_| HandshakeError::Decrypt)?;
        msg.truncate(n);
        let (i2r, r2i) = self.hs.dangerously_get_raw_split();
        Ok((Bytes::from(msg), Channel::new(r2i, i2r)))
    }
}

/// Bytes a handshake adds around its payload (ephemeral key and tag).
pub const OVERHEAD: usize = KEY_LEN + TAG_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Header, LoginOk, Packet, PacketBuilder};

    fn login() -> Login {
        Login {
            token: Bytes::from_static(b"token-bytes"),
            epoch: 3,
            checkpoint: 9,
        }
    }

    fn ok() -> Frame {
        Frame::LoginOk(LoginOk {
            user: 1,
            device: 2,
            epoch: 3,
            head: 4,
            checkpoint: 5,
            next_send_seq: 6,
            heartbeat_ms: 15_000,
            idle_timeout_ms: 45_000,
            server_time_ms: 1,
        })
    }

    #[test]
    fn both_sides_agree_and_packets_flow_both_ways() {
        let server = StaticKey::from_secret([1; 32]);
        let (mut ce, mut se) = (Entropy::from_test_seed(1), Entropy::from_test_seed(2));
        let (init, m1) =
            Initiator::start(&mut ce, &server.public(), Some(b"cookie"), 77, &login(), 1).unwrap();
        let (resp, hello) = Responder::accept(&mut se, &server, Some(b"cookie"), &m1, 1).unwrap();
        assert_eq!(hello.login, login());
        assert_eq!(hello.client_time_ms, 77);
        assert_eq!(&hello.ephemeral[..], &m1[..32]);
        let (m2, mut s_ch) = resp
            .reply(42, &crate::wire::encode_to_bytes(&ok()))
            .unwrap();
        let (welcome, mut c_ch) = init.finish(&m2).unwrap();
        assert_eq!(
            welcome,
            Welcome {
                session_id: 42,
                frames: vec![ok()]
            }
        );

        let mut pb = PacketBuilder::new(
            Header {
                session_id: 42,
                packet_number: 1,
                version: crate::wire::VERSION,
            },
            1200,
        );
        pb.push(&Frame::Heartbeat(5)).unwrap();
        let clear = pb.finish();
        let sealed = c_ch.seal(&clear);
        let opened = s_ch.open(&sealed).unwrap();
        assert_eq!(opened, Packet::decode(clear.clone()).unwrap());
        // And back.
        let sealed = s_ch.seal(&clear);
        assert_eq!(c_ch.open(&sealed).unwrap(), Packet::decode(clear).unwrap());
    }

    #[test]
    fn wrong_key_or_cookie_or_tampering_is_refused() {
        let server = StaticKey::from_secret([1; 32]);
        let other = StaticKey::from_secret([2; 32]);
        let mut e = Entropy::from_test_seed(3);
        let (_, m1) =
            Initiator::start(&mut e, &server.public(), Some(b"c1"), 1, &login(), 1).unwrap();
        let refused = |k: &StaticKey, c: Option<&[u8]>, m: &[u8]| {
            Responder::accept(&mut Entropy::from_test_seed(4), k, c, m, 1).err()
        };
        assert_eq!(
            refused(&other, Some(b"c1"), &m1),
            Some(HandshakeError::Decrypt)
        );
        assert_eq!(
            refused(&server, Some(b"c2"), &m1),
            Some(HandshakeError::Decrypt)
        );
        assert_eq!(refused(&server, None, &m1), Some(HandshakeError::Decrypt));
        for i in [0, 31, 32, m1.len() - 1] {
            let mut bad = m1.to_vec();
            bad[i] ^= 0x10;
            assert!(refused(&server, Some(b"c1"), &bad).is_some(), "flip at {i}");
        }
        assert_eq!(
            refused(&server, Some(b"c1"), &m1[..40]),
            Some(HandshakeError::TooShort)
        );
        assert!(refused(&server, Some(b"c1"), &m1[..m1.len() - 1]).is_some());
        assert!(refused(&server, Some(b"c1"), &m1).is_none());
    }

    #[test]
    fn a_reply_from_another_server_is_refused() {
        let server = StaticKey::from_secret([1; 32]);
        let imposter = StaticKey::from_secret([9; 32]);
        let mut e = Entropy::from_test_seed(5);
        let (init, m1) = Initiator::start(&mut e, &server.public(), None, 1, &login(), 1).unwrap();
        // The imposter cannot even read message 1; a reply built for a
        // different handshake does not verify either.
        assert!(Responder::accept(&mut e, &imposter, None, &m1, 1).is_err());
        let (_, m1b) = Initiator::start(&mut e, &imposter.public(), None, 1, &login(), 1).unwrap();
        let (resp, _) = Responder::accept(&mut e, &imposter, None, &m1b, 1).unwrap();
        let (m2, _) = resp.reply(1, &crate::wire::encode_to_bytes(&ok())).unwrap();
        assert_eq!(init.finish(&m2).err(), Some(HandshakeError::Decrypt));
    }
}
