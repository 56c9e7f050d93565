//! The real binaries end to end: `ternd serve` on port 0, tokens from
//! `ternd token`, then `tern send` and `tern recv --json`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const TERND: &str = env!("CARGO_BIN_EXE_ternd");
const TERN: &str = env!("CARGO_BIN_EXE_tern");

struct Daemon {
    child: Child,
    addr: String,
    /// The seal key it printed; the CLI gets it through `TERN_SEAL_KEY`.
    seal_key: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(dir: &Path) -> Daemon {
    let mut child = Command::new(TERND)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ternd starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(k) = line.strip_prefix("seal key ") {
                let _ = tx.send(k.trim().to_string());
            }
            if let Some(a) = line.strip_prefix("listening on udp://") {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    // The key line comes first.
    let seal_key = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ternd prints its seal key");
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ternd prints its address");
    Daemon {
        child,
        addr,
        seal_key,
    }
}

fn token(dir: &Path, user: u64, device: u32) -> String {
    let out = Command::new(TERND)
        .args(["token", "--data-dir"])
        .arg(dir)
        .args(["--user", &user.to_string(), "--device", &device.to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("ternd token runs");
    assert!(out.status.success(), "ternd token: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn tern(d: &Daemon, args: &[&str]) -> Output {
    Command::new(TERN)
        .args(args)
        .env("TERN_SEAL_KEY", &d.seal_key)
        .env("RUST_LOG", "warn")
        .output()
        .expect("tern runs")
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
    let o = tern(
        &daemon,
        &[
            "send",
            "--server",
            &server,
            "--token",
            &alice,
            "--to",
            "2",
            "--conv",
            "7",
            "hello bob",
        ],
    );
    assert!(o.status.success(), "tern send: {o:?}");
    assert_eq!(stdout(&o).trim(), "stored seq=1");

    // Plain host:port works as well as udp://.
    let o = tern(
        &daemon,
        &[
            "recv",
            "--server",
            &daemon.addr,
            "--token",
            &bob,
            "--count",
            "1",
            "--json",
            "--timeout",
            "20s",
        ],
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
    assert_eq!(m["conv"], 7);
    assert_eq!(m["seq"], 1);
    assert_eq!(m["msg_type"], 0);

    // Released after printing: a second run does not repeat it.
    let o = tern(
        &daemon,
        &[
            "recv",
            "--server",
            &server,
            "--token",
            &bob,
            "--json",
            "--timeout",
            "1s",
        ],
    );
    assert!(o.status.success(), "tern recv: {o:?}");
    assert!(json_lines(&o).is_empty(), "repeated: {}", stdout(&o));

    // Bob online: the sender waits for the DELIVERED receipt.
    let mut recv = Command::new(TERN)
        .env("TERN_SEAL_KEY", &daemon.seal_key)
        .args([
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
        ])
        .env("RUST_LOG", "warn")
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
    let o = tern(
        &daemon,
        &[
            "send",
            "--server",
            &server,
            "--token",
            &alice,
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

    // Alice's inbox now holds Bob's DELIVERED receipts for her messages
    // (one per release: message 1, then message 2).
    let o = tern(
        &daemon,
        &[
            "recv",
            "--server",
            &server,
            "--token",
            &alice,
            "--all",
            "--count",
            "2",
            "--json",
            "--timeout",
            "20s",
        ],
    );
    assert!(o.status.success(), "tern recv: {o:?}");
    let receipts = json_lines(&o);
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

    let o = tern(
        &daemon,
        &[
            "send",
            "--server",
            "quic://127.0.0.1:7401",
            "--token",
            "00",
            "--to",
            "2",
            "x",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not supported yet"),
        "{o:?}"
    );

    let o = tern(
        &daemon,
        &[
            "send", "--server", &server, "--token", "xyz", "--to", "2", "x",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad token"),
        "{o:?}"
    );

    // Well-formed but signed with another secret.
    let other = tempfile::tempdir().unwrap();
    let forged = token(other.path(), 1, 1);
    let o = tern(
        &daemon,
        &[
            "send", "--server", &server, "--token", &forged, "--to", "2", "x",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("login refused"),
        "{o:?}"
    );
}
