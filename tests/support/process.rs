//! The real `ternd` binary as a child process, through the lab's one
//! launcher ([`tern_lab::ternd`]): started on a data folder, its address
//! read from the `listening on udp://ADDR` line it prints, and stopped with
//! SIGKILL (a crash) or SIGTERM (a graceful stop).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tern_lab::ternd::{Ternd, TerndConfig};

/// Path of the daemon binary built for this test run.
pub fn ternd() -> &'static str {
    env!("CARGO_BIN_EXE_ternd")
}

/// Issues a token with `ternd token` (creates the secret on first use).
pub fn token(data_dir: &Path, user: u64, device: u32) -> Vec<u8> {
    let text = tern_lab::ternd::issue_token(Path::new(ternd()), data_dir, user, device)
        .expect("ternd token");
    hex::decode(text).expect("hex token")
}

/// A running `ternd serve`.
pub struct RealDaemon {
    daemon: Ternd,
    /// The UDP address it listens on.
    pub addr: SocketAddr,
    /// The key clients seal raw-UDP sessions with, as it printed it.
    pub seal_key: Option<tern::client::SealKey>,
    /// Its data folder.
    pub data_dir: PathBuf,
}

fn config(data_dir: &Path, listen: SocketAddr, env: &[(&str, &str)], log: &Path) -> TerndConfig {
    env.iter().fold(
        TerndConfig::new(ternd(), data_dir)
            .listen(listen)
            .log_file(log)
            .ready_timeout(Duration::from_secs(15))
            .env("RUST_LOG", "info"),
        |c, (k, v)| c.env(k, v),
    )
}

impl RealDaemon {
    fn new(daemon: Ternd) -> RealDaemon {
        RealDaemon {
            addr: daemon.addr(),
            seal_key: daemon.seal_key(),
            data_dir: daemon.data_dir().to_path_buf(),
            daemon,
        }
    }

    /// Starts `ternd serve --listen LISTEN --data-dir DIR`, with extra
    /// environment (e.g. `TERN_TIMERS_HEARTBEAT`), logging to `log`
    /// (appended). Waits up to 15 s for the listening line.
    pub fn spawn(
        data_dir: &Path,
        listen: SocketAddr,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<RealDaemon, String> {
        config(data_dir, listen, env, log)
            .start()
            .map(RealDaemon::new)
            .map_err(|e| e.to_string())
    }

    /// Starts on exactly `addr` (a restart on the port clients know),
    /// retrying for a few seconds if the port is not free yet.
    pub fn spawn_at(
        data_dir: &Path,
        addr: SocketAddr,
        env: &[(&str, &str)],
        log: &Path,
    ) -> RealDaemon {
        config(data_dir, addr, env, log)
            .start_retrying(Duration::from_secs(2))
            .map(RealDaemon::new)
            .unwrap_or_else(|e| panic!("ternd could not restart on {addr}: {e}"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid().expect("running")
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(mut self) {
        self.daemon.kill().expect("SIGKILL delivered");
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        self.daemon
            .terminate(timeout)
            .unwrap_or_else(|e| panic!("ternd did not stop on SIGTERM: {e}"))
    }
}
