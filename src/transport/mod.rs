//! Moving Tern packets over sockets, shared by the daemon and the client
//! library: UDP socket setup (`udp`) and what QUIC needs on both sides
//! (`quic`). Neither knows the protocol; the core does.

pub mod quic;
pub mod udp;
