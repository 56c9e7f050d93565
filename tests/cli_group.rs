//! `tern group` against a real `ternd`: create a group, post into it, list
//! its members, remove a member (refused for a plain member, done by the
//! owner), leave, and read the group's history with `tern history g:ID`.

use std::path::Path;
use std::process::{Command, Output};

use tern_lab::process::Stderr;
use tern_lab::ternd::{Ternd, TerndConfig};

const TERND: &str = env!("CARGO_BIN_EXE_ternd");
const TERN: &str = env!("CARGO_BIN_EXE_tern");

struct Daemon {
    /// Killed when the test ends.
    _ternd: Ternd,
    addr: String,
    seal_key: String,
}

fn start_daemon(dir: &Path) -> Daemon {
    let ternd = TerndConfig::new(TERND, dir)
        .stderr(Stderr::Inherit)
        .env("RUST_LOG", "warn")
        .start()
        .expect("ternd starts and prints its address");
    Daemon {
        addr: ternd.addr().to_string(),
        seal_key: ternd
            .seal_key()
            .expect("ternd prints its seal key")
            .to_string(),
        _ternd: ternd,
    }
}

fn token(dir: &Path, user: u64) -> String {
    tern_lab::ternd::issue_token(Path::new(TERND), dir, user, 1).expect("ternd token")
}

/// `tern COMMAND --server … --token … REST…` as `user`, with none of the
/// caller's `TERN_*` variables.
fn tern(d: &Daemon, dir: &Path, user: u64, command: &str, rest: &[&str]) -> Output {
    let mut c = Command::new(TERN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TERN_") {
            c.env_remove(k);
        }
    }
    let tok = token(dir, user);
    c.args([command, "--server", &d.addr, "--token", &tok])
        .args(rest)
        .env("RUST_LOG", "warn")
        .env("TERN_SEAL_KEY", &d.seal_key);
    c.output().expect("tern runs")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "tern failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn create_send_members_remove_leave_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = start_daemon(dir);
    // Users must be known to the server before they are added.
    for u in [2, 3, 4] {
        ok(tern(&d, dir, u, "convs", &[]));
    }
    let created = ok(tern(&d, dir, 1, "group", &["create", "2", "3", "4"]));
    let g = created
        .trim()
        .strip_prefix("group=")
        .unwrap_or_else(|| panic!("prints group=ID: {created:?}"))
        .to_string();
    assert!(ok(tern(&d, dir, 2, "group", &["send", &g, "hello group"])).starts_with("stored seq="));

    let members = ok(tern(&d, dir, 3, "group", &["members", &g]));
    let lines: Vec<&str> = members.lines().collect();
    assert_eq!(
        lines,
        vec![
            "1 owner since=1",
            "2 member since=2",
            "3 member since=3",
            "4 member since=4"
        ]
    );

    let refused = tern(&d, dir, 2, "group", &["remove", &g, "3"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("not permitted"), "{err}");
    ok(tern(&d, dir, 1, "group", &["remove", &g, "3"]));
    ok(tern(&d, dir, 4, "group", &["leave", &g]));
    let members = ok(tern(&d, dir, 1, "group", &["members", &g, "--json"]));
    assert_eq!(members.lines().count(), 2, "{members}");

    // Bob's post (record 5) read by nobody yet; Alice reads it.
    let reads = ok(tern(&d, dir, 2, "group", &["reads", &g, "5"]));
    assert_eq!(reads.trim(), "#5 read by 0 of 1", "{reads}");
    ok(tern(&d, dir, 1, "read", &[&format!("g:{g}"), "5"]));
    let reads = ok(tern(&d, dir, 2, "group", &["reads", &g, "5"]));
    assert_eq!(reads.trim(), "#5 read by 1 of 1", "{reads}");
    let readers = ok(tern(&d, dir, 2, "group", &["readers", &g, "5"]));
    assert_eq!(readers.trim(), "1 owner");

    let conv = format!("g:{g}");
    let hist = ok(tern(&d, dir, 2, "history", &[&conv, "--json"]));
    let kinds: Vec<serde_json::Value> = hist
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let summary: Vec<String> = kinds
        .iter()
        .map(|r| match r["kind"].as_str() {
            Some("member") => format!("{}:{}", r["event"].as_str().unwrap(), r["user"]),
            Some("message") => r["text"].as_str().unwrap().to_string(),
            other => panic!("unexpected kind {other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            "added:2",
            "added:3",
            "added:4",
            "hello group",
            "removed:3",
            "left:4"
        ],
        "Bob sees the group from his addition"
    );
}
