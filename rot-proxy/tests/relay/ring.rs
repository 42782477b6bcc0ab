//! A small ring for the relay tests: real regtest litecoind nodes, real rot-servers over
//! them that register with an in-process rot-proxy by their own heartbeats, and helpers to
//! read the proxy's views. Probe intervals are sub-second so tests run fast.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use rot_harness::{AddressType, Litecoind, RotServer, Wallet};
use rot_proto::message::DirectoryEntry;
use rot_proto::{Hash256, PublicKey};
use rot_proxy::config::Config;
use rot_proxy::server::{Running, start};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The operator token of test proxies.
pub const TOKEN: &str = "relay-test-operator-token";
/// The coin id served.
pub const COIN: &str = "ltc-regtest";
/// Longest wait for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A regtest node with a funded wallet and a miner address.
pub struct Node {
    pub node: Litecoind,
    pub wallet: Wallet,
    pub miner: String,
}

impl Node {
    /// A node with 101 mined blocks and a few transactions in the last ones, so the
    /// conformance suite has spends, merkle proofs and addresses to sample.
    pub async fn funded() -> Self {
        let node = Litecoind::start().await.unwrap();
        let wallet = node.create_wallet("test").await.unwrap();
        let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
        node.mine(101, &miner).await.unwrap();
        let funded = Self {
            node,
            wallet,
            miner,
        };
        for _ in 0..3 {
            funded.pay_and_mine().await;
        }
        funded
    }

    /// A node linked to `other` and synced with it.
    pub async fn follower(other: &Litecoind) -> Litecoind {
        let node = Litecoind::start().await.unwrap();
        node.connect_to(other).await.unwrap();
        node.sync_with(other).await.unwrap();
        node
    }

    /// Two payments and a block holding them.
    pub async fn pay_and_mine(&self) {
        for kind in [AddressType::Legacy, AddressType::Bech32] {
            let payee = self.wallet.new_address(kind).await.unwrap();
            self.wallet.send_to(&payee, 50_000_000).await.unwrap();
        }
        self.node.mine(1, &self.miner).await.unwrap();
    }

    /// A signed raw transaction paying `sat` to a fresh address, not sent.
    pub async fn signed_payment(&self, sat: u64) -> String {
        let payee = self.wallet.new_address(AddressType::Bech32).await.unwrap();
        let rpc = self.wallet.rpc();
        let raw: String = rpc
            .call(
                "createrawtransaction",
                json!([[], {payee: sat as f64 / 1e8}]),
            )
            .await
            .unwrap();
        let funded: Value = rpc.call("fundrawtransaction", json!([raw])).await.unwrap();
        let signed: Value = rpc
            .call("signrawtransactionwithwallet", json!([funded["hex"]]))
            .await
            .unwrap();
        signed["hex"].as_str().unwrap().to_owned()
    }
}

/// An in-process rot-proxy serving LTC regtest.
pub struct Proxy {
    pub url: String,
    pub http: reqwest::Client,
    running: Option<Running>,
    shutdown: CancellationToken,
    _data: tempfile::TempDir,
}

/// Settings fast enough for tests; `extra` overrides.
fn settings(data_dir: &Path, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map = rot_harness::ring_proxy_settings(TOKEN);
    map.insert(
        "ROT_PROXY_DATA_DIR".to_owned(),
        data_dir.display().to_string(),
    );
    for (key, value) in extra {
        map.insert((*key).to_owned(), (*value).to_owned());
    }
    map
}

impl Proxy {
    /// Starts a proxy with the test settings and `extra` ones.
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = Config::from_map(&settings(data.path(), extra)).unwrap();
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let shutdown = CancellationToken::new();
        let running = start(config, listener, shutdown.clone()).await.unwrap();
        Self {
            url: format!("http://{}", running.addr),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            running: Some(running),
            shutdown,
            _data: data,
        }
    }

    /// The relay's base URL for wallets.
    pub fn esplora(&self) -> String {
        format!("{}/v1/coins/{COIN}/esplora", self.url)
    }

    /// A rot-server over `node` that registers here.
    pub async fn server(&self, node: &Litecoind) -> RotServer {
        RotServer::start_with(
            node,
            None,
            &[("ROT_PROXIES", &self.url), ("ROT_HEARTBEAT_SECS", "1")],
        )
        .await
        .unwrap()
    }

    /// GET `path` of the relay: status, headers, body text.
    pub async fn relay(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        self.get(&format!("{}{path}", self.esplora()), None).await
    }

    /// GET `url`, with `X-Rot-Server: pin` when given.
    pub async fn get(&self, url: &str, pin: Option<&PublicKey>) -> (StatusCode, HeaderMap, String) {
        let mut request = self.http.get(url);
        if let Some(key) = pin {
            request = request.header("x-rot-server", key.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    /// An operator-view GET.
    pub async fn admin(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The relay's operator view of the coin.
    pub async fn relay_view(&self) -> Value {
        self.admin(&format!("/v1/admin/coins/{COIN}/relay")).await
    }

    /// The wallet-facing directory entries.
    pub async fn listed(&self) -> Vec<DirectoryEntry> {
        let (status, _, body) = self
            .get(&format!("{}/v1/coins/{COIN}/servers", self.url), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        serde_json::from_value(answer["servers"].clone()).unwrap()
    }

    /// The wallet-facing entry of `key`.
    pub async fn entry(&self, key: &PublicKey) -> Option<DirectoryEntry> {
        self.listed()
            .await
            .into_iter()
            .find(|e| e.server_key == *key)
    }

    /// Every incident of `key`, with evidence (operator view).
    pub async fn incidents_of(&self, key: &PublicKey) -> Vec<Value> {
        let answer = self
            .admin(&format!("/v1/admin/incidents?server={key}"))
            .await;
        answer["incidents"].as_array().cloned().unwrap_or_default()
    }

    /// The keys the relay serves from on the agreed tip, and that tip.
    pub async fn on_tip(&self) -> (BTreeSet<PublicKey>, Value) {
        let view = self.relay_view().await;
        let keys = view["servers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["healthy"] == true && s["on_agreed_tip"] == true)
            .map(|s| serde_json::from_value(s["server_key"].clone()).unwrap())
            .collect();
        (keys, view["agreement"].clone())
    }

    /// Waits until the relay serves from exactly `keys` on the tip `(height, hash)`.
    pub async fn wait_serving(&self, keys: &[PublicKey], tip: Option<(u32, Hash256)>) {
        let wanted: BTreeSet<PublicKey> = keys.iter().copied().collect();
        let mut last = Value::Null;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::time::Instant::now() < deadline {
            let (serving, agreement) = self.on_tip().await;
            let tip_right = tip.is_none_or(|(height, hash)| {
                agreement["tip"]["height"] == json!(height)
                    && agreement["tip"]["hash"] == json!(hash)
            });
            if serving == wanted && tip_right {
                return;
            }
            last = self.relay_view().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the relay did not come to serve from {wanted:?} at {tip:?}: {last:#}");
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.join().await;
        }
    }
}

/// The key a rot-server signs with, from its info.
pub async fn key_of(server: &RotServer) -> PublicKey {
    let info = server.api().get_json("/rot/v1/info").await.unwrap();
    serde_json::from_value(info["body"]["server_key"].clone()).unwrap()
}

/// The `X-Rot-Server` key of a relayed answer.
pub fn answered_by(headers: &HeaderMap) -> PublicKey {
    headers["x-rot-server"].to_str().unwrap().parse().unwrap()
}

/// Waits until `check` holds (checked every 100 ms), or panics with `what` and its last
/// state.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (bool, String)>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut state = String::new();
    while tokio::time::Instant::now() < deadline {
        let (done, now) = check().await;
        if done {
            return;
        }
        state = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; last state: {state}");
}
