//! What Tern over QUIC (`proto-spec/quic.md`) needs on both sides: the ALPN
//! id, the packet size, certificate fingerprints, the transport parameters,
//! and waiting for queued datagrams to leave.

use std::time::Duration;

use sha2::{Digest, Sha256};

/// ALPN protocol id of Tern version 1 over QUIC.
pub const ALPN: &[u8] = b"tern/1";

/// Largest Tern packet sent over QUIC, trailer included.
///
/// QUIC guarantees a UDP payload of at least 1200 bytes. A 1-RTT packet
/// spends at most 1 (flags) + 20 (connection id) + 4 (packet number) + 16
/// (AEAD tag) bytes, and quinn reserves 9 bytes for the DATAGRAM frame
/// header: 1200 − 50 = 1150 always fits `Connection::max_datagram_size()`,
/// whatever path MTU discovery finds. The widest DELIVER with a full
/// 1024-byte payload is 1106 bytes, so nothing Tern sends needs more.
pub const MAX_PACKET: usize = 1150;

/// SHA-256 of a DER certificate, lowercase hex: what clients pin.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

/// Parses a pinned fingerprint: 64 hex digits, colons allowed, any case,
/// an optional `sha256:` prefix.
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(digits).ok()?;
    bytes.try_into().ok()
}

/// Outgoing datagram buffer of every connection.
const DATAGRAM_SEND_BUFFER: usize = 1 << 20;

/// Waits until every datagram queued on `conns` has been handed to the
/// socket (or the connection closed), for at most `limit`: closing a
/// connection discards what is still queued.
pub async fn flush_datagrams(conns: &[quinn::Connection], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    // quinn counts its bookkeeping (one `Bytes`, 32 bytes) even when the
    // queue is empty; one queued Tern packet (at least 15 bytes) costs its
    // length plus that bookkeeping again, so this threshold means "empty".
    let flushed = |c: &quinn::Connection| {
        c.close_reason().is_some() || c.datagram_send_buffer_space() >= DATAGRAM_SEND_BUFFER - 64
    };
    while !conns.iter().all(flushed) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Transport parameters shared by the server and the client: no streams
/// (Tern uses DATAGRAM frames only), datagram buffers, the idle timeout.
pub fn transport_config(idle: Duration) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(0u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.datagram_receive_buffer_size(Some(DATAGRAM_SEND_BUFFER));
    t.datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
    t.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_common_spellings() {
        let fp = fingerprint(b"not really a certificate");
        let bytes = parse_fingerprint(&fp).unwrap();
        assert_eq!(hex::encode(bytes), fp);
        let colons = fp
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colons), Some(bytes));
        assert_eq!(parse_fingerprint(&format!("sha256:{fp}")), Some(bytes));
        assert_eq!(parse_fingerprint(&fp[..62]), None);
        assert_eq!(parse_fingerprint("zz"), None);
    }
}
