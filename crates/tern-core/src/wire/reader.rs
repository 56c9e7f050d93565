//! A cursor over received bytes. Every read checks the bytes that remain first,
//! so no length claimed by a peer is ever allocated before it is proven to be there.

use bytes::{Buf, Bytes};

use super::error::DecodeError;
use super::varint;

/// Consumes fields from the front of a datagram without copying payloads.
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    /// Wraps the received bytes.
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// True when everything has been consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Looks at the next byte without consuming it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::Incomplete {
                needed: n - self.buf.len(),
            })
        } else {
            Ok(())
        }
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }

    /// A varint.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        match varint::peek(&self.buf) {
            varint::Read::Value(v, n) => {
                self.buf.advance(n);
                Ok(v)
            }
            varint::Read::Incomplete(n) => Err(DecodeError::Incomplete {
                needed: n - self.buf.len(),
            }),
        }
    }

    /// A `flag` byte: 0 or 1, anything else is invalid.
    pub fn flag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidValue { field }),
        }
    }

    /// A varint that must fit in a u32 (device ids and similar).
    pub fn varint_u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError::InvalidValue { field })
    }

    /// A varint that must be non-zero (sequence numbers start at 1).
    pub fn nonzero(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        match self.varint()? {
            0 => Err(DecodeError::InvalidValue { field }),
            v => Ok(v),
        }
    }

    /// Exactly `n` bytes, shared with the input buffer (no copy).
    pub fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// A varint length (bounded by `max`) followed by that many bytes.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<Bytes, DecodeError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(len as usize)
    }

    /// Like [`Reader::bytes`], but the bytes must be UTF-8 text.
    pub fn text(&mut self, field: &'static str, max: usize) -> Result<String, DecodeError> {
        let raw = self.bytes(field, max)?;
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field })
    }
}
