//! Protocol-wide size limits. Every variable-length field on the wire is bounded
//! by one of these before anything is allocated for it.

/// Largest datagram an endpoint sends by default. Fits the IPv6 minimum MTU
/// (1280) minus IP and UDP headers with room to spare, so no path fragments it.
pub const MAX_DATAGRAM: usize = 1200;
/// Largest datagram an endpoint accepts. Bigger ones are dropped unread.
pub const MAX_RECV_DATAGRAM: usize = 1500;
/// Smallest datagram carrying a clear LOGIN, padding and trailer included.
/// Every answer a server may send before it has proof of the client's
/// address fits in it: the largest, a RETRY with a [`MAX_COOKIE`]-byte
/// cookie, is 82 bytes (an ERROR, its reason cut to 60 bytes, at most 80).
pub const MIN_LOGIN_DATAGRAM: usize = 96;
/// Largest application payload of one message.
pub const MAX_PAYLOAD: usize = 1024;
/// Largest login token.
pub const MAX_TOKEN: usize = 512;
/// Largest number of selective ranges in one ACK frame.
pub const MAX_ACK_RANGES: usize = 32;
/// Largest address-validation cookie.
pub const MAX_COOKIE: usize = 64;
/// Largest sealed-session handshake message (an X25519 key, a LOGIN with
/// the largest token, and a tag fit with room to spare).
pub const MAX_HANDSHAKE: usize = 1024;
/// Largest human-readable text in an ERROR frame.
pub const MAX_REASON: usize = 256;
/// Largest preview payload carried inside a conversation summary.
pub const MAX_PREVIEW: usize = 64;
/// Largest number of previews in one conversation summary.
pub const MAX_PREVIEWS: usize = 8;
/// Largest body of a skippable extension frame.
pub const MAX_EXTENSION: usize = 1024;
/// Largest number of entries a client may ask for in one pull page.
pub const MAX_PAGE_ENTRIES: u64 = 4096;
/// At login the server pushes the backlog itself only when the device is at
/// most this many entries behind; otherwise the client pulls (counters first).
pub const PUSH_BACKLOG_LIMIT: u64 = 64;
/// Most entries the server puts in one pull page.
pub const PAGE_ENTRIES_DEFAULT: u64 = 256;
