//! The example clients of the sidecar (`examples/python`, standard library
//! only, and `examples/node`, no npm packages) against a real `ternd` and
//! real sidecars: each sends with idempotency keys (a repeat sends
//! nothing), streams, acknowledges, crashes mid-stream, and resumes after
//! its sidecar was SIGKILLed and restarted, recording every message exactly
//! once. Skipped, saying why, when the interpreter is missing.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::sidecar::Lab;

fn have(interpreter: &str) -> bool {
    Command::new(interpreter)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(interpreter: &str, script: &Path, socket: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(interpreter)
        .arg(script)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("the example runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{interpreter} {args:?}: {text}{err}");
    (out.status.code().unwrap_or(-1), text)
}

fn socket(s: &tern_lab::sidecar::Sidecar) -> std::path::PathBuf {
    match s.endpoint() {
        tern_lab::http::Endpoint::Unix(p) => p.clone(),
        other => panic!("expected a Unix socket, got {other:?}"),
    }
}

fn example(interpreter: &str, script: &str) {
    if !have(interpreter) {
        println!("skipped: {interpreter} is not installed, so the {script} example cannot run");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let lab = Lab::start();
    let alice = lab.sidecar(1, 1, "alice");
    let mut bob = lab.sidecar(2, 1, "bob");
    let (a, db) = (socket(&alice), lab.dir.path().join("bob-inbox.txt"));

    let send = [
        "send", "--to", "2", "--text", "hello-", "--count", "6", "--key", "k-", "--wait", "stored",
    ];
    let (code, out) = run(interpreter, &script, &a, &send);
    assert_eq!(code, 0);
    let ops: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ops.len(), 6);
    assert!(
        ops.iter()
            .all(|o| o["status"] == "stored" && o["duplicate"] == false),
        "{out}"
    );
    // The same keys again: nothing is sent twice.
    let (code, out) = run(interpreter, &script, &a, &send);
    assert_eq!(code, 0);
    let again: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(again.len(), 6);
    for (a, b) in again.iter().zip(&ops) {
        assert_eq!(
            (&a["duplicate"], &a["id"], &a["seq"]),
            (&Value::Bool(true), &b["id"], &b["seq"])
        );
    }

    // The app crashes after recording 4 events, having acknowledged 2...
    let db_s = db.to_str().unwrap();
    let (code, _) = run(
        interpreter,
        &script,
        &socket(&bob),
        &[
            "receive",
            "--db",
            db_s,
            "--count",
            "6",
            "--ack-every",
            "2",
            "--stop-after",
            "4",
        ],
    );
    assert_eq!(code, 3, "the simulated crash");
    // ...its sidecar is SIGKILLed and restarted too...
    bob.restart().unwrap();
    // ...and it resumes: the rest, nothing twice.
    let (code, out) = run(
        interpreter,
        &script,
        &socket(&bob),
        &["receive", "--db", db_s, "--count", "6"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("resuming after event 4"), "{out}");
    let lines: Vec<String> = std::fs::read_to_string(&db)
        .unwrap()
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    let want: Vec<String> = (0..6).map(|i| format!("hello-{i}")).collect();
    assert_eq!(lines, want, "every message recorded once, in order");
    drop(alice);
}

#[test]
fn python_example_sends_streams_acknowledges_and_resumes() {
    example("python3", "examples/python/tern_sidecar.py");
}

#[test]
fn node_example_sends_streams_acknowledges_and_resumes() {
    example("node", "examples/node/tern_sidecar.js");
}
