//! Server addresses and tokens as typed on the command line.

use std::net::SocketAddr;

use super::CliError;
use crate::client::{ServerAddr, Transport};

/// Default raw UDP port of `ternd`.
pub const DEFAULT_PORT: u16 = 7400;
/// Default QUIC port of `ternd`: the one after raw UDP's.
pub const DEFAULT_QUIC_PORT: u16 = 7401;

/// Parses `udp://HOST[:PORT]`, `quic://HOST[:PORT]` or `HOST[:PORT]` (raw
/// UDP) and resolves it; the port defaults to 7400 for UDP, 7401 for QUIC.
pub fn parse_server_addr(s: &str) -> Result<ServerAddr, CliError> {
    let (transport, rest) = match s.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "udp" => (Transport::Udp, rest),
            "quic" => (Transport::Quic, rest),
            other => {
                return Err(CliError::BadServer(format!(
                    "{s}: unknown scheme {other}:// (use udp://HOST:PORT or quic://HOST:PORT)"
                )))
            }
        },
        None => (Transport::Udp, s),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(CliError::BadServer(format!("{s}: no host")));
    }
    let port = match transport {
        Transport::Udp => DEFAULT_PORT,
        Transport::Quic => DEFAULT_QUIC_PORT,
    };
    let with_port = match rest.parse::<std::net::IpAddr>() {
        // A bare IP (IPv6 literals contain colons).
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Ok(ip) => format!("{ip}:{port}"),
        Err(_) if !rest.contains(':') => format!("{rest}:{port}"),
        Err(_) => rest.to_string(),
    };
    format!("{}://{with_port}", transport.scheme())
        .parse()
        .map_err(|e: crate::client::AddrParseError| CliError::BadServer(e.to_string()))
}

/// Parses a raw UDP server address (as [`parse_server_addr`]), for tools
/// that speak raw UDP only.
pub fn parse_server(s: &str) -> Result<SocketAddr, CliError> {
    let a = parse_server_addr(s)?;
    match a.transport {
        Transport::Udp => Ok(a.addr),
        Transport::Quic => Err(CliError::BadServer(format!(
            "{s}: this command speaks raw UDP only (use udp://HOST:PORT)"
        ))),
    }
}

/// Decodes a hex token.
pub fn parse_token(s: &str) -> Result<Vec<u8>, CliError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(CliError::BadToken("empty".into()));
    }
    hex::decode(t).map_err(|e| CliError::BadToken(format!("not hex: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_with_their_transport_and_default_port() {
        let q = parse_server_addr("quic://127.0.0.1").unwrap();
        assert_eq!(q.transport, Transport::Quic);
        assert_eq!(q.addr, "127.0.0.1:7401".parse().unwrap());
        let q = parse_server_addr("QUIC://localhost:9/").unwrap();
        assert_eq!((q.transport, q.addr.port()), (Transport::Quic, 9));
        assert_eq!(q.host, "localhost");
        let u = parse_server_addr("::1").unwrap();
        assert_eq!(u, ServerAddr::udp("[::1]:7400".parse().unwrap()));
        assert_eq!(
            parse_server("udp://127.0.0.1:1").unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert!(parse_server("quic://127.0.0.1:1").is_err());
        assert!(parse_server_addr("tcp://127.0.0.1:1").is_err());
        assert!(parse_server_addr("quic://").is_err());
    }
}
