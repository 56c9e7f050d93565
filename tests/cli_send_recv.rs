//! The real binaries end to end: `ternd serve` on port 0 (through the
//! lab's launcher), tokens from `ternd token`, then `tern send` and
//! `tern recv --json`; and the `tern` command lines `ternd serve` prints,
//! run as printed, over QUIC and raw UDP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tern_lab::process::Stderr;
use tern_lab::ternd::{Ternd, TerndConfig};

const TERND: &str = env!("CARGO_BIN_EXE_ternd");
const TERN: &str = env!("CARGO_BIN_EXE_tern");

struct Daemon {
    /// Killed when the test ends.
    _ternd: Ternd,
    addr: String,
    /// The seal key it printed; the CLI gets it through `TERN_SEAL_KEY`.
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

fn token(dir: &Path, user: u64, device: u32) -> String {
    tern_lab::ternd::issue_token(Path::new(TERND), dir, user, device).expect("ternd token")
}

/// A command with none of the caller's `TERN_*` variables.
fn clean(mut c: Command) -> Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TERN_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

/// `tern ARGS…` for this daemon (its seal key in the environment).
fn tern_command(d: &Daemon, args: &[&str]) -> Command {
    let mut c = clean(Command::new(TERN));
    c.args(args).env("TERN_SEAL_KEY", &d.seal_key);
    c
}

fn tern(d: &Daemon, args: &[&str]) -> Output {
    tern_command(d, args).output().expect("tern runs")
}

/// `tern COMMAND --server SERVER --token TOKEN REST…`.
fn tern_as(d: &Daemon, command: &str, server: &str, token: &str, rest: &[&str]) -> Output {
    let mut args = vec![command, "--server", server, "--token", token];
    args.extend_from_slice(rest);
    tern(d, &args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn send_then_recv_offline_and_online() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path());
    let server = format!("udp://{}", daemon.addr);
    let alice = token(dir.path(), 1, 1);
    let bob = token(dir.path(), 2, 1);

    // Bob is offline: the ACK is the pseudo-ACK of the offline store.
    let o = tern_as(
        &daemon,
        "send",
        &server,
        &alice,
        &["--to", "2", "--conv", "7", "hello bob"],
    );
    assert!(o.status.success(), "tern send: {o:?}");
    assert_eq!(stdout(&o).trim(), "stored seq=1");

    // Plain host:port works as well as udp://.
    let o = tern_as(
        &daemon,
        "recv",
        &daemon.addr,
        &bob,
        &["--count", "1", "--json", "--timeout", "20s"],
    );
    assert!(o.status.success(), "tern recv: {o:?}");
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let m = &lines[0];
    assert_eq!(m["kind"], "message");
    assert_eq!(m["text"], "hello bob");
    assert_eq!(m["from_user"], 1);
    assert_eq!(m["from_device"], 1);
    assert_eq!(m["from_seq"], 1);
    assert_eq!(m["conv"], "d:1", "the direct conversation with user 1");
    assert_eq!(m["topic"], 7, "the --conv the sender gave");
    assert_eq!(m["conv_seq"], 1, "the first record of the conversation");
    assert_eq!(m["seq"], 1);
    assert_eq!(m["msg_type"], 0);

    // Released after printing: a second run does not repeat it.
    let o = tern_as(
        &daemon,
        "recv",
        &server,
        &bob,
        &["--json", "--timeout", "1s"],
    );
    assert!(o.status.success(), "tern recv: {o:?}");
    assert!(json_lines(&o).is_empty(), "repeated: {}", stdout(&o));

    // Bob online: the sender waits for the DELIVERED receipt.
    let mut recv = tern_command(
        &daemon,
        &[
            "recv",
            "--server",
            &server,
            "--token",
            &bob,
            "--count",
            "1",
            "--json",
            "--timeout",
            "30s",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = recv.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let connected = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("tern recv reports its login");
    assert!(connected.starts_with("connected"), "{connected}");
    let o = tern_as(
        &daemon,
        "send",
        &server,
        &alice,
        &[
            "--to",
            "2",
            "--conv",
            "7",
            "--wait-delivered",
            "20s",
            "second",
        ],
    );
    assert!(o.status.success(), "tern send: {o:?}");
    assert_eq!(stdout(&o).trim(), "delivered seq=2");
    let out = recv.wait_with_output().unwrap();
    assert!(out.status.success(), "tern recv: {out:?}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["text"], "second");
    assert_eq!(lines[0]["seq"], 2);

    // Alice's sync timeline now holds her own two messages (for her other
    // devices) and Bob's DELIVERED receipts for them (one per release:
    // message 1, then message 2); only the receipts count.
    let o = tern_as(
        &daemon,
        "recv",
        &server,
        &alice,
        &["--all", "--count", "2", "--json", "--timeout", "20s"],
    );
    assert!(o.status.success(), "tern recv: {o:?}");
    let lines = json_lines(&o);
    let own: Vec<_> = lines.iter().filter(|l| l["from_user"] == 1).collect();
    assert_eq!(own.len(), 2, "her own copies: {lines:?}");
    let receipts: Vec<_> = lines.iter().filter(|l| l["from_user"] != 1).collect();
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    for r in &receipts {
        assert_eq!(r["kind"], "receipt");
        assert_eq!(r["status"], "delivered");
        assert_eq!(r["from_user"], 2);
        assert_eq!(r["target_device"], 1);
    }
    assert_eq!(receipts[1]["target_seq"], 2);
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path());
    let server = format!("udp://{}", daemon.addr);

    let o = tern_as(
        &daemon,
        "send",
        "quic://127.0.0.1:7401",
        "00",
        &["--to", "2", "x"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--quic-fingerprint") && err.contains("--quic-ca"),
        "an unverified QUIC server is refused, saying what to pass: {o:?}"
    );

    // Without sealing there is no key to print, and `ternd seal-key` says
    // what that means for clients.
    let o = clean(Command::new(TERND))
        .args(["seal-key", "--data-dir"])
        .arg(dir.path())
        .env("TERN_SEAL_POLICY", "off")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("policy is \"off\"") && err.contains("without --seal-key"),
        "{o:?}"
    );

    let o = tern_as(&daemon, "send", &server, "xyz", &["--to", "2", "x"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad token"),
        "{o:?}"
    );

    // Well-formed but signed with another secret.
    let other = tempfile::tempdir().unwrap();
    let forged = token(other.path(), 1, 1);
    let o = tern_as(&daemon, "send", &server, &forged, &["--to", "2", "x"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("login refused"),
        "{o:?}"
    );
}

/// Runs a command line `ternd serve` printed, as printed, in `sh`.
fn shell(line: &str) -> Command {
    let mut c = clean(Command::new("sh"));
    c.arg("-c").arg(line);
    c
}

/// `ternd serve` as `scripts/serve.sh` starts it: only the data folder is
/// given (and the UDP port, 0, so tests do not collide), so QUIC comes from
/// the default configuration, next to raw UDP. The `tern recv` and `tern
/// send` lines it prints work as printed, over QUIC and over raw UDP.
#[test]
fn printed_commands_work_over_quic_and_udp_against_the_default_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut ternd = TerndConfig::new(TERND, dir.path())
        .quic_as_configured()
        .stderr(Stderr::Inherit)
        .env("RUST_LOG", "warn")
        .start()
        .expect("ternd starts and prints its addresses");
    let quic = ternd
        .quic_addr()
        .expect("QUIC is part of the default start");
    let fingerprint = ternd.fingerprint().expect("a fingerprint").to_string();
    let o = clean(Command::new(TERND))
        .args(["quic-fingerprint", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o).trim(), fingerprint, "ternd quic-fingerprint");
    let mut lines: Vec<(String, String)> = Vec::new();
    ternd
        .wait_for_line("its tern command lines", Duration::from_secs(10), |l| {
            let (transport, cmd) = l.split_once(':')?;
            if matches!(transport, "udp" | "quic") && cmd.contains("TERN_TOKEN=") {
                lines.push((transport.to_string(), cmd.trim().to_string()));
            }
            (lines.len() == 4).then_some(())
        })
        .expect("two command lines per transport");
    for (seq, transport) in ["quic", "udp"].into_iter().enumerate() {
        let cmds: Vec<&String> = lines
            .iter()
            .filter(|(t, _)| t == transport)
            .map(|(_, c)| c)
            .collect();
        let (recv, send) = (cmds[0], cmds[1]);
        assert!(
            recv.contains(" recv ") && send.contains(" send "),
            "{cmds:?}"
        );
        if transport == "quic" {
            assert!(send.contains(&format!("--server quic://{quic} ")), "{send}");
            assert!(
                send.contains(&format!("--quic-fingerprint {fingerprint}")),
                "{send}"
            );
        }
        let mut r = shell(recv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = r.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let connected = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("tern recv reports its login");
        assert!(
            connected.starts_with(&format!("connected to {transport}://")),
            "{connected}"
        );
        let o = shell(send).output().unwrap();
        assert!(o.status.success(), "{send}: {o:?}");
        assert_eq!(stdout(&o).trim(), format!("delivered seq={}", seq + 1));
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "{recv}: {out:?}");
        assert!(stdout(&out).contains("\"hello\""), "{}", stdout(&out));
    }
}
