//! A small ring for relay and fault tests: real regtest litecoind nodes, real rot-servers over
//! them that register with an in-process rot-proxy by their own heartbeats, and helpers to
//! read the proxy's views. Probe intervals are sub-second so tests run fast.
//!
//! The helpers are test assertions: they panic with what they saw rather than return errors.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use rot_proto::message::DirectoryEntry;
use rot_proto::{Hash256, PublicKey};
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, AddressType, Litecoind, RotProxy, RotServer, Traffic, Wallet};

/// The coin id served.
pub const COIN: &str = "ltc-regtest";
/// Longest wait for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A regtest node with a funded wallet and a miner address.
#[derive(Debug)]
pub struct Node {
    /// The node.
    pub node: Litecoind,
    /// Its funded wallet.
    pub wallet: Wallet,
    /// The wallet's address blocks are mined to.
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

    /// Idempotent questions a wallet asks about this chain, answered from a server's index
    /// alone: what fault tests keep asking through a relay while they break things.
    pub fn wallet_questions(&self) -> Vec<String> {
        vec![
            "/blocks/tip/height".to_owned(),
            "/blocks/tip/hash".to_owned(),
            format!("/address/{}/utxo", self.miner),
            format!("/address/{}", self.miner),
            "/block-height/1".to_owned(),
        ]
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

/// An in-process rot-proxy serving LTC regtest with fast probes, and a client of it.
#[derive(Debug)]
pub struct Proxy {
    /// Base URL of its API.
    pub url: String,
    /// A client that bypasses any HTTP proxy of the environment.
    pub http: reqwest::Client,
    inner: RotProxy,
}

/// The ring's proxy settings with `extra` over them.
fn settings(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut map = crate::ring_proxy_settings(ADMIN_TOKEN);
    for (key, value) in extra {
        map.insert((*key).to_owned(), (*value).to_owned());
    }
    map.into_iter().collect()
}

impl Proxy {
    /// Starts a proxy with the test settings and `extra` ones.
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let settings = settings(extra);
        let settings: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let inner = RotProxy::start_with(None, &settings).await.unwrap();
        Self {
            url: inner.url.clone(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            inner,
        }
    }

    /// The relay's base URL for wallets.
    pub fn esplora(&self) -> String {
        format!("{}/v1/coins/{COIN}/esplora", self.url)
    }

    /// A rot-server over `node` that registers here.
    pub async fn server(&self, node: &Litecoind) -> RotServer {
        self.server_with(node, &[]).await
    }

    /// A rot-server over `node` that registers here, with `extra` settings (e.g. the
    /// `ROT_PUBLIC_URL` it registers).
    pub async fn server_with(&self, node: &Litecoind, extra: &[(&str, &str)]) -> RotServer {
        let mut all = vec![
            ("ROT_PROXIES", self.url.as_str()),
            ("ROT_HEARTBEAT_SECS", "1"),
        ];
        all.extend_from_slice(extra);
        RotServer::start_with(node, None, &all).await.unwrap()
    }

    /// `wallets` wallets asking `paths` of the relay in a loop, once their answers flow.
    pub async fn wallets(&self, paths: &[String], wallets: usize) -> Traffic {
        let traffic = Traffic::start(&self.http, &self.esplora(), paths, wallets, PATIENCE);
        assert!(
            traffic.wait_answered(50, PATIENCE).await,
            "no wallet traffic flows through the relay"
        );
        traffic
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
            .bearer_auth(ADMIN_TOKEN)
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

    /// Relayed requests per server so far, from the operator view.
    pub async fn requests(&self) -> BTreeMap<PublicKey, u64> {
        let view = self.relay_view().await;
        view["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    serde_json::from_value(s["server_key"].clone()).unwrap(),
                    s["requests"].as_u64().unwrap(),
                )
            })
            .collect()
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

    /// Stops the proxy and waits for its tasks.
    pub async fn stop(self) {
        self.inner.stop().await;
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
