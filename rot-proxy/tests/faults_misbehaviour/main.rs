//! Servers that misbehave under steady wallet traffic through a real ring (a regtest
//! litecoind, real rot-servers registered by heartbeat, an in-process rot-proxy): a slow one
//! and a flapping one (each behind a `rot_harness::Forwarder`), a liar, forged heartbeats,
//! and reorganisations of the node. Each case asserts what wallets and the directory see and
//! prints its figures as `faults: <case>: <figures>`.

mod heartbeats;
mod liar;
mod reorg;
mod slow;

use std::collections::BTreeMap;
use std::time::Duration;

use rot_harness::ring::{Proxy, key_of};
use rot_harness::{Forwarder, Litecoind, RotServer};
use rot_proto::PublicKey;

/// Wallets asking at once.
const WALLETS: usize = 4;

/// Relayed requests per server added between two counts.
fn added(
    before: &BTreeMap<PublicKey, u64>,
    after: &BTreeMap<PublicKey, u64>,
) -> BTreeMap<PublicKey, u64> {
    after
        .iter()
        .map(|(key, n)| (*key, n - before.get(key).copied().unwrap_or(0)))
        .collect()
}

/// The share of relayed requests `key` got over the next `window`, and how many there were.
async fn share(proxy: &Proxy, key: &PublicKey, window: Duration) -> (f64, u64) {
    let before = proxy.requests().await;
    tokio::time::sleep(window).await;
    let added = added(&before, &proxy.requests().await);
    let total: u64 = added.values().sum();
    let own = added.get(key).copied().unwrap_or(0);
    (own as f64 / total.max(1) as f64, total)
}

/// A real server whose advertised URL is a forwarder in front of it. The forwarder is started
/// first (the server must be told its URL) and pointed at the server once it is up.
struct Forwarded {
    forwarder: Forwarder,
    key: PublicKey,
    server: RotServer,
}

impl Forwarded {
    async fn start(proxy: &Proxy, node: &Litecoind) -> Self {
        let forwarder = Forwarder::start().await.unwrap();
        let server = proxy
            .server_with(node, &[("ROT_PUBLIC_URL", &forwarder.url)])
            .await;
        forwarder.forward_to(server.url.trim_start_matches("http://").parse().unwrap());
        Self {
            key: key_of(&server).await,
            forwarder,
            server,
        }
    }
}
