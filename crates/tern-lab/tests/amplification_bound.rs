//! A source the daemon has not validated never gets more bytes back than it
//! sent: every kind of pre-login datagram of `tern-bench amplification`
//! (LOGINs without or with bad cookies, garbage, bad versions and checksums,
//! unknown session ids, frames before login), against a real daemon on
//! 127.0.0.1:0. No timing is asserted: replies are counted until a quiet
//! spell and checked against the daemon's own count of what it sent.

#[test]
fn unvalidated_sources_get_at_most_one_byte_back_per_byte() {
    let dir = tempfile::tempdir().unwrap();
    let r = tern_lab::bench::amplification::measure(dir.path(), 3).unwrap();
    assert_eq!(
        r.replies_received, r.daemon_sent,
        "every reply the daemon sent was counted"
    );
    for k in &r.kinds {
        assert!(
            k.bytes_out <= k.bytes_in && k.worst_single <= 1.0,
            "{}: {} bytes in, {} bytes out (worst single probe {:.3})",
            k.name,
            k.bytes_in,
            k.bytes_out,
            k.worst_single
        );
    }
    assert!(r.max_factor() <= 1.0);
    // Not vacuous: cookieless LOGINs are answered (with RETRY), and so are
    // packets naming unknown sessions (with an ERROR).
    let answered = |prefix: &str| {
        r.kinds
            .iter()
            .filter(|k| k.name.starts_with(prefix))
            .all(|k| k.replies == k.probes)
    };
    assert!(answered("LOGIN, no cookie, padded"));
    assert!(answered("HEARTBEAT, random session id"));
    assert_eq!(r.snapshot.broker.logins, 0, "no probe opened a session");
}
