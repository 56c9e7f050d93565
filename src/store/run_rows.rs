//! Rows of runs (store format 4): one row holds consecutive values of one
//! owner: sync-timeline entries of a user in the inbox column family,
//! records of a conversation in the conv column family.
//!
//! ```text
//! key:   owner (user u64 BE, or conversation key) | first seq u64 BE
//! value: one value (an entry, entry_values.rs: first byte 0xE2, or a
//!        version 1 DELIVER frame; a record, conv_values.rs: first byte
//!        0x01)                                            value `first`
//!    or: 0xE4 | n u32 | n × (len u32 | value)             values `first ..
//!                                                          first + n - 1`
//! ```
//!
//! Why: a commit batch appends tens of values to each user and
//! conversation it touches, and RocksDB's cost per write is mostly per row
//! (a memtable skip-list insert), not per byte. With one row per value,
//! version 2's second row per message halved the durable store's rate; one
//! row per owner per batch gives it back (docs/design.md, "Runs of
//! values"). A row of one value is written exactly as formats 1-3 wrote
//! every value, so their folders need no rewriting.
//!
//! Rows of one owner never overlap (`run_writer.rs` keeps that true), so a
//! seq is in at most one row: the last row whose first seq is at most it.

use super::value::{DecodeError, ValueReader};

/// First byte of a run of two or more values (no entry or record format
/// and no frame type has this value).
pub const RUN_TAG: u8 = 0xE4;
/// Most entries in one row: bounds a reader's work for a single seq.
pub const MAX_RUN_ENTRIES: usize = 256;
/// Most encoded bytes in one row, besides a single entry larger than this.
pub const MAX_RUN_BYTES: usize = 128 * 1024;

/// Encodes the entries `first ..` as one row. One entry is written as it is.
pub fn encode_row(entries: &[&[u8]]) -> Vec<u8> {
    if let [one] = entries {
        return one.to_vec();
    }
    let len: usize = entries.iter().map(|e| 4 + e.len()).sum();
    let mut v = Vec::with_capacity(5 + len);
    v.push(RUN_TAG);
    v.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        v.extend_from_slice(&(e.len() as u32).to_be_bytes());
        v.extend_from_slice(e);
    }
    v
}

/// The entries of a row, in seq order from the row's first seq.
pub fn decode_row(value: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    if value.first() != Some(&RUN_TAG) {
        if value.is_empty() {
            return Err(DecodeError::Empty);
        }
        return Ok(vec![value]);
    }
    let mut r = ValueReader::versioned(value, RUN_TAG)?;
    let n = u64::from(r.u32()?);
    if n < 2 || n > MAX_RUN_ENTRIES as u64 {
        return Err(DecodeError::TooLong {
            len: n,
            max: MAX_RUN_ENTRIES,
        });
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = r.u32()? as usize;
        out.push(r.bytes(len)?);
    }
    r.finish()?;
    Ok(out)
}

/// The values of the row starting at `first`, each with its seq. A run
/// reaching past `u64::MAX` cannot have been written: corrupt.
pub fn decode_row_at(first: u64, value: &[u8]) -> Result<Vec<(u64, &[u8])>, DecodeError> {
    let row = decode_row(value)?;
    let n = row.len() as u64;
    if first.checked_add(n - 1).is_none() {
        return Err(DecodeError::TooLong {
            len: n,
            max: (u64::MAX - first) as usize + 1,
        });
    }
    Ok(row
        .into_iter()
        .enumerate()
        .map(|(i, v)| (first + i as u64, v))
        .collect())
}

/// How many entries a row holds, without decoding them.
pub fn row_entries(value: &[u8]) -> Result<u64, DecodeError> {
    Ok(decode_row(value)?.len() as u64)
}

/// Splits `entries` (consecutive seqs, in order) into rows within the
/// bounds: the index ranges to encode one row each.
pub fn split_rows(lens: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut rows = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, len) in lens.iter().enumerate() {
        let full = i - start == MAX_RUN_ENTRIES || (i > start && bytes + 4 + len > MAX_RUN_BYTES);
        if full {
            rows.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += 4 + len;
    }
    if start < lens.len() {
        rows.push(start..lens.len());
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_of_one_entry_is_the_entry_itself() {
        let e = [0xE2u8, 1, 2, 3];
        assert_eq!(encode_row(&[&e]), e.to_vec());
        assert_eq!(decode_row(&e).unwrap(), vec![&e[..]]);
    }

    #[test]
    fn a_run_decodes_to_its_entries_in_order() {
        let (a, b, c) = ([0xE2u8, 9], [0x11u8], [0xE2u8; 300]);
        let v = encode_row(&[&a, &b, &c]);
        assert_eq!(v[0], RUN_TAG);
        assert_eq!(decode_row(&v).unwrap(), vec![&a[..], &b[..], &c[..]]);
        assert_eq!(row_entries(&v).unwrap(), 3);
    }

    #[test]
    fn corrupt_runs_are_errors_never_panics() {
        let v = encode_row(&[&[0xE2u8, 9][..], &[0x11u8][..]]);
        for cut in 0..v.len() {
            assert!(decode_row(&v[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = v.clone();
        extra.push(0);
        assert!(decode_row(&extra).is_err());
        // A count beyond the bound is refused before anything is allocated.
        let mut huge = vec![RUN_TAG];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_row(&huge),
            Err(DecodeError::TooLong { .. })
        ));
        // A length beyond the value is refused.
        let mut long = vec![RUN_TAG, 0, 0, 0, 2];
        long.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_row(&long).is_err());
    }

    #[test]
    fn a_run_past_the_last_seq_is_corrupt() {
        let v = encode_row(&[&[0xE2u8][..], &[0xE2u8][..]]);
        assert_eq!(decode_row_at(u64::MAX - 1, &v).unwrap().len(), 2);
        assert!(matches!(
            decode_row_at(u64::MAX, &v),
            Err(DecodeError::TooLong { .. })
        ));
        assert_eq!(
            decode_row_at(u64::MAX, &[0xE2u8]).unwrap(),
            vec![(u64::MAX, &[0xE2u8][..])]
        );
    }

    #[test]
    fn rows_split_at_the_entry_and_byte_bounds() {
        assert_eq!(split_rows(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(split_rows(&[10; 3]), vec![0..3]);
        let many = vec![8; MAX_RUN_ENTRIES + 1];
        assert_eq!(
            split_rows(&many),
            vec![0..MAX_RUN_ENTRIES, MAX_RUN_ENTRIES..MAX_RUN_ENTRIES + 1]
        );
        // A single entry larger than the byte bound is a row of its own.
        assert_eq!(
            split_rows(&[10, MAX_RUN_BYTES * 2, 10]),
            vec![0..1, 1..2, 2..3]
        );
    }
}
