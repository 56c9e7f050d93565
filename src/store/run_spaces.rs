//! The two column families kept as runs (`run_writer.rs`): the sync
//! timelines in `inbox` (one sequence per user) and the storage timelines
//! in `conv` (one sequence per conversation).

use tern_core::conv::ConvKey;

use super::conv_values::{self as cv, CF_CONV};
use super::keys::{self, CF_INBOX};
use super::run_writer::RunSpace;

/// The inbox: a user's sync timeline.
pub(super) struct InboxSpace;

impl RunSpace for InboxSpace {
    type Owner = u64;
    const CF: &'static str = CF_INBOX;

    fn key(user: &u64, seq: u64) -> Vec<u8> {
        keys::inbox_key(*user, seq).to_vec()
    }

    fn end(user: &u64) -> Option<Vec<u8>> {
        keys::user_prefix_end(*user).map(|e| e.to_vec())
    }

    fn seq_of(user: &u64, key: &[u8]) -> Option<u64> {
        match keys::decode_inbox_key(key) {
            Ok((u, seq)) if u == *user => Some(seq),
            _ => None,
        }
    }
}

/// Conversation records: a conversation's storage timeline.
pub(super) struct RecordSpace;

impl RunSpace for RecordSpace {
    type Owner = ConvKey;
    const CF: &'static str = CF_CONV;

    fn key(conv: &ConvKey, seq: u64) -> Vec<u8> {
        cv::record_key(conv, seq).to_vec()
    }

    fn end(conv: &ConvKey) -> Option<Vec<u8>> {
        Some(cv::record_range_end(conv, u64::MAX))
    }

    fn seq_of(conv: &ConvKey, key: &[u8]) -> Option<u64> {
        cv::record_seq(conv, key)
    }
}
