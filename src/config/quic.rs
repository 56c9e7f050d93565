//! `[quic]`: Tern over QUIC DATAGRAM frames (`proto-spec/quic.md`), served
//! by default next to raw UDP, on the next port.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `[quic]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicSection {
    /// Where QUIC listens (ALPN `tern/1`): `"next"` (the default) is the
    /// raw UDP address with the next port (`127.0.0.1:7401` beside
    /// `127.0.0.1:7400`; any free port when the UDP port is 0), `"off"`
    /// serves no QUIC, and an address serves it there (port 0 picks one).
    pub listen: QuicListen,
    /// PEM certificate chain, end-entity certificate first. Empty (with
    /// `key_file` empty too): a self-signed certificate is generated once
    /// and kept in `<data_dir>/quic-cert.pem`; its SHA-256 fingerprint is
    /// printed at start so that clients can pin it.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: PathBuf,
}

/// Where QUIC listens, as `[quic] listen`, `TERN_QUIC_LISTEN` or
/// `ternd serve --quic` spell it: `next`, `off` (or empty) or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum QuicListen {
    /// The raw UDP address with the next port; port 0 if UDP's is 0.
    #[default]
    Next,
    /// No QUIC.
    Off,
    /// This address; port 0 picks a free one.
    At(SocketAddr),
}

impl QuicListen {
    /// The address QUIC binds when raw UDP is configured on `udp`, or
    /// `None` when it is off (or `next` has no next port).
    pub fn resolve(self, udp: SocketAddr) -> Option<SocketAddr> {
        match self {
            QuicListen::Off => None,
            QuicListen::At(a) => Some(a),
            QuicListen::Next if udp.port() == 0 => Some(udp),
            QuicListen::Next => Some(SocketAddr::new(udp.ip(), udp.port().checked_add(1)?)),
        }
    }
}

impl FromStr for QuicListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "next" => Ok(QuicListen::Next),
            "off" | "" => Ok(QuicListen::Off),
            a => a.parse().map(QuicListen::At).map_err(|_| {
                format!("{s:?} is not \"next\", \"off\" or an address like 127.0.0.1:7401")
            }),
        }
    }
}

impl TryFrom<String> for QuicListen {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<QuicListen> for String {
    fn from(l: QuicListen) -> String {
        l.to_string()
    }
}

impl fmt::Display for QuicListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuicListen::Next => f.write_str("next"),
            QuicListen::Off => f.write_str("off"),
            QuicListen::At(a) => write!(f, "{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn next_is_the_following_port_or_any_port() {
        let next = QuicListen::default();
        assert_eq!(next, QuicListen::Next, "QUIC is on by default");
        assert_eq!(
            next.resolve(addr("127.0.0.1:7400")),
            Some(addr("127.0.0.1:7401"))
        );
        assert_eq!(next.resolve(addr("[::1]:0")), Some(addr("[::1]:0")));
        assert_eq!(next.resolve(addr("0.0.0.0:65535")), None);
        assert_eq!(QuicListen::Off.resolve(addr("127.0.0.1:7400")), None);
        let at = QuicListen::At(addr("10.0.0.1:9"));
        assert_eq!(at.resolve(addr("127.0.0.1:7400")), Some(addr("10.0.0.1:9")));
    }

    #[test]
    fn spellings_round_trip() {
        for (text, value) in [
            ("next", QuicListen::Next),
            ("off", QuicListen::Off),
            ("127.0.0.1:7401", QuicListen::At(addr("127.0.0.1:7401"))),
        ] {
            assert_eq!(text.parse::<QuicListen>(), Ok(value));
            assert_eq!(value.to_string(), text);
        }
        assert_eq!("".parse::<QuicListen>(), Ok(QuicListen::Off));
        let e = "7401".parse::<QuicListen>().unwrap_err();
        assert!(e.contains("next") && e.contains("off"), "{e}");
    }
}
