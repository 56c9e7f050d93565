//! Keys and values of the conversation column families (store format 2).
//!
//! | column family | key | value |
//! |---|---|---|
//! | [`CF_CONV`] | `conv key (17) ++ first conv_seq u64` | a run of consecutive records from that seq, or one [`encode_record`] (store format 4: `run_rows.rs`) |
//! | [`CF_CONV_META`] | `conv key (17)` | [`encode_conv_meta`] |
//! | [`CF_USER_CONV`] | `user u64 ++ conv key (17)` | [`encode_conv_state`] |
//! | [`CF_CONV_LIST`] | `user u64 ++ version u64` | `conv key (17)` |
//! | [`CF_HIDDEN`] | `user u64 ++ conv key (17) ++ conv_seq u64` | empty: the record is deleted for the user |
//!
//! A conversation key is [`ConvKey::to_bytes`]: kind, then two big-endian
//! ids, so one conversation's records are a contiguous range sorted by
//! `conv_seq`, one user's conversations are contiguous, and one user's list
//! index is sorted by version.
//!
//! ```text
//! ConvMeta   v1: 0x01 | head u64 | trimmed u64                                  (17 bytes)
//! ConvRecord v1: 0x01 | flags u8 (bit 0 recalled, bit 1 group event)
//!                     | from_user u64 | from_device u32
//!                     | from_seq u64 | time_ms u64 | topic u64 | msg_type u64
//!                     | payload_len u32 | payload                                (50 + n bytes)
//!                     [bit 1: | event kind u8 | user u64 | role u8]              (+10 bytes)
//! ConvState  v1: 0x01 | version u64 | last_seq u64 | read_seq u64 | unread u64
//!                     | cleared_to u64                                           (41 bytes)
//! ```

use bytes::Bytes;
use tern_core::conv::{ConvKey, ConvState, CONV_KEY_LEN};
use tern_core::store::{ConvMeta, ConvRecord};
use tern_core::wire::limits::MAX_PAYLOAD;
use tern_core::wire::{GroupEvent, GroupEventKind, GroupRole};

use super::value::{DecodeError, ValueReader};

/// Column family of storage-timeline records.
pub const CF_CONV: &str = "conv";
/// Column family of conversation metadata.
pub const CF_CONV_META: &str = "conv_meta";
/// Column family of each user's state in each conversation.
pub const CF_USER_CONV: &str = "user_conv";
/// Column family of the list index: each user's conversations by version.
pub const CF_CONV_LIST: &str = "conv_list";
/// Column family of records a user deleted for itself.
pub const CF_HIDDEN: &str = "hidden";

const CONV_VERSION: u8 = 1;

/// Key of record `conv_seq` of `key`.
pub fn record_key(key: &ConvKey, conv_seq: u64) -> [u8; CONV_KEY_LEN + 8] {
    let mut k = [0u8; CONV_KEY_LEN + 8];
    k[..CONV_KEY_LEN].copy_from_slice(&key.to_bytes());
    k[CONV_KEY_LEN..].copy_from_slice(&conv_seq.to_be_bytes());
    k
}

/// Exclusive end of the record keys `(key, 0) ..= (key, up_to)`.
pub fn record_range_end(key: &ConvKey, up_to: u64) -> Vec<u8> {
    match up_to.checked_add(1) {
        Some(next) => record_key(key, next).to_vec(),
        None => {
            let mut k = record_key(key, u64::MAX).to_vec();
            k.push(0);
            k
        }
    }
}

/// The `conv_seq` of a record key of `key`, if it is one.
pub fn record_seq(key: &ConvKey, raw: &[u8]) -> Option<u64> {
    let rest = raw.strip_prefix(key.to_bytes().as_slice())?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Key of `user`'s state in `key`.
pub fn user_conv_key(user: u64, key: &ConvKey) -> [u8; 8 + CONV_KEY_LEN] {
    let mut k = [0u8; 8 + CONV_KEY_LEN];
    k[..8].copy_from_slice(&user.to_be_bytes());
    k[8..].copy_from_slice(&key.to_bytes());
    k
}

/// Key of `user`'s list-index row for `version`.
pub fn list_key(user: u64, version: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&user.to_be_bytes());
    k[8..].copy_from_slice(&version.to_be_bytes());
    k
}

/// Key marking record `conv_seq` of `key` deleted for `user`.
pub fn hidden_key(user: u64, key: &ConvKey, conv_seq: u64) -> [u8; 16 + CONV_KEY_LEN] {
    let mut k = [0u8; 16 + CONV_KEY_LEN];
    k[..8].copy_from_slice(&user.to_be_bytes());
    k[8..8 + CONV_KEY_LEN].copy_from_slice(&key.to_bytes());
    k[8 + CONV_KEY_LEN..].copy_from_slice(&conv_seq.to_be_bytes());
    k
}

/// Encodes a [`ConvMeta`].
pub fn encode_conv_meta(m: &ConvMeta) -> [u8; 17] {
    let mut v = [0u8; 17];
    v[0] = CONV_VERSION;
    v[1..9].copy_from_slice(&m.head.to_be_bytes());
    v[9..].copy_from_slice(&m.trimmed.to_be_bytes());
    v
}

/// Decodes a [`ConvMeta`].
pub fn decode_conv_meta(bytes: &[u8]) -> Result<ConvMeta, DecodeError> {
    let mut r = ValueReader::versioned(bytes, CONV_VERSION)?;
    let m = ConvMeta {
        head: r.u64()?,
        trimmed: r.u64()?,
    };
    r.finish()?;
    Ok(m)
}

/// Encodes a [`ConvRecord`] (its `conv_seq` is in the key).
pub fn encode_record(rec: &ConvRecord) -> Vec<u8> {
    let mut v = Vec::with_capacity(50 + rec.payload.len());
    v.push(CONV_VERSION);
    v.push(u8::from(rec.recalled) | u8::from(rec.event.is_some()) << 1);
    v.extend_from_slice(&rec.from_user.to_be_bytes());
    v.extend_from_slice(&rec.from_device.to_be_bytes());
    for x in [rec.from_seq, rec.time_ms, rec.topic, rec.msg_type] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    let n = u32::try_from(rec.payload.len()).unwrap_or(u32::MAX);
    v.extend_from_slice(&n.to_be_bytes());
    v.extend_from_slice(&rec.payload);
    if let Some(e) = rec.event {
        v.push(e.kind as u8);
        v.extend_from_slice(&e.user.to_be_bytes());
        v.push(e.role as u8);
    }
    v
}

/// Decodes record `conv_seq`. A payload longer than the protocol allows is
/// refused before anything is allocated for it.
pub fn decode_record(conv_seq: u64, bytes: &[u8]) -> Result<ConvRecord, DecodeError> {
    let mut r = ValueReader::versioned(bytes, CONV_VERSION)?;
    let flags = r.u8()?;
    if flags & !0b11 != 0 {
        return Err(DecodeError::BadFlags(flags));
    }
    let recalled = flags & 1 != 0;
    let from_user = r.u64()?;
    let from_device = r.u32()?;
    let (from_seq, time_ms, topic, msg_type) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let n = r.u32()? as usize;
    if n > MAX_PAYLOAD {
        return Err(DecodeError::TooLong {
            len: n as u64,
            max: MAX_PAYLOAD,
        });
    }
    let payload = Bytes::copy_from_slice(r.bytes(n)?);
    let event = if flags & 2 != 0 {
        let kind = r.u8()?;
        let kind = GroupEventKind::from_u8(kind).ok_or(DecodeError::UnknownKind {
            what: "group event",
            value: kind,
        })?;
        let user = r.u64()?;
        let role = r.u8()?;
        let role = GroupRole::from_u8(role).ok_or(DecodeError::UnknownKind {
            what: "group role",
            value: role,
        })?;
        Some(GroupEvent { kind, user, role })
    } else {
        None
    };
    r.finish()?;
    Ok(ConvRecord {
        conv_seq,
        from_user,
        from_device,
        from_seq,
        time_ms,
        topic,
        msg_type,
        payload,
        recalled,
        event,
    })
}

/// Encodes a [`ConvState`].
pub fn encode_conv_state(s: &ConvState) -> [u8; 41] {
    let mut v = [0u8; 41];
    v[0] = CONV_VERSION;
    for (i, x) in [s.version, s.last_seq, s.read_seq, s.unread, s.cleared_to]
        .into_iter()
        .enumerate()
    {
        v[1 + 8 * i..9 + 8 * i].copy_from_slice(&x.to_be_bytes());
    }
    v
}

/// Decodes a [`ConvState`].
pub fn decode_conv_state(bytes: &[u8]) -> Result<ConvState, DecodeError> {
    let mut r = ValueReader::versioned(bytes, CONV_VERSION)?;
    let s = ConvState {
        version: r.u64()?,
        last_seq: r.u64()?,
        read_seq: r.u64()?,
        unread: r.u64()?,
        cleared_to: r.u64()?,
    };
    r.finish()?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(recalled: bool) -> ConvRecord {
        ConvRecord {
            conv_seq: 9,
            from_user: 42,
            from_device: 7,
            from_seq: 130,
            time_ms: 1_767_225_600_123,
            topic: 9001,
            msg_type: 0,
            payload: if recalled {
                Bytes::new()
            } else {
                Bytes::from_static(b"hi")
            },
            recalled,
            event: None,
        }
    }

    #[test]
    fn values_round_trip() {
        let event = ConvRecord {
            msg_type: 0,
            payload: Bytes::new(),
            event: Some(GroupEvent {
                kind: GroupEventKind::Added,
                user: 77,
                role: GroupRole::Admin,
            }),
            ..record(false)
        };
        for rec in [record(false), record(true), event] {
            assert_eq!(decode_record(9, &encode_record(&rec)), Ok(rec));
        }
        let m = ConvMeta {
            head: 5,
            trimmed: 2,
        };
        assert_eq!(decode_conv_meta(&encode_conv_meta(&m)), Ok(m));
        let s = ConvState {
            version: 3,
            last_seq: 10,
            read_seq: 8,
            unread: 2,
            cleared_to: 1,
        };
        assert_eq!(decode_conv_state(&encode_conv_state(&s)), Ok(s));
    }

    #[test]
    fn corrupt_values_are_typed_errors_without_big_allocations() {
        let mut v = encode_record(&record(false));
        let len_at = v.len() - 2 - 4;
        v[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_record(9, &v),
            Err(DecodeError::TooLong { .. })
        ));
        let mut v = encode_record(&record(false));
        v[1] = 7;
        assert_eq!(decode_record(9, &v), Err(DecodeError::BadFlags(7)));
        let v = encode_record(&record(false));
        assert!(decode_record(9, &v[..v.len() - 1]).is_err());
        assert!(decode_conv_state(&[2; 41]).is_err());
        assert!(decode_conv_meta(&[]).is_err());
    }

    #[test]
    fn record_keys_sort_by_conv_seq_within_a_conversation() {
        let k = ConvKey::Direct { lo: 1, hi: 2 };
        assert!(record_key(&k, 255) < record_key(&k, 256));
        assert!(record_key(&k, u64::MAX) < record_key(&ConvKey::Direct { lo: 1, hi: 3 }, 0));
        assert_eq!(record_seq(&k, &record_key(&k, 77)), Some(77));
        assert_eq!(record_seq(&ConvKey::Group(1), &record_key(&k, 77)), None);
        assert!(list_key(1, 9) < list_key(1, 10));
        assert!(hidden_key(1, &k, 3) < hidden_key(1, &k, 4));
    }
}
