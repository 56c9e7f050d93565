//! Whole datagrams: a header, frames, and a CRC-32 trailer.
//!
//! The trailer (IEEE CRC-32 of every byte before it, big-endian) lets a
//! receiver drop a datagram damaged in transit instead of acting on it: the
//! UDP checksum is optional over IPv4 and is recomputed by some middleboxes.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::frame::Frame;
use super::header::Header;
use super::limits::MAX_RECV_DATAGRAM;
use super::reader::Reader;

/// Size of the CRC-32 trailer.
pub const TRAILER: usize = 4;

/// A decoded datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Its header.
    pub header: Header,
    /// Its frames, in order.
    pub frames: Vec<Frame>,
}

impl Packet {
    /// Decodes a whole datagram. Any error discards the whole packet: a
    /// receiver never acts on some frames of a packet and drops the rest.
    pub fn decode(datagram: Bytes) -> Result<Packet, DecodeError> {
        if datagram.len() > MAX_RECV_DATAGRAM {
            return Err(DecodeError::TooLong {
                field: "datagram",
                len: datagram.len() as u64,
                max: MAX_RECV_DATAGRAM,
            });
        }
        // The version comes first: another version need not carry our trailer.
        if let Some(&v) = datagram.first() {
            if !super::header::is_supported_version(v) {
                return Err(DecodeError::UnsupportedVersion(v));
            }
        }
        // Then the sealed flag, before the trailer: a sealed packet ends in
        // an AEAD tag, not a CRC, so only the flags byte tells which of the
        // two to check. Any other flags value is judged with the header,
        // after the trailer (proto-spec/packet.md, "Decoding").
        if datagram.get(1) == Some(&super::header::FLAG_SEALED) {
            return Err(DecodeError::Sealed);
        }
        if datagram.len() < TRAILER {
            return Err(DecodeError::Incomplete {
                needed: TRAILER - datagram.len(),
            });
        }
        let body_len = datagram.len() - TRAILER;
        let want = u32::from_be_bytes(datagram[body_len..].try_into().unwrap_or([0; 4]));
        if crc32fast::hash(&datagram[..body_len]) != want {
            return Err(DecodeError::Checksum);
        }
        let mut r = Reader::new(datagram.slice(..body_len));
        let header = Header::decode(&mut r)?;
        let frames = decode_frames(&mut r, header.version)?;
        Ok(Packet { header, frames })
    }

    /// Encodes into one datagram (for tests and tools; senders use [`PacketBuilder`]).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.header.encode(&mut b);
        for f in &self.frames {
            f.encode(&mut b);
        }
        let crc = crc32fast::hash(&b);
        b.put_u32(crc);
        b.freeze()
    }
}

/// Decodes the frames of a packet of protocol `version` up to the end of
/// `r`. A frame type that version does not define is `UnknownFrame`, even
/// if a later version defines it.
pub fn decode_frames(r: &mut Reader, version: u8) -> Result<Vec<Frame>, DecodeError> {
    let mut frames = Vec::new();
    while let Some(t) = r.peek_u8() {
        if version < super::VERSION_2 && super::ty::is_v2_only(t) {
            return Err(DecodeError::UnknownFrame(t));
        }
        frames.push(Frame::decode(r)?);
    }
    Ok(frames)
}

/// Fills one datagram with frames up to a size limit.
pub struct PacketBuilder {
    version: u8,
    buf: BytesMut,
    header_len: usize,
    limit: usize,
}

impl PacketBuilder {
    /// Starts a datagram with `header`, at most `limit` bytes long.
    pub fn new(header: Header, limit: usize) -> Self {
        let mut buf = BytesMut::with_capacity(limit);
        header.encode(&mut buf);
        PacketBuilder {
            version: header.version,
            header_len: buf.len(),
            buf,
            limit,
        }
    }

    /// Bytes still free (the trailer's room is already set aside).
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.buf.len() + TRAILER)
    }

    /// True when no frame was added yet.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == self.header_len
    }

    /// Appends `frame` if it fits and is valid.
    pub fn push(&mut self, frame: &Frame) -> Result<(), EncodeError> {
        frame.validate()?;
        if frame.min_version() > self.version {
            return Err(EncodeError::WrongVersion {
                needed: frame.min_version(),
                version: self.version,
            });
        }
        let needed = frame.encoded_len();
        if needed > self.remaining() {
            return Err(EncodeError::NoRoom {
                needed,
                remaining: self.remaining(),
            });
        }
        frame.encode(&mut self.buf);
        Ok(())
    }

    /// Appends an already encoded frame (e.g. a stored DELIVER) if it fits.
    pub fn push_encoded(&mut self, frame: &[u8]) -> Result<(), EncodeError> {
        if frame.len() > self.remaining() {
            return Err(EncodeError::NoRoom {
                needed: frame.len(),
                remaining: self.remaining(),
            });
        }
        self.buf.extend_from_slice(frame);
        Ok(())
    }

    /// Pads the datagram to `len` bytes (used to make probes as large as the
    /// answer they may trigger).
    pub fn pad_to(&mut self, len: usize) {
        let want = len.min(self.limit).saturating_sub(self.buf.len() + TRAILER);
        if want > 0 {
            Frame::Padding(want).encode(&mut self.buf);
        }
    }

    /// The finished datagram, trailer included.
    pub fn finish(mut self) -> Bytes {
        let crc = crc32fast::hash(&self.buf);
        self.buf.put_u32(crc);
        self.buf.freeze()
    }
}
