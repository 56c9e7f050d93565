//! Key and value encodings of the RocksDB store.
//!
//! # Layout
//!
//! Three column families, one per kind of record:
//!
//! | column family | key | value |
//! |---|---|---|
//! | [`CF_INBOX`] | `user: u64 BE ++ first seq: u64 BE` (16 bytes) | a run of consecutive entries from that seq, or one entry (`run_rows.rs`, `entry_values.rs`) |
//! | [`CF_META`] | `user: u64 BE` (8 bytes) | [`encode_meta`] |
//! | [`CF_DEVICE`] | `user: u64 BE ++ device: u32 BE` (12 bytes) | [`encode_device`] |
//!
//! Integers in keys are big-endian and fixed-width, so RocksDB's bytewise
//! order equals numeric order: one user's inbox is a contiguous key range
//! sorted by sequence, and so are one user's devices.
//!
//! # Values
//!
//! Metadata values are a small hand-written binary format: a version byte
//! first, then fixed-width big-endian integers. Decoding never panics: it
//! returns a [`DecodeError`] on truncated, oversized or unknown input.
//!
//! ```text
//! InboxMeta   v2: 0x02 | epoch u64 | head u64 | trimmed u64 | list_version u64
//!                      | total_unread u64 | last_private u64                 (49 bytes)
//! DeviceState v2: 0x02 | checkpoint u64 | applied u64 | last_login_ms u64
//!                      | version u8 | n u32 | n × (seq u64, code u64)        (30 + 16n bytes)
//! ```
//!
//! Format 1 values (written before conversations) still decode: a v1
//! InboxMeta has the first three fields, a v1 DeviceState no `version` (its
//! device last logged in with protocol version 1). Inbox entries are in
//! `entry_values.rs`, conversations in `conv_values.rs`.

use tern_core::store::{DeviceState, InboxMeta};

/// Column family of inbox entries.
pub const CF_INBOX: &str = "inbox";
/// Column family of inbox metadata.
pub const CF_META: &str = "meta";
/// Column family of device states.
pub const CF_DEVICE: &str = "device";
/// Every column family the store uses (besides RocksDB's mandatory
/// "default", which holds the format marker).
pub const COLUMN_FAMILIES: [&str; 9] = [
    CF_INBOX,
    CF_META,
    CF_DEVICE,
    super::conv_values::CF_CONV,
    super::conv_values::CF_CONV_META,
    super::conv_values::CF_USER_CONV,
    super::conv_values::CF_CONV_LIST,
    super::conv_values::CF_HIDDEN,
    super::group_values::CF_GROUP_MEMBER,
];

/// Length of an inbox key.
pub const INBOX_KEY_LEN: usize = 16;
/// Length of a meta key.
pub const META_KEY_LEN: usize = 8;
/// Length of a device key.
pub const DEVICE_KEY_LEN: usize = 12;

/// Current version of the [`InboxMeta`] value format.
pub const META_VERSION: u8 = 2;
/// Current version of the [`DeviceState`] value format.
pub const DEVICE_VERSION: u8 = 2;
/// Encoded length of an [`InboxMeta`] (v2).
pub const META_VALUE_LEN: usize = 1 + 6 * 8;
/// Encoded length of a [`DeviceState`] without its rejected list (v2).
pub const DEVICE_VALUE_FIXED_LEN: usize = 1 + 3 * 8 + 1 + 4;

/// Most `rejected` entries accepted when decoding a [`DeviceState`].
///
/// The broker keeps the list short (a handful of recent rejections); this
/// bound only stops a corrupt length field from causing a huge allocation.
pub const MAX_REJECTED: usize = 4096;

pub use super::value::DecodeError;
use super::value::ValueReader;

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// Inbox key of `(user, seq)`.
pub fn inbox_key(user: u64, seq: u64) -> [u8; INBOX_KEY_LEN] {
    let mut k = [0u8; INBOX_KEY_LEN];
    k[..8].copy_from_slice(&user.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Decodes an inbox key into `(user, seq)`.
pub fn decode_inbox_key(key: &[u8]) -> Result<(u64, u64), DecodeError> {
    let k: &[u8; INBOX_KEY_LEN] = key.try_into().map_err(|_| DecodeError::BadKeyLength {
        expected: INBOX_KEY_LEN,
        have: key.len(),
    })?;
    let user = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
    let seq = u64::from_be_bytes(k[8..].try_into().expect("8 bytes"));
    Ok((user, seq))
}

/// Exclusive end of the inbox key range `(user, 0) ..= (user, up_to)`.
///
/// This is `(user, up_to + 1)`; when `up_to == u64::MAX` it is the 17-byte key
/// `(user, u64::MAX) ++ 0x00`, the smallest byte string above every 16-byte key
/// of `user` (and below every key of `user + 1`).
pub fn inbox_range_end(user: u64, up_to: u64) -> Vec<u8> {
    match up_to.checked_add(1) {
        Some(next) => inbox_key(user, next).to_vec(),
        None => {
            let mut k = inbox_key(user, u64::MAX).to_vec();
            k.push(0);
            k
        }
    }
}

/// Meta key of `user`.
pub fn meta_key(user: u64) -> [u8; META_KEY_LEN] {
    user.to_be_bytes()
}

/// Device key of `(user, device)`.
pub fn device_key(user: u64, device: u32) -> [u8; DEVICE_KEY_LEN] {
    let mut k = [0u8; DEVICE_KEY_LEN];
    k[..8].copy_from_slice(&user.to_be_bytes());
    k[8..].copy_from_slice(&device.to_be_bytes());
    k
}

/// Decodes a device key into `(user, device)`.
pub fn decode_device_key(key: &[u8]) -> Result<(u64, u32), DecodeError> {
    let k: &[u8; DEVICE_KEY_LEN] = key.try_into().map_err(|_| DecodeError::BadKeyLength {
        expected: DEVICE_KEY_LEN,
        have: key.len(),
    })?;
    let user = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
    let device = u32::from_be_bytes(k[8..].try_into().expect("4 bytes"));
    Ok((user, device))
}

/// The key prefix shared by every inbox and device key of `user`.
pub fn user_prefix(user: u64) -> [u8; 8] {
    user.to_be_bytes()
}

/// Exclusive upper bound of every key starting with `user`'s prefix, or `None`
/// for `u64::MAX` (no 8-byte successor; callers then check the prefix).
pub fn user_prefix_end(user: u64) -> Option<[u8; 8]> {
    user.checked_add(1).map(u64::to_be_bytes)
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// Encodes an [`InboxMeta`] (current version, 2).
pub fn encode_meta(meta: &InboxMeta) -> [u8; META_VALUE_LEN] {
    let mut v = [0u8; META_VALUE_LEN];
    v[0] = META_VERSION;
    let fields = [
        meta.epoch,
        meta.head,
        meta.trimmed,
        meta.list_version,
        meta.total_unread,
        meta.last_private,
    ];
    for (i, x) in fields.into_iter().enumerate() {
        v[1 + 8 * i..9 + 8 * i].copy_from_slice(&x.to_be_bytes());
    }
    v
}

/// Decodes an [`InboxMeta`] of format 1 (written before conversations:
/// no list, nothing private) or 2.
pub fn decode_meta(bytes: &[u8]) -> Result<InboxMeta, DecodeError> {
    let (mut r, version) = ValueReader::versions(bytes, &[1, META_VERSION])?;
    let mut meta = InboxMeta {
        epoch: r.u64()?,
        head: r.u64()?,
        trimmed: r.u64()?,
        ..InboxMeta::default()
    };
    if version == META_VERSION {
        meta.list_version = r.u64()?;
        meta.total_unread = r.u64()?;
        meta.last_private = r.u64()?;
    }
    r.finish()?;
    Ok(meta)
}

/// Encodes a [`DeviceState`] (current version, 2).
///
/// The list is written in full; [`decode_device`] refuses lists longer than
/// [`MAX_REJECTED`], so the broker must keep it bounded (it does).
pub fn encode_device(state: &DeviceState) -> Vec<u8> {
    let mut v = Vec::with_capacity(DEVICE_VALUE_FIXED_LEN + 16 * state.rejected.len());
    v.push(DEVICE_VERSION);
    v.extend_from_slice(&state.checkpoint.to_be_bytes());
    v.extend_from_slice(&state.applied.to_be_bytes());
    v.extend_from_slice(&state.last_login_ms.to_be_bytes());
    v.push(state.version);
    // A u32 count: a longer list could never be decoded anyway.
    let n = u32::try_from(state.rejected.len()).unwrap_or(u32::MAX);
    v.extend_from_slice(&n.to_be_bytes());
    for (seq, code) in state.rejected.iter().take(n as usize) {
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&code.to_be_bytes());
    }
    v
}

/// Decodes a [`DeviceState`] of format 1 (a device that last logged in
/// before conversations existed, so with protocol version 1) or 2.
pub fn decode_device(bytes: &[u8]) -> Result<DeviceState, DecodeError> {
    let (mut r, format) = ValueReader::versions(bytes, &[1, DEVICE_VERSION])?;
    let checkpoint = r.u64()?;
    let applied = r.u64()?;
    let last_login_ms = r.u64()?;
    let version = if format == 1 {
        tern_core::wire::VERSION
    } else {
        r.u8()?
    };
    let n = r.u32()?;
    if n as usize > MAX_REJECTED {
        return Err(DecodeError::TooManyRejected(u64::from(n)));
    }
    let n = n as usize;
    // Check the length before allocating.
    r.need(n * 16)?;
    let mut rejected = Vec::with_capacity(n);
    for _ in 0..n {
        rejected.push((r.u64()?, r.u64()?));
    }
    r.finish()?;
    Ok(DeviceState {
        checkpoint,
        applied,
        rejected,
        last_login_ms,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    #[test]
    fn inbox_keys_sort_numerically() {
        let pairs = [
            (0u64, 0u64),
            (0, 1),
            (0, 255),
            (0, 256),
            (0, u64::MAX),
            (1, 0),
            (255, 7),
            (256, 0),
            (u64::MAX, 0),
            (u64::MAX, u64::MAX),
        ];
        for w in pairs.windows(2) {
            assert!(
                inbox_key(w[0].0, w[0].1) < inbox_key(w[1].0, w[1].1),
                "{w:?}"
            );
        }
        for (u, s) in pairs {
            assert_eq!(decode_inbox_key(&inbox_key(u, s)), Ok((u, s)));
        }
        assert!(decode_inbox_key(&[0; 15]).is_err());
    }

    #[test]
    fn range_end_is_tight() {
        for (u, up_to) in [(3u64, 0u64), (3, 41), (3, u64::MAX), (u64::MAX, u64::MAX)] {
            let end = inbox_range_end(u, up_to);
            assert!(inbox_key(u, up_to).as_slice() < end.as_slice());
            if let Some(next) = up_to.checked_add(1) {
                assert!(end.as_slice() <= inbox_key(u, next).as_slice());
            }
            if let Some(nu) = u.checked_add(1) {
                assert!(end.as_slice() <= inbox_key(nu, 0).as_slice());
            }
        }
    }

    #[test]
    fn device_keys_roundtrip_and_sort() {
        assert!(device_key(1, u32::MAX) < device_key(2, 0));
        assert!(device_key(1, 255) < device_key(1, 256));
        assert_eq!(decode_device_key(&device_key(9, 77)), Ok((9, 77)));
        assert!(decode_device_key(&[1; 11]).is_err());
    }

    #[test]
    fn meta_roundtrip() {
        let m = InboxMeta {
            epoch: 0xdead_beef_0000_0001,
            head: u64::MAX,
            trimmed: 3,
            list_version: 4,
            total_unread: 5,
            last_private: 6,
        };
        assert_eq!(decode_meta(&encode_meta(&m)), Ok(m));
        assert_eq!(decode_meta(&[]), Err(DecodeError::Empty));
        assert_eq!(decode_meta(&[3; 49]), Err(DecodeError::UnknownVersion(3)));
        let enc = encode_meta(&m);
        assert!(matches!(
            decode_meta(&enc[..48]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut long = enc.to_vec();
        long.push(0);
        assert_eq!(decode_meta(&long), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn format_1_values_written_before_conversations_still_decode() {
        let mut v1 = vec![1u8];
        for x in [7u64, 12, 2] {
            v1.extend_from_slice(&x.to_be_bytes());
        }
        let m = decode_meta(&v1).expect("format 1 meta");
        assert_eq!((m.epoch, m.head, m.trimmed, m.list_version), (7, 12, 2, 0));
        let mut d1 = vec![1u8];
        for x in [10u64, 4, 1_700_000_000_000] {
            d1.extend_from_slice(&x.to_be_bytes());
        }
        d1.extend_from_slice(&1u32.to_be_bytes());
        d1.extend_from_slice(&3u64.to_be_bytes());
        d1.extend_from_slice(&7u64.to_be_bytes());
        let d = decode_device(&d1).expect("format 1 device");
        assert_eq!((d.checkpoint, d.applied, d.version), (10, 4, 1));
        assert_eq!(d.rejected, vec![(3, 7)]);
    }

    #[test]
    fn device_roundtrip() {
        let s = DeviceState {
            checkpoint: 5,
            applied: 9,
            rejected: vec![(7, 3), (u64::MAX, 0)],
            last_login_ms: 1_700_000_000_000,
            version: 2,
        };
        let enc = encode_device(&s);
        assert_eq!(enc.len(), DEVICE_VALUE_FIXED_LEN + 32);
        assert_eq!(decode_device(&enc), Ok(s));
        assert_eq!(
            decode_device(&encode_device(&DeviceState::default())),
            Ok(DeviceState::default())
        );
        for cut in 0..enc.len() {
            assert!(decode_device(&enc[..cut]).is_err(), "cut {cut}");
        }
        let mut long = enc.clone();
        long.extend_from_slice(&[0, 0]);
        assert_eq!(decode_device(&long), Err(DecodeError::TrailingBytes(2)));
    }

    #[test]
    fn device_rejected_list_is_bounded() {
        let mut enc = encode_device(&DeviceState::default());
        enc[26..30].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode_device(&enc),
            Err(DecodeError::TooManyRejected(u64::from(u32::MAX)))
        );
        let at_bound = DeviceState {
            rejected: vec![(1, 2); MAX_REJECTED],
            ..DeviceState::default()
        };
        assert_eq!(decode_device(&encode_device(&at_bound)), Ok(at_bound));
        let over = DeviceState {
            rejected: vec![(1, 2); MAX_REJECTED + 1],
            ..DeviceState::default()
        };
        assert!(matches!(
            decode_device(&encode_device(&over)),
            Err(DecodeError::TooManyRejected(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = SmallRng::seed_from_u64(0x7e57);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..80);
            let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if !v.is_empty() && rng.gen_bool(0.7) {
                v[0] = 1;
            }
            let _ = decode_meta(&v);
            let _ = decode_device(&v);
            let _ = decode_inbox_key(&v);
            let _ = decode_device_key(&v);
        }
    }
}
