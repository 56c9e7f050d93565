//! Tern's clients in the connect bench, each login a new device (a new
//! user) from a new socket bound to port 0, one at a time:
//!
//! - the real client library, as the `tern` CLI connects
//!   (`tern::client::Client::connect` with the daemon's seal key), timed
//!   from the call to its return: logged in, the session usable;
//! - the core's `ClientConn` with a fixed login retry (the library's
//!   `ClientOptions` has no login timer setting, so this baseline drives
//!   the core directly over a UDP socket with the lab's `Fleet`), timed
//!   from the socket's creation to the `LoggedIn` event.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use tern::client::{Client, ClientError, ClientOptions, SealKey};
use tern_core::auth::TokenKeys;
use tern_core::client::ClientEvent;
use tern_lab::bench::fleet::Fleet;
use tern_lab::bench::util::token;

use crate::connect_stats::Lane;

/// The daemon a row logs in to.
#[derive(Clone)]
pub struct TernTarget {
    /// Its raw UDP address.
    pub addr: SocketAddr,
    /// Its token keys.
    pub keys: TokenKeys,
    /// Its seal key (`None`: clear sessions).
    pub seal_key: Option<SealKey>,
}

/// How many logins one client makes in a row, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Logins to make.
    pub logins: u64,
    /// A login not connected within this counts as not connected.
    pub bound: Duration,
    /// No login starts after this (the row's time budget).
    pub deadline: Instant,
    /// User of the first login; each next login is the next user.
    pub first_user: u64,
}

impl Plan {
    /// True (and the rest counted as skipped) once the budget is spent.
    pub fn out_of_time(&self, lane: &mut Lane, made: u64) -> bool {
        if Instant::now() >= self.deadline {
            lane.skipped = self.logins - made;
            true
        } else {
            false
        }
    }
}

/// The client library's logins (see the module documentation).
pub fn library(name: &str, t: &TernTarget, plan: Plan) -> Result<Lane> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut lane = Lane::new(name);
    rt.block_on(async {
        for i in 0..plan.logins {
            if plan.out_of_time(&mut lane, i) {
                break;
            }
            let mut opts = ClientOptions::new(t.addr, token(&t.keys, plan.first_user + i, 1));
            opts.seal_key = t.seal_key;
            opts.connect_timeout = plan.bound;
            let t0 = Instant::now();
            match Client::connect(opts).await {
                Ok(client) => {
                    lane.times.push(Some(t0.elapsed()));
                    // Log out while the next device connects.
                    tokio::spawn(client.close());
                }
                Err(ClientError::ConnectTimeout(_)) => lane.times.push(None),
                Err(e) => bail!("{name}: login {i}: {e}"),
            }
        }
        Ok(())
    })?;
    Ok(lane)
}

/// Unix time now, ms (the handshake's clock, as the library sets it).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The core client with `login_initial = login_max = retry` and `copies`
/// copies of each login datagram (see the module documentation).
pub fn fixed_retry(
    name: &str,
    t: &TernTarget,
    plan: Plan,
    retry: Duration,
    copies: u8,
) -> Result<Lane> {
    let mut lane = Lane::new(name);
    let mut events = Vec::new();
    for i in 0..plan.logins {
        if plan.out_of_time(&mut lane, i) {
            break;
        }
        let tok = token(&t.keys, plan.first_user + i, 1);
        let t0 = Instant::now();
        let mut fleet = Fleet::new(t.addr, vec![tok], |c| {
            c.server_key = t.seal_key;
            c.login_initial = retry;
            c.login_max = retry;
            c.login_copies = copies;
            c.wall_origin_ms = unix_ms();
            c.entropy = Some(rand::random());
        })
        .map_err(|e| anyhow!("{name}: {e}"))?;
        let end = t0 + plan.bound;
        let mut got = None;
        while got.is_none() && Instant::now() < end {
            fleet
                .turn(Duration::from_millis(5), &mut events)
                .map_err(|e| anyhow!("{name}: {e}"))?;
            for (_, ev) in events.drain(..) {
                match ev {
                    ClientEvent::LoggedIn { .. } => got = got.or(Some(t0.elapsed())),
                    ClientEvent::LoginRefused { code } => {
                        bail!("{name}: login {i} refused (error code {code})")
                    }
                    _ => {}
                }
            }
        }
        lane.times.push(got);
        // Best effort: a lost LOGOUT leaves an idle session to time out.
        let _ = fleet.logout_all();
    }
    Ok(lane)
}
