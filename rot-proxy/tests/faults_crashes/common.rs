//! What the crash cases share: rot-servers as processes, the wallets' questions, the relay's
//! view of one server, timing, and the figures each case prints.

use std::future::Future;
use std::time::{Duration, Instant};

use rot_harness::{ApiClient, Litecoind, RingProcess, workspace_binary};
use rot_proto::PublicKey;
use rot_proto::message::ServerInfo;
use rot_proto::signed::Signed;
use serde_json::{Value, json};

use rot_harness::ring::{PATIENCE, Proxy};

/// Wallets asking at once.
pub const WALLETS: usize = 8;

/// A rot-server binary over `node`, registering with the proxy at `proxy` by a heartbeat
/// every second.
pub async fn server_process(node: &Litecoind, proxy: &str) -> RingProcess {
    let binary = workspace_binary("rot-server", "rot-server").unwrap();
    let registering = [("ROT_PROXIES", proxy), ("ROT_HEARTBEAT_SECS", "1")];
    RingProcess::server(&binary, node, &registering, PATIENCE)
        .await
        .unwrap()
}

/// The verified signed info of the server at `url`, when it answers.
pub async fn info_at(url: &str) -> Option<ServerInfo> {
    let reply = ApiClient::new(url).get("/rot/v1/info").await.ok()?;
    let signed: Signed<ServerInfo> = serde_json::from_slice(&reply.body).ok()?;
    Some(signed.verify().unwrap())
}

/// The key the server at `url` signs with.
pub async fn key_at(url: &str) -> PublicKey {
    info_at(url).await.expect("the server answers").server_key
}

/// The relay's operator view of `key`, when listed.
pub async fn relay_view_of(proxy: &Proxy, key: &PublicKey) -> Option<Value> {
    let view = proxy.relay_view().await;
    view["servers"]
        .as_array()?
        .iter()
        .find(|s| s["server_key"] == json!(key))
        .cloned()
}

/// Requests relayed to `key` so far.
pub async fn requests_to(proxy: &Proxy, key: &PublicKey) -> u64 {
    proxy.requests().await.get(key).copied().unwrap_or(0)
}

/// Polls `check` every 50 ms until it holds and returns how long that took; panics naming
/// `what` after [`PATIENCE`].
pub async fn time_until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Prints a case's figures in the stable form `faults: <case>: <name>=<value> ...`.
pub fn figures(case: &str, figures: &[(&str, String)]) {
    let named: Vec<String> = figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("faults: {case}: {}", named.join(" "));
}

/// Milliseconds of `took`, for [`figures`].
pub fn ms(took: Duration) -> String {
    took.as_millis().to_string()
}
