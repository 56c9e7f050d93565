//! Tern's protocol core. Everything here is a pure state machine: no sockets, no
//! async runtime, no clock. Time comes in as an argument; datagrams, storage
//! writes and events come out as values. The daemon and the client library are
//! thin drivers around it, and the simulator drives it in virtual time.

pub mod auth;
pub mod broker;
pub mod client;
pub mod conv;
pub mod rate_limit;
pub mod reliability;
pub mod seal;
pub mod store;
pub mod time;
pub mod wire;
