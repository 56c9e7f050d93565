//! `tern-bench storm` at a small size, against a real daemon on
//! 127.0.0.1:0 with sealed sessions: a group past a lowered write fan-out
//! threshold (so in read fan-out), messages posted while every member is
//! offline, then every member device logs in over shared sockets and
//! fetches its list. Every list must complete and say the right newest
//! record and unread count; no time is asserted.

use std::time::Duration;

use tern_lab::bench::daemon::Daemon;
use tern_lab::bench::group_setup::{
    create_group, device_config, group_ref, login_one, post, submit_all,
};
use tern_lab::bench::mux::Mux;
use tern_lab::bench::storm_logins::{run_logins, StormDevice};

const MEMBERS: u64 = 70;
const MESSAGES: u64 = 40;

#[test]
fn members_sharing_sockets_get_complete_lists_with_the_right_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), |c| c.limits.group_write_fanout_max = 16).unwrap();
    let limit = Duration::from_secs(60);
    let mut mux = Mux::new(d.udp, 1).unwrap();
    let owner = mux.add(device_config(&d.keys, d.seal_key, 1, 1));
    login_one(&mut mux, owner, limit).unwrap();
    let members: Vec<u64> = (2..=MEMBERS).collect();
    let group = create_group(&mut mux, owner, &members, limit).unwrap();
    let posts = (0..MESSAGES).map(|k| post(group, k, 32));
    let stored = submit_all(&mut mux, owner, posts, 8, limit, "posting", |_, _| {}).unwrap();
    assert_eq!(stored, MESSAGES);
    mux.logout_all().unwrap();

    let head = MEMBERS + MESSAGES; // created, MEMBERS - 1 added, the messages
    let mut devices: Vec<StormDevice> = members
        .iter()
        .map(|&user| StormDevice {
            user,
            device: 1,
            expect_last: head,
            expect_unread: MESSAGES,
        })
        .collect();
    devices.push(StormDevice {
        user: 1,
        device: 2,
        expect_last: head,
        expect_unread: 0,
    });
    let r = run_logins(
        d.udp,
        &d.keys,
        d.seal_key,
        group_ref(group),
        devices,
        Duration::from_millis(300),
        4,
        limit,
        std::process::id(),
    )
    .unwrap();
    assert_eq!(r.done, MEMBERS as usize);
    assert_eq!(r.wrong, 0, "wrong items: {:?}", r.wrong_examples);
    assert!(r.max_list_rts >= 1 && r.max_list_rts <= 2);
    assert_eq!(r.bytes.len(), MEMBERS as usize);
    assert!(r.bytes_q(0.5) > 0);
}
