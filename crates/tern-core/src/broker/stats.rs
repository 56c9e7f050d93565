//! The broker's counters, exported by the daemon (`/metrics`).

/// Counters, exported by the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams produced.
    pub datagrams_out: u64,
    /// Datagrams that failed to decode.
    pub malformed: u64,
    /// Packets naming a session that does not exist.
    pub unknown_session: u64,
    /// Logins refused (bad or expired token, limits).
    pub login_refused: u64,
    /// Sessions opened.
    pub logins: u64,
    /// Sessions replaced by a new login of the same device.
    pub replaced: u64,
    /// Sessions dropped for silence.
    pub idle_closed: u64,
    /// Address changes followed.
    pub migrations: u64,
    /// Messages stored.
    pub stored: u64,
    /// Uplink operations refused with an error.
    pub rejected: u64,
    /// Uplink duplicates (retransmits of processed operations).
    pub uplink_duplicates: u64,
    /// Batches committed.
    pub commits: u64,
    /// Batches that failed to commit.
    pub commit_failures: u64,
    /// Downlink flows whose retry budget ran out (device unreachable).
    pub unreachable: u64,
    /// Entries sent in pull pages.
    pub pulled: u64,
    /// Datagrams dropped by a rate limit (per source before login, per session after).
    pub rate_limited: u64,
    /// RETRY cookies sent to unproven addresses.
    pub retries_sent: u64,
    /// LOGINs carrying a missing, forged or expired cookie.
    pub bad_cookies: u64,
    /// Address tokens handed to clients after a login.
    pub address_tokens_issued: u64,
    /// Logins from unproven addresses let in by an address token instead
    /// of a RETRY round trip.
    pub address_tokens_accepted: u64,
    /// Handshakes that did not decrypt (wrong server key, tampered) or whose
    /// payload was malformed.
    pub handshake_failed: u64,
    /// Handshakes older than the device's live sealed session (replayed).
    pub handshake_replayed: u64,
    /// Clear LOGINs refused because raw-UDP sessions must be sealed.
    pub seal_required: u64,
    /// Sealed packets whose tag did not verify: tampered, truncated or forged.
    pub sealed_rejected: u64,
    /// Authentic sealed packets received again (replays or network copies).
    pub sealed_replayed: u64,
    /// Clear packets naming a sealed session, or sealed ones naming a clear
    /// session: forged, dropped.
    pub seal_mismatch: u64,
    /// Stateless ERROR answers not sent because the global budget
    /// (`stateless_reply_rate`) was spent: a flood is not reflected.
    pub replies_suppressed: u64,
    /// Trims of a conversation's history past its retention.
    pub history_trimmed: u64,
    /// Group records not written to an offline member's sync timeline
    /// (read fan-out: the member catches up from the group's timeline).
    pub group_entries_skipped: u64,
    /// Members' group states caught up after read fan-out left them behind.
    pub group_states_caught_up: u64,
    /// Spare copies of a handshake's message 1 answered again from the
    /// kept answer, without an X25519 operation.
    pub handshake_copies: u64,
}
