//! Server addresses with their transport: `udp://host:port`,
//! `quic://host:port`, or a bare `host:port` (UDP).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Which transport carries the Tern packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// One Tern packet per UDP datagram (`udp://`).
    #[default]
    Udp,
    /// One Tern packet per QUIC DATAGRAM frame, ALPN `tern/1` (`quic://`).
    Quic,
}

impl Transport {
    /// The URL scheme: `udp` or `quic`.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Quic => "quic",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// A server address with its transport: `udp://host:port`,
/// `quic://host:port`, or a bare `host:port` (UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// The transport.
    pub transport: Transport,
    /// The resolved address.
    pub addr: SocketAddr,
    /// The host as written (a name or an IP literal): the TLS server name
    /// checked against the certificate over QUIC with a CA file.
    pub host: String,
}

impl ServerAddr {
    /// A UDP server address.
    pub fn udp(addr: SocketAddr) -> Self {
        ServerAddr {
            transport: Transport::Udp,
            addr,
            host: addr.ip().to_string(),
        }
    }

    /// A QUIC server address; the TLS name is the IP address.
    pub fn quic(addr: SocketAddr) -> Self {
        ServerAddr {
            transport: Transport::Quic,
            ..ServerAddr::udp(addr)
        }
    }
}

impl From<SocketAddr> for ServerAddr {
    fn from(addr: SocketAddr) -> Self {
        ServerAddr::udp(addr)
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.transport, self.addr)
    }
}

/// Why a server address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid server address {input:?}: {reason}")]
pub struct AddrParseError {
    input: String,
    reason: String,
}

impl FromStr for ServerAddr {
    type Err = AddrParseError;

    /// Parses and resolves (a host name is looked up, blocking, and the
    /// first address is used).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| AddrParseError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (transport, rest) = match s.split_once("://") {
            Some(("udp", rest)) => (Transport::Udp, rest),
            Some(("quic", rest)) => (Transport::Quic, rest),
            Some(_) => return Err(err("the scheme must be udp:// or quic://")),
            None => (Transport::Udp, s),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| err("expected host:port"))?;
        let port: u16 = port.parse().map_err(|_| err("the port is not a number"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(err("the host is empty"));
        }
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| err(&e.to_string()))?
            .next()
            .ok_or_else(|| err("the host has no address"))?;
        Ok(ServerAddr {
            transport,
            addr,
            host: host.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_parse_with_their_transport() {
        let a: ServerAddr = "quic://127.0.0.1:7401".parse().unwrap();
        assert_eq!(a.transport, Transport::Quic);
        assert_eq!(a.addr, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(a.host, "127.0.0.1");
        assert_eq!(a.to_string(), "quic://127.0.0.1:7401");
        let u: ServerAddr = "udp://[::1]:7400".parse().unwrap();
        assert_eq!(u.transport, Transport::Udp);
        assert_eq!(u.addr, "[::1]:7400".parse().unwrap());
        assert_eq!(u.host, "::1");
        let bare: ServerAddr = "127.0.0.1:7400".parse().unwrap();
        assert_eq!(bare, ServerAddr::udp("127.0.0.1:7400".parse().unwrap()));
        let named: ServerAddr = "quic://localhost:7401".parse().unwrap();
        assert_eq!(named.host, "localhost");
        assert!(named.addr.ip().is_loopback());
        for bad in [
            "tcp://127.0.0.1:1",
            "quic://127.0.0.1",
            "udp://:7400",
            "quic://h:port",
        ] {
            assert!(bad.parse::<ServerAddr>().is_err(), "{bad}");
        }
    }
}
