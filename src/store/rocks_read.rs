//! The read side of [`RocksStore`]: point lookups and bounded range scans,
//! every key and value decoded into a typed error rather than trusted.
//! Inbox message entries name their record; it is attached here with one
//! batched lookup per page.

use std::collections::HashMap;
use std::sync::Arc;

use rocksdb::ReadOptions;
use tern_core::conv::{ConvKey, CONV_KEY_LEN};
use tern_core::store::{ConvMeta, ConvRecord, DeviceState, StoredEntry, SyncItem, UserConv};

use super::conv_values::{
    self as cv, CF_CONV, CF_CONV_LIST, CF_CONV_META, CF_HIDDEN, CF_USER_CONV,
};
use super::entry_values::decode_entry;
use super::keys::{self, CF_DEVICE, CF_INBOX};
use super::rocks::{RocksStore, StoreError};
use super::run_rows::decode_row_at;
use super::value::DecodeError;

fn corrupt(cf: &'static str, key: &[u8]) -> impl FnOnce(DecodeError) -> StoreError {
    let key = key.to_vec();
    move |source| StoreError::Corrupt { cf, key, source }
}

/// Read options bounding a scan to keys below `end`.
fn below(end: Vec<u8>) -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(end);
    ro
}

impl RocksStore {
    /// One value, decoded.
    pub(super) fn get_decoded<T>(
        &self,
        cf: &'static str,
        key: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, StoreError> {
        match self.raw().get_pinned_cf(self.cf(cf)?, key)? {
            None => Ok(None),
            Some(v) => decode(&v).map(Some).map_err(corrupt(cf, key)),
        }
    }

    pub(super) fn read_devices(&self, user: u64) -> Result<Vec<(u32, DeviceState)>, StoreError> {
        let prefix = keys::user_prefix(user);
        let mut it = self
            .raw()
            .raw_iterator_cf_opt(self.cf(CF_DEVICE)?, Self::prefix_read_opts(user));
        it.seek(prefix);
        let mut out = Vec::new();
        while let Some((k, v)) = it.item() {
            if !k.starts_with(&prefix) {
                break;
            }
            let (_, device) = keys::decode_device_key(k).map_err(corrupt(CF_DEVICE, k))?;
            let state = keys::decode_device(v).map_err(corrupt(CF_DEVICE, k))?;
            out.push((device, state));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    pub(super) fn read_entries(
        &self,
        user: u64,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let prefix = keys::user_prefix(user);
        let mut it = self
            .raw()
            .raw_iterator_cf_opt(self.cf(CF_INBOX)?, Self::prefix_read_opts(user));
        // A row holds a run of entries (`run_rows.rs`): the one holding
        // `start`, if any, is the last row starting at or before it.
        it.seek_for_prev(keys::inbox_key(user, start));
        if !it.key().is_some_and(|k| k.starts_with(&prefix)) {
            it.seek(keys::inbox_key(user, start));
        }
        let mut out = Vec::with_capacity(max.min(256));
        'rows: while out.len() < max {
            let Some((k, v)) = it.item() else { break };
            if !k.starts_with(&prefix) {
                break;
            }
            let (_, first) = keys::decode_inbox_key(k).map_err(corrupt(CF_INBOX, k))?;
            for (seq, e) in decode_row_at(first, v).map_err(corrupt(CF_INBOX, k))? {
                if seq < start {
                    continue;
                }
                out.push(decode_entry(user, seq, e).map_err(corrupt(CF_INBOX, k))?);
                if out.len() == max {
                    break 'rows;
                }
            }
            it.next();
        }
        it.status()?;
        self.attach_records(&mut out)?;
        Ok(out)
    }

    /// Message entries name their record: attach them, reading each row
    /// of records once (a page's entries mostly name consecutive records of
    /// a few conversations). A record no longer stored (history retention)
    /// leaves the recall marker the entry decoded to.
    fn attach_records(&self, entries: &mut [StoredEntry]) -> Result<(), StoreError> {
        let mut wanted: Vec<(ConvKey, u64, usize)> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.entry.item, SyncItem::Message(_)) && e.entry.conv_seq != 0)
            .map(|(i, e)| (e.entry.conv, e.entry.conv_seq, i))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        wanted.sort_unstable();
        let mut row: Option<(ConvKey, u64, Vec<ConvRecord>)> = None;
        for (conv, seq, i) in wanted {
            let held = row.as_ref().is_some_and(|(c, first, records)| {
                *c == conv && seq >= *first && seq - *first < records.len() as u64
            });
            if !held {
                row = self
                    .record_row(&conv, seq)?
                    .map(|(first, records)| (conv, first, records));
            }
            if let Some((_, first, records)) = &row {
                if let Some(r) = seq
                    .checked_sub(*first)
                    .and_then(|k| records.get(k as usize))
                {
                    entries[i].entry.item = SyncItem::Message(Arc::new(r.clone()));
                }
            }
        }
        Ok(())
    }

    /// The row of `conv`'s records that starts at or below `seq`: its first
    /// seq and its records.
    fn record_row(
        &self,
        conv: &ConvKey,
        seq: u64,
    ) -> Result<Option<(u64, Vec<ConvRecord>)>, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(cv::record_key(conv, 0).to_vec());
        let mut it = self.raw().raw_iterator_cf_opt(self.cf(CF_CONV)?, ro);
        it.seek_for_prev(cv::record_key(conv, seq));
        let found = match it.item() {
            Some((k, v)) => match cv::record_seq(conv, k) {
                Some(first) => Some((first, decode_record_row(first, k, v)?)),
                None => None,
            },
            None => None,
        };
        it.status()?;
        Ok(found)
    }

    pub(super) fn read_records(
        &self,
        conv: &ConvKey,
        before: u64,
        max: usize,
    ) -> Result<Vec<ConvRecord>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let end = if before == 0 {
            cv::record_range_end(conv, u64::MAX)
        } else {
            cv::record_key(conv, before).to_vec()
        };
        let mut it = self
            .raw()
            .raw_iterator_cf_opt(self.cf(CF_CONV)?, below(end));
        it.seek_to_last();
        // Rows hold runs of records (`run_rows.rs`): newest row first,
        // each row's records newest first, those at or past `before` left.
        let mut out = Vec::with_capacity(max.min(256));
        'rows: while out.len() < max {
            let Some((k, v)) = it.item() else { break };
            let Some(first) = cv::record_seq(conv, k) else {
                break; // before this conversation's first record
            };
            for r in decode_record_row(first, k, v)?.into_iter().rev() {
                if before != 0 && r.conv_seq >= before {
                    continue;
                }
                out.push(r);
                if out.len() == max {
                    break 'rows;
                }
            }
            it.prev();
        }
        it.status()?;
        out.reverse();
        Ok(out)
    }

    pub(super) fn read_conv_metas(
        &self,
        after: Option<&ConvKey>,
        max: usize,
    ) -> Result<Vec<(ConvKey, ConvMeta)>, StoreError> {
        let mut it = self.raw().raw_iterator_cf(self.cf(CF_CONV_META)?);
        match after {
            Some(k) => {
                let k = k.to_bytes();
                it.seek(k);
                if it.key() == Some(&k[..]) {
                    it.next();
                }
            }
            None => it.seek_to_first(),
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some((k, v)) = it.item() else { break };
            let key = ConvKey::from_bytes(k).ok_or_else(|| {
                corrupt(CF_CONV_META, k)(DecodeError::BadKeyLength {
                    expected: CONV_KEY_LEN,
                    have: k.len(),
                })
            })?;
            out.push((
                key,
                cv::decode_conv_meta(v).map_err(corrupt(CF_CONV_META, k))?,
            ));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    pub(super) fn read_list(
        &self,
        user: u64,
        since: u64,
        max: usize,
    ) -> Result<Vec<UserConv>, StoreError> {
        let Some(start) = since.checked_add(1) else {
            return Ok(Vec::new());
        };
        let prefix = keys::user_prefix(user);
        let mut it = self
            .raw()
            .raw_iterator_cf_opt(self.cf(CF_CONV_LIST)?, Self::prefix_read_opts(user));
        it.seek(cv::list_key(user, start));
        let mut keys_in_order = Vec::new();
        while keys_in_order.len() < max {
            let Some((k, v)) = it.item() else { break };
            if !k.starts_with(&prefix) {
                break;
            }
            let conv = ConvKey::from_bytes(v).ok_or_else(|| {
                corrupt(CF_CONV_LIST, k)(DecodeError::BadKeyLength {
                    expected: CONV_KEY_LEN,
                    have: v.len(),
                })
            })?;
            keys_in_order.push(conv);
            it.next();
        }
        it.status()?;
        let cf = self.cf(CF_USER_CONV)?;
        let state_keys: Vec<_> = keys_in_order
            .iter()
            .map(|c| cv::user_conv_key(user, c))
            .collect();
        let got = self
            .raw()
            .multi_get_cf(state_keys.iter().map(|k| (cf, k.as_slice())));
        let mut out = Vec::with_capacity(keys_in_order.len());
        let mut seen = HashMap::new();
        for ((conv, key), value) in keys_in_order.into_iter().zip(&state_keys).zip(got) {
            let Some(v) = value? else { continue };
            let state = cv::decode_conv_state(&v).map_err(corrupt(CF_USER_CONV, key))?;
            if seen.insert(conv, ()).is_none() {
                out.push(UserConv { key: conv, state });
            }
        }
        Ok(out)
    }

    pub(super) fn read_hidden(
        &self,
        user: u64,
        conv: &ConvKey,
        low: u64,
        high: u64,
    ) -> Result<Vec<u64>, StoreError> {
        if low > high {
            return Ok(Vec::new());
        }
        let start = cv::hidden_key(user, conv, low);
        let prefix = &start[..8 + CONV_KEY_LEN];
        let mut it = self
            .raw()
            .raw_iterator_cf_opt(self.cf(CF_HIDDEN)?, Self::prefix_read_opts(user));
        it.seek(start);
        let mut out = Vec::new();
        while let Some((k, _)) = it.item() {
            let Some(rest) = k.strip_prefix(prefix) else {
                break;
            };
            let seq = u64::from_be_bytes(rest.try_into().map_err(|_| {
                corrupt(CF_HIDDEN, k)(DecodeError::BadKeyLength {
                    expected: 16 + CONV_KEY_LEN,
                    have: k.len(),
                })
            })?);
            if seq > high {
                break;
            }
            out.push(seq);
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}

/// The records of the row at key `k` (first seq `first`).
fn decode_record_row(first: u64, k: &[u8], v: &[u8]) -> Result<Vec<ConvRecord>, StoreError> {
    decode_row_at(first, v)
        .map_err(corrupt(CF_CONV, k))?
        .into_iter()
        .map(|(seq, bytes)| cv::decode_record(seq, bytes).map_err(corrupt(CF_CONV, k)))
        .collect()
}
