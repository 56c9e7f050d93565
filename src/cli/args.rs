//! Server addresses and tokens as typed on the command line.

use std::net::{SocketAddr, ToSocketAddrs};

use super::CliError;

/// Default UDP port of `ternd`.
pub const DEFAULT_PORT: u16 = 7400;

/// Parses `udp://HOST:PORT`, `HOST:PORT` or `HOST` (port 7400) and resolves it.
pub fn parse_server(s: &str) -> Result<SocketAddr, CliError> {
    let rest = match s.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "udp" => rest,
            "quic" => return Err(CliError::QuicUnsupported),
            other => {
                return Err(CliError::BadServer(format!(
                    "{s}: unknown scheme {other}:// (use udp://HOST:PORT)"
                )))
            }
        },
        None => s,
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(CliError::BadServer(format!("{s}: no host")));
    }
    let with_port = if rest.parse::<std::net::IpAddr>().is_ok() || !rest.contains(':') {
        // A bare host or a bare IP (IPv6 literals contain colons).
        match rest.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{DEFAULT_PORT}"),
            _ => format!("{rest}:{DEFAULT_PORT}"),
        }
    } else {
        rest.to_string()
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| CliError::BadServer(format!("{s}: {e}")))?
        .next()
        .ok_or_else(|| CliError::BadServer(format!("{s}: resolves to no address")))
}

/// Decodes a hex token.
pub fn parse_token(s: &str) -> Result<Vec<u8>, CliError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(CliError::BadToken("empty".into()));
    }
    hex::decode(t).map_err(|e| CliError::BadToken(format!("not hex: {e}")))
}
