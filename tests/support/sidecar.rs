//! The real `ternd` and real `tern sidecar` processes, and the app side of
//! the sidecar's HTTP API, for the sidecar tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tern_lab::http::{EventStream, HttpClient, Response};
use tern_lab::sidecar::{Sidecar, SidecarConfig};

use super::process::{self, RealDaemon};

/// A `ternd` process in a temporary folder, with sidecars beside it.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub daemon: Option<RealDaemon>,
    pub addr: SocketAddr,
    pub seal_key: Option<tern::client::SealKey>,
}

impl Lab {
    pub fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let daemon = RealDaemon::spawn(
            &dir.path().join("ternd"),
            "127.0.0.1:0".parse().unwrap(),
            &[],
            &dir.path().join("ternd.log"),
        )
        .expect("ternd starts");
        Lab {
            addr: daemon.addr,
            seal_key: daemon.seal_key,
            daemon: Some(daemon),
            dir,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ternd")
    }

    /// SIGKILLs the daemon.
    pub fn kill_daemon(&mut self) {
        self.daemon.take().expect("running").kill();
    }

    /// Starts the daemon again on the same folder and address.
    pub fn restart_daemon(&mut self) {
        let d = RealDaemon::spawn_at(
            &self.data_dir(),
            self.addr,
            &[],
            &self.dir.path().join("ternd.log"),
        );
        self.daemon = Some(d);
    }

    pub fn config(&self, user: u64, device: u32, name: &str) -> SidecarConfig {
        self.config_in(&self.data_dir(), user, device, name)
    }

    /// As [`Lab::config`] for a daemon whose data folder is `data_dir`.
    pub fn config_in(&self, data_dir: &Path, user: u64, device: u32, name: &str) -> SidecarConfig {
        let token = hex::encode(process::token(data_dir, user, device));
        SidecarConfig::new(
            env!("CARGO_BIN_EXE_tern"),
            self.addr,
            token,
            self.dir.path().join(name),
        )
        .seal_key(self.seal_key)
        .connect_timeout(Duration::from_secs(2))
        .log_file(self.dir.path().join(format!("{name}.log")))
    }

    /// A sidecar for (user, device) on a Unix socket, state in `name`.
    pub fn sidecar(&self, user: u64, device: u32, name: &str) -> Sidecar {
        self.config(user, device, name)
            .start()
            .unwrap_or_else(|e| panic!("sidecar {name} starts: {e}"))
    }

    /// As [`Lab::sidecar`] for a daemon whose data folder is `data_dir`.
    pub fn sidecar_in(&self, data_dir: &Path, user: u64, device: u32, name: &str) -> Sidecar {
        self.config_in(data_dir, user, device, name)
            .start()
            .unwrap_or_else(|e| panic!("sidecar {name} starts: {e}"))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// `POST /v1/messages` of a text.
pub fn send(c: &mut HttpClient, to: u64, text: &str, key: Option<&str>, wait: &str) -> Response {
    let mut body = json!({"to": to, "conv": 1, "text": text});
    if let Some(k) = key {
        body["idempotency_key"] = json!(k);
    }
    c.post(&format!("/v1/messages?wait={wait}"), &body)
        .expect("the sidecar answers")
}

/// The JSON body of an answer (the test fails, showing it, if it is not JSON).
pub fn json_body(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
    })
}

/// `POST path` with `b`, expecting `status`; the answer's JSON body.
pub fn post_expect(c: &mut HttpClient, path: &str, b: &Value, status: u16) -> Value {
    let r = c.post(path, b).expect("the sidecar answers");
    assert_eq!(
        r.status,
        status,
        "POST {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    json_body(&r)
}

/// `DELETE path` (no body).
pub fn delete(c: &mut HttpClient, path: &str) -> Response {
    c.request("DELETE", path, None)
        .expect("the sidecar answers")
}

/// Waits until `GET /v1/status` satisfies `ok`.
pub fn wait_status(
    c: &mut HttpClient,
    what: &str,
    secs: u64,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = c.get("/v1/status").map(|r| r.json()).unwrap_or(Value::Null);
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {secs}s; status {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One event read off a stream: (id, kind, text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub id: u64,
    pub kind: String,
    pub text: Option<String>,
}

/// Reads `n` events (each within `secs`).
pub fn read_events(s: &mut EventStream, n: usize, secs: u64) -> Vec<Got> {
    (0..n)
        .map(|i| {
            let e = s
                .next(Duration::from_secs(secs))
                .unwrap_or_else(|e| panic!("event {i} of {n} within {secs}s: {e}"));
            let v: Value = serde_json::from_str(&e.data).expect("event data is JSON");
            let id: u64 =
                e.id.as_deref()
                    .expect("events carry an id")
                    .parse()
                    .unwrap();
            assert_eq!(v["id"].as_u64(), Some(id), "the id is the position");
            Got {
                id,
                kind: e.event.unwrap_or_default(),
                text: v["text"].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// `POST /v1/events/ack`.
pub fn ack(c: &mut HttpClient, up_to: u64) -> Response {
    c.post("/v1/events/ack", &json!({ "up_to": up_to }))
        .expect("the sidecar answers")
}

/// Messages only, as texts.
pub fn texts(events: &[Got]) -> Vec<String> {
    events
        .iter()
        .filter(|g| g.kind == "message")
        .map(|g| g.text.clone().unwrap_or_default())
        .collect()
}

/// A value of a metric in a Prometheus exposition.
pub fn metric(c: &mut HttpClient, name: &str) -> f64 {
    let text = String::from_utf8(c.get("/metrics").expect("metrics").body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Resident set size of a process, in bytes.
pub fn rss(pid: u32) -> u64 {
    tern_lab::process::proc_rss(pid).unwrap_or(0)
}

pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("client")
}
