//! What `ternd serve` prints on stdout once it listens: first the facts
//! that scripts and the lab's launcher read, one per line
//!
//! ```text
//! seal key tern-x25519:…            (or: seal off …)
//! listening on api http://127.0.0.1:…   (only when [api] listen is set)
//! listening on udp://127.0.0.1:7400
//! listening on quic://127.0.0.1:7401 (or: quic off …)
//! quic certificate sha256 …
//! ```
//!
//! then `tern` command lines that work against this daemon as it runs, for
//! raw UDP and for QUIC, with the seal key or certificate fingerprint and a
//! token command filled in, ready to paste into a POSIX shell.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tern_core::seal::PublicKey;

/// Prefix of the command lines over raw UDP.
pub const UDP_PREFIX: &str = "  udp:  ";
/// Prefix of the command lines over QUIC.
pub const QUIC_PREFIX: &str = "  quic: ";

/// What a started daemon is, for [`lines`].
#[derive(Debug, Clone)]
pub struct Started {
    /// Where raw UDP listens.
    pub udp: SocketAddr,
    /// Where QUIC listens, and the SHA-256 fingerprint of its certificate.
    pub quic: Option<(SocketAddr, String)>,
    /// The key raw-UDP clients seal with (`None`: `[seal] policy = "off"`).
    pub seal_key: Option<PublicKey>,
    /// Where the server API listens (`None`: `[api]` off).
    pub api: Option<SocketAddr>,
    /// How to run `ternd token` for this daemon, e.g. `/bin/ternd token
    /// --data-dir /var/lib/tern` (already quoted for the shell).
    pub token_command: String,
    /// How to run `tern` (already quoted), e.g. `/usr/bin/tern`.
    pub tern: String,
}

/// Quotes `word` for a POSIX shell when it needs it.
pub fn sh_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// An address a client on this machine can reach: a wildcard listen
/// address becomes the loopback address of its family.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Every line to print, in order.
pub fn lines(s: &Started) -> Vec<String> {
    let mut out = Vec::new();
    match &s.seal_key {
        Some(k) => out.push(format!("seal key {k}")),
        None => out
            .push("seal off: raw UDP sessions are not encrypted ([seal] policy = \"off\")".into()),
    }
    if let Some(addr) = s.api {
        // Before the UDP line: launchers stop reading after the QUIC lines.
        out.push(format!("listening on api http://{addr}"));
    }
    out.push(format!("listening on udp://{}", s.udp));
    match &s.quic {
        Some((addr, fp)) => {
            out.push(format!("listening on quic://{addr}"));
            out.push(format!("quic certificate sha256 {fp}"));
        }
        None => out.push("quic off ([quic] listen = \"off\")".into()),
    }
    out.push(
        "try it: user 2 receives, user 1 sends (tokens from `ternd token`; POSIX shell):".into(),
    );
    let udp_trust = match &s.seal_key {
        Some(k) => format!(" --seal-key {k}"),
        None => String::new(),
    };
    let mut pair = |prefix: &str, server: String, trust: &str| {
        let token = |user: u32| format!("TERN_TOKEN=$({} --user {user})", s.token_command);
        out.push(format!(
            "{prefix}{} {} recv --server {server}{trust} --count 1",
            token(2),
            s.tern
        ));
        out.push(format!(
            "{prefix}{} {} send --server {server}{trust} --to 2 hello",
            token(1),
            s.tern
        ));
    };
    pair(
        UDP_PREFIX,
        format!("udp://{}", reachable(s.udp)),
        &udp_trust,
    );
    if let Some((addr, fp)) = &s.quic {
        pair(
            QUIC_PREFIX,
            format!("quic://{}", reachable(*addr)),
            &format!(" --quic-fingerprint {fp}"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(seal: bool, quic: bool) -> Started {
        Started {
            udp: "0.0.0.0:7400".parse().unwrap(),
            quic: quic.then(|| ("[::]:7401".parse().unwrap(), "ab".repeat(32))),
            seal_key: seal.then(|| tern_core::seal::StaticKey::from_secret([1; 32]).public()),
            api: None,
            token_command: "/x/ternd token --data-dir '/d d'".into(),
            tern: "/x/tern".into(),
        }
    }

    #[test]
    fn commands_carry_the_trust_each_transport_needs() {
        let all = lines(&started(true, true));
        let key = tern_core::seal::StaticKey::from_secret([1; 32]).public();
        assert_eq!(all[0], format!("seal key {key}"));
        assert_eq!(all[1], "listening on udp://0.0.0.0:7400");
        assert_eq!(all[2], "listening on quic://[::]:7401");
        let udp: Vec<_> = all.iter().filter(|l| l.starts_with(UDP_PREFIX)).collect();
        let quic: Vec<_> = all.iter().filter(|l| l.starts_with(QUIC_PREFIX)).collect();
        assert_eq!((udp.len(), quic.len()), (2, 2));
        for l in &udp {
            assert!(l.contains("--server udp://127.0.0.1:7400 "), "{l}");
            assert!(l.contains(&format!("--seal-key {key}")), "{l}");
        }
        for l in &quic {
            assert!(l.contains("--server quic://[::1]:7401 "), "{l}");
            assert!(
                l.contains(&format!("--quic-fingerprint {}", "ab".repeat(32))),
                "{l}"
            );
        }
        assert_eq!(
            udp[0].as_str(),
            format!(
                "{UDP_PREFIX}TERN_TOKEN=$(/x/ternd token --data-dir '/d d' --user 2) /x/tern recv \
                 --server udp://127.0.0.1:7400 --seal-key {key} --count 1"
            )
        );
    }

    #[test]
    fn without_sealing_or_quic_it_says_so() {
        let all = lines(&started(false, false));
        assert!(all[0].starts_with("seal off"), "{all:?}");
        assert!(all.iter().any(|l| l.starts_with("quic off")), "{all:?}");
        assert!(!all.iter().any(|l| l.contains("--seal-key")));
        assert!(!all.iter().any(|l| l.starts_with(QUIC_PREFIX)));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(sh_word("/usr/bin/tern"), "/usr/bin/tern");
        assert_eq!(sh_word("my dir"), "'my dir'");
        assert_eq!(sh_word("it's"), r"'it'\''s'");
        assert_eq!(sh_word(""), "''");
    }
}
