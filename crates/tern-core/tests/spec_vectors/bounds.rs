//! The vectors of sizes and bounds: the smallest datagram a clear LOGIN
//! travels in, lengths above their bound (`TooLong`, named by field, before
//! any byte of the field is read) and values a field may not hold
//! (`InvalidValue`).

use tern_core::wire::{DecodeError, Frame, Login};

use super::{bad_value, invalid, text, too_long, valid, Expect};

/// The size and bound vectors, by name.
pub fn vectors() -> Vec<(&'static str, Expect)> {
    vec![
        (
            "login_short_token",
            valid(
                0,
                1,
                vec![
                    Frame::Login(Login {
                        token: text("token-1234"),
                        epoch: 0,
                        checkpoint: 0,
                    }),
                    Frame::Padding(67),
                ],
            ),
        ),
        ("oversize_payload", too_long("payload", 1025, 1024)),
        ("oversize_token", too_long("token", 513, 512)),
        (
            "huge_extension_length",
            too_long("extension", (1 << 62) - 1, 1024),
        ),
        ("too_many_ack_ranges", too_long("ack ranges", 33, 32)),
        ("ack_ranges_touching", bad_value("ack gap")),
        ("ack_range_overflow", bad_value("ack gap")),
        ("too_many_previews", too_long("previews", 9, 8)),
        ("zero_seq", bad_value("seq")),
        ("zero_target_seq", bad_value("target_seq")),
        ("zero_next_send_seq", bad_value("next_send_seq")),
        ("device_over_u32", bad_value("device")),
        ("bad_ack_flags", bad_value("ack flags")),
        ("bad_end_flag", bad_value("end")),
        ("bad_entry_kind", bad_value("entry kind")),
        ("bad_receipt_status", bad_value("status")),
        (
            "bad_utf8_reason",
            invalid(DecodeError::InvalidUtf8 { field: "reason" }),
        ),
        ("oversize_cookie", too_long("cookie", 65, 64)),
        ("oversize_handshake", too_long("handshake", 1025, 1024)),
        ("oversize_preview", too_long("preview", 65, 64)),
        ("oversize_reason", too_long("reason", 257, 256)),
        ("from_device_over_u32", bad_value("from_device")),
        ("target_device_over_u32", bad_value("target_device")),
    ]
}
