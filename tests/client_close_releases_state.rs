//! `Client::close` returns only once the state folder is closed: the same
//! folder can be opened again at once, as an application that restarts its
//! client (or a test) does. Before, the store was closed a moment after
//! `close` returned, and the next `connect` on the folder could fail with
//! RocksDB's "lock hold by current process" (found by CI in
//! `tests/address_tokens.rs`).

mod support;

use bytes::Bytes;
use support::Daemon;
use tern::client::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_clients_state_folder_opens_again_at_once() {
    let d = Daemon::start().await;
    let state = tempfile::tempdir().unwrap();
    for i in 0..20u8 {
        let mut o = d.options(1, 1);
        o.state_dir = Some(state.path().to_path_buf());
        let c = Client::connect(o)
            .await
            .unwrap_or_else(|e| panic!("round {i}: connects on the same folder: {e}"));
        c.send(2, 1, 0, Bytes::from(vec![i; 8]))
            .await
            .expect("stored");
        c.close().await;
    }
    d.stop().await;
}
