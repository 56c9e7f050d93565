//! Moving Tern packets over sockets, shared by the daemon and the client
//! library: UDP socket setup (`udp`), the daemon's kernel filter for
//! datagrams that cannot be Tern packets (`intake_filter`), and what QUIC
//! needs on both sides (`quic`). The protocol itself is the core's.

pub mod intake_filter;
pub mod quic;
pub mod udp;
