//! What the broker checks before it spends state or bytes on a source:
//! stateless address-validation cookies (a spoofed source never gets more
//! bytes than it sent, and creates no state) and token-bucket rate limits per
//! source address and per session, so a flood from one source cannot starve
//! the others.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Peer, Transport};
use crate::rate_limit::SourceLimits;
use crate::time::Time;

/// How long a cookie is accepted after it was issued, in microseconds.
const COOKIE_LIFETIME_US: u64 = 60_000_000;
/// Bytes of MAC kept in a cookie.
const COOKIE_MAC: usize = 16;
/// First byte of an address token (a cookie starts with its issue time,
/// whose first byte is 0 for the next two thousand years).
const TOKEN_KIND: u8 = 0xA7;
/// Length of an address token: kind, issue time, MAC.
pub(crate) const ADDRESS_TOKEN_LEN: usize = 1 + 8 + COOKIE_MAC;

pub(crate) use crate::rate_limit::Bucket;

/// Admission control for packets that have no session yet.
pub(crate) struct Admission {
    secret: [u8; 32],
    /// Key of address tokens: lasts across restarts when the operator's
    /// secret provides it (`BrokerConfig::address_token_key`).
    token_key: [u8; 32],
    /// Buckets by source IP, apart per transport.
    sources: SourceLimits<(Transport, IpAddr)>,
}

impl Admission {
    pub fn new(secret: [u8; 32], rate: f64, burst: f64, max_sources: usize) -> Self {
        Admission {
            secret,
            token_key: secret,
            sources: SourceLimits::new(rate, burst, max_sources),
        }
    }

    /// Address tokens are made and checked with `key` from now on.
    pub fn set_token_key(&mut self, key: [u8; 32]) {
        self.token_key = key;
    }

    /// Source addresses with a bucket (at most `max_sources`).
    pub fn tracked(&self) -> usize {
        self.sources.tracked()
    }

    /// May a pre-login packet from `from` be looked at now?
    pub fn allow(&mut self, now: Time, from: &Peer) -> bool {
        self.sources.allow(now, (from.transport, from.addr.ip()))
    }

    fn mac(&self, issued_us: u64, addr: SocketAddr) -> [u8; COOKIE_MAC] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("any key length");
        m.update(&issued_us.to_be_bytes());
        match addr.ip() {
            IpAddr::V4(ip) => m.update(&ip.octets()),
            IpAddr::V6(ip) => m.update(&ip.octets()),
        }
        m.update(&addr.port().to_be_bytes());
        let tag = m.finalize().into_bytes();
        let mut out = [0u8; COOKIE_MAC];
        out.copy_from_slice(&tag[..COOKIE_MAC]);
        out
    }

    /// A cookie binding `addr` to the time it is issued, `wall_us` (Unix
    /// microseconds): the time in clear, then a MAC over it and the address.
    pub fn cookie(&self, wall_us: u64, addr: SocketAddr) -> Bytes {
        let mut v = Vec::with_capacity(8 + COOKIE_MAC);
        v.extend_from_slice(&wall_us.to_be_bytes());
        v.extend_from_slice(&self.mac(wall_us, addr));
        Bytes::from(v)
    }

    fn token_mac(&self, issued_us: u64, ip: IpAddr) -> [u8; COOKIE_MAC] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.token_key).expect("any key length");
        m.update(&[TOKEN_KIND]);
        m.update(&issued_us.to_be_bytes());
        match ip {
            IpAddr::V4(ip) => m.update(&ip.octets()),
            IpAddr::V6(ip) => m.update(&ip.octets()),
        }
        let tag = m.finalize().into_bytes();
        let mut out = [0u8; COOKIE_MAC];
        out.copy_from_slice(&tag[..COOKIE_MAC]);
        out
    }

    /// An address token for a client at `ip`, issued at `wall_us`: like a
    /// cookie, but bound to the IP address only (a NAT may give the client
    /// another port next time) and accepted for much longer.
    pub fn address_token(&self, wall_us: u64, ip: IpAddr) -> Bytes {
        let mut v = Vec::with_capacity(ADDRESS_TOKEN_LEN);
        v.push(TOKEN_KIND);
        v.extend_from_slice(&wall_us.to_be_bytes());
        v.extend_from_slice(&self.token_mac(wall_us, ip));
        Bytes::from(v)
    }

    /// Whether `token` is an address token we issued to `ip` within
    /// `lifetime_us` before `wall_us`.
    pub fn token_valid(&self, wall_us: u64, ip: IpAddr, token: &[u8], lifetime_us: u64) -> bool {
        self.token_issued(wall_us, ip, token, lifetime_us).is_some()
    }

    /// When `token` was issued, if it is an address token we issued to
    /// `ip` within `lifetime_us` before `wall_us`.
    pub fn token_issued(
        &self,
        wall_us: u64,
        ip: IpAddr,
        token: &[u8],
        lifetime_us: u64,
    ) -> Option<u64> {
        if token.len() != ADDRESS_TOKEN_LEN || token[0] != TOKEN_KIND {
            return None;
        }
        let issued = u64::from_be_bytes(token[1..9].try_into().unwrap_or([0; 8]));
        if issued > wall_us || wall_us - issued > lifetime_us {
            return None;
        }
        let want = self.token_mac(issued, ip);
        let diff = want
            .iter()
            .zip(&token[9..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then_some(issued)
    }

    /// When `cookie` was issued, if we issued it to `addr` within the last
    /// [`COOKIE_LIFETIME_US`] before `wall_us`. The issue time also tells
    /// whether the cookie is younger than a session (`login.rs`).
    pub fn issued(&self, wall_us: u64, addr: SocketAddr, cookie: &[u8]) -> Option<u64> {
        if cookie.len() != 8 + COOKIE_MAC {
            return None;
        }
        let issued = u64::from_be_bytes(cookie[..8].try_into().unwrap_or([0; 8]));
        if issued > wall_us || wall_us - issued > COOKIE_LIFETIME_US {
            return None;
        }
        // Constant-time comparison of the MAC.
        let want = self.mac(issued, addr);
        let diff = want
            .iter()
            .zip(&cookie[8..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then_some(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A raw-UDP source at `ip`.
    fn src(ip: [u8; 4]) -> Peer {
        Peer::udp(SocketAddr::from((ip, 9)))
    }

    #[test]
    fn cookie_is_bound_to_address_and_time() {
        let a = Admission::new([7; 32], 10.0, 10.0, 10);
        let t = 1_700_000_000_000_000;
        let c = a.cookie(t, addr(1));
        assert_eq!(a.issued(t, addr(1), &c), Some(t));
        assert_eq!(
            a.issued(t + COOKIE_LIFETIME_US, addr(1), &c),
            Some(t),
            "valid for its whole lifetime"
        );
        assert_eq!(a.issued(t + COOKIE_LIFETIME_US + 1, addr(1), &c), None);
        assert_eq!(a.issued(t - 1, addr(1), &c), None, "issued in the future");
        assert_eq!(a.issued(t, addr(2), &c), None, "another port");
        let mut forged = c.to_vec();
        forged[12] ^= 1;
        assert_eq!(a.issued(t, addr(1), &forged), None);
        let mut moved = c.to_vec();
        moved[7] ^= 1;
        assert_eq!(
            a.issued(t, addr(1), &moved),
            None,
            "the time is under the MAC"
        );
        assert_eq!(a.issued(t, addr(1), &c[..10]), None);
    }

    #[test]
    fn an_address_token_is_bound_to_the_ip_and_its_lifetime_not_the_port() {
        let mut a = Admission::new([7; 32], 10.0, 10.0, 10);
        let t = 1_700_000_000_000_000;
        let week = 7 * 24 * 3600 * 1_000_000;
        let ip = addr(1).ip();
        let tok = a.address_token(t, ip);
        assert_eq!(tok.len(), ADDRESS_TOKEN_LEN);
        assert!(
            a.token_valid(t + week, ip, &tok, week),
            "its whole lifetime"
        );
        assert!(!a.token_valid(t + week + 1, ip, &tok, week), "expired");
        assert!(
            !a.token_valid(t - 1, ip, &tok, week),
            "issued in the future"
        );
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(!a.token_valid(t, other, &tok, week), "another address");
        let mut moved = tok.to_vec();
        moved[8] ^= 1;
        assert!(
            !a.token_valid(t, ip, &moved, week),
            "the time is under the MAC"
        );
        assert!(!a.token_valid(t, ip, &tok[..20], week));
        assert_eq!(a.issued(t, addr(1), &tok), None, "a token is not a cookie");
        let cookie = a.cookie(t, addr(1));
        assert!(
            !a.token_valid(t, ip, &cookie, week),
            "a cookie is not a token"
        );
        a.set_token_key([8; 32]);
        assert!(!a.token_valid(t, ip, &tok, week), "another key");
        assert!(a.token_valid(t, ip, &a.address_token(t, ip), week));
    }

    #[test]
    fn bucket_limits_one_source_not_others() {
        let mut a = Admission::new([0; 32], 10.0, 5.0, 100);
        let ip = src([10, 0, 0, 1]);
        let other = src([10, 0, 0, 2]);
        let t = Time::from_secs(1);
        assert_eq!((0..20).filter(|_| a.allow(t, &ip)).count(), 5);
        assert!(a.allow(t, &other));
        assert!(
            a.allow(t + Duration::from_millis(100), &ip),
            "refills at 10/s"
        );
    }

    #[test]
    fn source_table_is_bounded() {
        let mut a = Admission::new([0; 32], 1.0, 1.0, 2);
        let t = Time::from_secs(1);
        assert!(a.allow(t, &src([10, 0, 0, 1])));
        assert!(a.allow(t, &src([10, 0, 0, 2])));
        assert!(
            !a.allow(t, &src([10, 0, 0, 3])),
            "table full of fresh sources"
        );
        assert!(
            a.allow(t + Duration::from_secs(5), &src([10, 0, 0, 3])),
            "idle ones forgotten"
        );
    }

    #[test]
    fn a_udp_source_never_spends_a_quic_peers_budget() {
        let mut a = Admission::new([0; 32], 1.0, 1.0, 100);
        let t = Time::from_secs(1);
        let udp = src([10, 0, 0, 1]);
        let quic = Peer::quic(udp.addr);
        assert!(a.allow(t, &udp));
        assert!(!a.allow(t, &udp), "its one token is spent");
        assert!(
            a.allow(t, &quic),
            "same address, other transport: its own bucket"
        );
    }
}
