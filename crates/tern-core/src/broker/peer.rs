//! Who a datagram came from: an address and the transport it arrived on.
//!
//! The driver tags every datagram by the socket or connection it read it
//! from, so the tag cannot be forged by a sender: a raw UDP datagram is a
//! [`Transport::Udp`] peer whatever its source address.

use std::fmt;
use std::net::SocketAddr;

/// The transport a peer reaches the broker over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Raw UDP: the address is the datagram's source. Logins are answered
    /// with a RETRY cookie first (when `validate_addresses` is on), and the
    /// seal policy applies.
    Udp,
    /// A QUIC connection: TLS encrypts it and QUIC validated its address, so
    /// it logs in without a RETRY and may log in in the clear whatever the
    /// seal policy. The address is a key the driver gives the connection.
    Quic,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Quic => "quic",
        })
    }
}

/// A peer of the broker. Sessions follow their peer: a packet from another
/// peer (another address, or the same address over another transport) moves
/// the session there under the usual address-change rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// For UDP, the source address. For QUIC, a key the driver allocates,
    /// unique per connection and stable while it lives (so QUIC connection
    /// migration is invisible to the broker).
    pub addr: SocketAddr,
    /// How the peer's datagrams arrive and how answers must leave.
    pub transport: Transport,
}

impl Peer {
    /// A raw-UDP peer at `addr`.
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            transport: Transport::Udp,
        }
    }

    /// The QUIC connection the driver knows by `key`.
    pub fn quic(key: SocketAddr) -> Peer {
        Peer {
            addr: key,
            transport: Transport::Quic,
        }
    }

    /// Whether the peer is a QUIC connection (encrypted by TLS, its address
    /// validated by QUIC).
    pub fn is_quic(&self) -> bool {
        self.transport == Transport::Quic
    }
}

/// A bare address is a raw-UDP peer.
impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Peer {
        Peer::udp(addr)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.transport, self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_not_the_address_tells_quic_apart() {
        // The prefix the daemon's QUIC keys once had: it means nothing now.
        let addr: SocketAddr = "[fd54:6572:6e00::1]:1".parse().unwrap();
        let udp = Peer::from(addr);
        assert!(!udp.is_quic(), "no address makes a UDP source a QUIC peer");
        assert!(Peer::quic(addr).is_quic());
        assert_ne!(udp, Peer::quic(addr));
        assert_eq!(udp.to_string(), "udp [fd54:6572:6e00::1]:1");
        assert_eq!(Peer::quic(addr).to_string(), "quic [fd54:6572:6e00::1]:1");
    }
}
