//! Field helpers shared by the frame encoders.

use bytes::BufMut;

use super::error::EncodeError;
use super::varint;

/// Appends a varint length and the bytes.
pub(super) fn put_bytes(out: &mut impl BufMut, b: &[u8]) {
    varint::put(out, b.len() as u64);
    out.put_slice(b);
}

/// Encoded size of a length-prefixed byte field.
pub(super) fn bytes_len(b: &[u8]) -> usize {
    varint::len(b.len() as u64) + b.len()
}

/// Refuses to encode a field longer than a peer accepts.
pub(super) fn check(field: &'static str, len: usize, max: usize) -> Result<(), EncodeError> {
    if len > max {
        Err(EncodeError::TooLong { field, len, max })
    } else {
        Ok(())
    }
}
