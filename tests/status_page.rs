//! ternd's status page in a real headless Chromium (`tests/browser`,
//! playwright-core driving Debian's `chromium`) against a live daemon
//! under traffic: it goes live, its figures move, it fetches nothing from
//! elsewhere, and it takes a screenshot (`TERN_STATUS_SCREENSHOT=PATH`
//! keeps it; `docs/status-page.png` came from here).
//!
//! Skipped, saying why, when node, Chromium or playwright-core is missing
//! (`scripts/deps-web.sh` installs them) unless `TERN_REQUIRE_BROWSER=1`
//! (set by CI), which makes a missing browser a failure.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::sidecar::{ack, read_events, send, wait_status, Lab};
use tern_lab::http::{Endpoint, HttpClient};
use tern_lab::ternd::TerndConfig;

const KEY: &str = "status-page-key-0123";

fn missing() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if !dir.join("node_modules/playwright-core").is_dir() {
        return Some("playwright-core is not installed (npm ci in tests/browser)".into());
    }
    None
}

#[test]
fn status_page_figures_move_under_traffic_in_headless_chromium() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("TERN_REQUIRE_BROWSER").is_err(),
            "TERN_REQUIRE_BROWSER is set but {why}; run scripts/deps-web.sh"
        );
        println!("skipped: {why}; run scripts/deps-web.sh");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = TerndConfig::new(env!("CARGO_BIN_EXE_ternd"), dir.path().join("ternd"))
        .env("TERN_API_LISTEN", "127.0.0.1:0")
        .env("TERN_API_KEYS", KEY)
        .log_file(dir.path().join("ternd.log"))
        .start()
        .expect("ternd starts");
    let api = d.api_addr().unwrap();
    let lab = Lab {
        addr: d.addr(),
        seal_key: d.seal_key(),
        daemon: None,
        dir,
    };
    // Two sidecars online: one posts, one reads and acknowledges.
    let alice = lab.sidecar_in(&lab.dir.path().join("ternd"), 1, 1, "alice");
    let bob = lab.sidecar_in(&lab.dir.path().join("ternd"), 2, 1, "bob");
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, mut a, mut b) = (stop.clone(), alice.client(), bob.client());
        std::thread::spawn(move || {
            let mut s = b.events("/v1/events", None).unwrap();
            let mut svc = HttpClient::new(Endpoint::Tcp(api), Some(KEY.into()));
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                send(&mut a, 2, &format!("m{i}"), None, "queued");
                let _ = svc.post(
                    "/v1/messages",
                    &json!({"to": 2, "conv": 9, "text": format!("svc{i}")}),
                );
                let got = read_events(&mut s, 1, 10);
                ack(&mut b, got[0].id);
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            i
        })
    };
    let mut a = alice.client();
    wait_status(&mut a, "alice online", 10, |s| s["connected"] == true);

    let shot = std::env::var("TERN_STATUS_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| lab.dir.path().join("status.png"));
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/status_page.js"))
        .arg(format!("http://{api}/"))
        .arg(&shot)
        .output()
        .expect("node runs");
    stop.store(true, Ordering::Relaxed);
    let sent = traffic.join().unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sent > 0);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    drop(d);
}
