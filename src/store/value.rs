//! The error type and bounds-checked reader shared by every value decoder
//! of the RocksDB store: nothing is read past the end of a value, and no
//! length is trusted before it is checked.

/// Why a stored key or value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The value is empty (no version byte).
    #[error("empty value")]
    Empty,
    /// The version byte is not one this build understands.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// Fewer bytes than the format requires.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes required.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// More bytes than the format describes.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// The rejected list claims more entries than the bound (`keys::MAX_REJECTED`).
    #[error("rejected list too long: {0} entries")]
    TooManyRejected(u64),
    /// A flags byte has bits this build does not know.
    #[error("bad flags {0:#04x}")]
    BadFlags(u8),
    /// A kind byte names no kind this build knows.
    #[error("unknown {what} {value}")]
    UnknownKind {
        /// What the byte names (entry kind, receipt status, ...).
        what: &'static str,
        /// Its value.
        value: u8,
    },
    /// A length exceeds what the protocol allows for the field.
    #[error("length {len} exceeds the limit of {max}")]
    TooLong {
        /// Length found.
        len: u64,
        /// Limit.
        max: usize,
    },
    /// A key has the wrong length for its column family.
    #[error("bad key length {have}, expected {expected}")]
    BadKeyLength {
        /// Length expected.
        expected: usize,
        /// Length found.
        have: usize,
    },
}

/// A bounds-checked cursor over a value.
pub(super) struct ValueReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ValueReader<'a> {
    /// A reader after the version byte, which must be `version`.
    pub fn versioned(bytes: &'a [u8], version: u8) -> Result<Self, DecodeError> {
        Self::versions(bytes, &[version]).map(|(r, _)| r)
    }

    /// A reader after the version byte, which must be one of `versions`;
    /// returns which.
    pub fn versions(bytes: &'a [u8], versions: &[u8]) -> Result<(Self, u8), DecodeError> {
        match bytes.first() {
            None => Err(DecodeError::Empty),
            Some(&v) if versions.contains(&v) => Ok((ValueReader { bytes, pos: 1 }, v)),
            Some(&v) => Err(DecodeError::UnknownVersion(v)),
        }
    }

    pub fn need(&self, n: usize) -> Result<(), DecodeError> {
        let have = self.bytes.len() - self.pos;
        if have < n {
            Err(DecodeError::Truncated {
                need: self.pos + n,
                have: self.bytes.len(),
            })
        } else {
            Ok(())
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.need(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.take::<8>().map(u64::from_be_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.take::<1>().map(|b| b[0])
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.need(n)?;
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}
