//! What the electrum-backend tests share: a regtest node with wallet activity, ElectrumX in
//! front of it, a native and an electrum rot-server over the same chain, and the comparison
//! of their answers endpoint by endpoint.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rot_harness::{AddressType, ElectrumX, ElectrumXBuilder, Litecoind, RotServer, Wallet};
use rot_proto::{Address, Coins, Hash256, Network};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

/// Bound on waiting for a server to reach a height.
pub const WAIT: Duration = Duration::from_secs(60);

/// ElectrumX as rot-server's operators are told to run it: rot-server multiplexes many
/// wallets over one session, so ElectrumX's per-session cost limits are off and the session
/// may have many requests in progress.
pub fn electrumx() -> ElectrumXBuilder {
    ElectrumX::builder()
        .env("COST_SOFT_LIMIT", "0")
        .env("COST_HARD_LIMIT", "0")
        .env("INITIAL_CONCURRENT", "64")
}

/// A regtest node (with `-txindex`, which ElectrumX needs) and its wallet.
pub async fn node() -> (Litecoind, Wallet) {
    // The comparisons ask many questions at once; the node's default queue of 16 is short.
    let node = Litecoind::builder()
        .txindex(true)
        .arg("-rpcworkqueue=256")
        .start()
        .await
        .unwrap();
    let wallet = node.create_wallet("w").await.unwrap();
    (node, wallet)
}

/// The addresses the wallet activity touches.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub miner: String,
    pub legacy: String,
    pub p2sh: String,
    pub bech32: String,
}

/// Builds a chain with confirmed payments to every address type, spends of them (so
/// addresses have spent outputs), two transactions in one block for one address, and
/// mempool transactions that both fund and spend.
pub async fn wallet_activity(node: &Litecoind, wallet: &Wallet) -> Addresses {
    let addresses = Addresses {
        miner: wallet.new_address(AddressType::Bech32).await.unwrap(),
        legacy: wallet.new_address(AddressType::Legacy).await.unwrap(),
        p2sh: wallet.new_address(AddressType::P2shSegwit).await.unwrap(),
        bech32: wallet.new_address(AddressType::Bech32).await.unwrap(),
    };
    node.mine(101, &addresses.miner).await.unwrap();
    wallet
        .send_to(&addresses.legacy, 100_000_000)
        .await
        .unwrap();
    wallet.send_to(&addresses.legacy, 30_000_000).await.unwrap();
    wallet.send_to(&addresses.p2sh, 200_000_000).await.unwrap();
    wallet.send_to(&addresses.bech32, 50_000_000).await.unwrap();
    node.mine(1, &addresses.miner).await.unwrap();
    spend_from(wallet, &addresses.legacy, &addresses.bech32, 20_000_000).await;
    node.mine(1, &addresses.miner).await.unwrap();
    // Mempool: a payment to the legacy address and a spend of its confirmed output.
    wallet.send_to(&addresses.legacy, 10_000_000).await.unwrap();
    spend_from(wallet, &addresses.p2sh, &addresses.legacy, 40_000_000).await;
    addresses
}

/// Spends one confirmed output of `from` (all of it, less `amount` to `to` and a fee back
/// to `from`'s wallet), so the spend certainly touches `from`.
pub async fn spend_from(wallet: &Wallet, from: &str, to: &str, amount: u64) -> Hash256 {
    let raw = signed_spend(wallet, from, to, amount).await;
    wallet
        .rpc()
        .call("sendrawtransaction", json!([raw]))
        .await
        .unwrap()
}

/// A signed (not sent) transaction spending one confirmed output of `from`.
pub async fn signed_spend(wallet: &Wallet, from: &str, to: &str, amount: u64) -> String {
    let unspent: Vec<Value> = wallet
        .rpc()
        .call("listunspent", json!([1, 9_999_999, [from]]))
        .await
        .unwrap();
    let coin = &unspent[0];
    let value = (coin["amount"].as_f64().unwrap() * 1e8).round() as u64;
    let change: String = wallet
        .rpc()
        .call("getrawchangeaddress", json!([]))
        .await
        .unwrap();
    let outputs = json!({
        to: amount as f64 / 1e8,
        change: (value - amount - 100_000) as f64 / 1e8,
    });
    let unsigned: String = wallet
        .rpc()
        .call(
            "createrawtransaction",
            json!([[{"txid": coin["txid"], "vout": coin["vout"]}], outputs]),
        )
        .await
        .unwrap();
    let signed: Value = wallet
        .rpc()
        .call("signrawtransactionwithwallet", json!([unsigned]))
        .await
        .unwrap();
    assert_eq!(signed["complete"], json!(true), "{signed}");
    signed["hex"].as_str().unwrap().to_owned()
}

/// The two servers under comparison.
#[derive(Debug)]
pub struct Pair {
    pub native: RotServer,
    pub electrum: RotServer,
}

/// Starts a native rot-server and an electrum one (over `electrum_url`) on `node`.
pub async fn pair(node: &Litecoind, electrum_url: &str) -> Pair {
    let native = RotServer::start(node).await.unwrap();
    let electrum = electrum_server(node, electrum_url).await.unwrap();
    Pair { native, electrum }
}

/// Starts an electrum rot-server over `url`.
pub async fn electrum_server(node: &Litecoind, url: &str) -> Result<RotServer, rot_harness::Error> {
    RotServer::start_with(
        node,
        None,
        &[("ROT_BACKEND", "electrum"), ("ROT_ELECTRUM_URL", url)],
    )
    .await
}

impl Pair {
    /// Waits until both serve the node's tip.
    pub async fn wait_for_node(&self, node: &Litecoind) {
        let (height, hash) = node.tip().await.unwrap();
        for server in [&self.native, &self.electrum] {
            server.wait_for_height(height, WAIT).await.unwrap();
            let tip = text(&format!("{}/blocks/tip/hash", server.url)).await;
            assert_eq!(tip, hash.to_string(), "{} tip", server.url);
        }
    }
}

/// An answer, by content type.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
}

/// GETs `url`: status and body.
pub async fn get(url: &str) -> (u16, Body) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_owned())
        .unwrap_or_default();
    let bytes = response.bytes().await.unwrap().to_vec();
    let body = if json.starts_with("application/json") {
        Body::Json(serde_json::from_slice(&bytes).unwrap())
    } else if json.starts_with("text/plain") {
        Body::Text(String::from_utf8(bytes).unwrap())
    } else {
        Body::Bytes(bytes)
    };
    (status, body)
}

/// GETs a text answer that must succeed.
pub async fn text(url: &str) -> String {
    match get(url).await {
        (200, Body::Text(text)) => text,
        other => panic!("{url}: {other:?}"),
    }
}

/// GETs a JSON answer that must succeed.
pub async fn json_of(url: &str) -> Value {
    match get(url).await {
        (200, Body::Json(value)) => value,
        other => panic!("{url}: {other:?}"),
    }
}

/// The error code of an error answer.
pub fn error_code(body: &Body) -> &str {
    match body {
        Body::Json(value) => value["error"]["code"].as_str().unwrap_or("?"),
        _ => "?",
    }
}

/// The start of a body, for failure messages.
fn shown(body: &Body) -> String {
    format!("{body:?}").chars().take(1500).collect()
}

/// Makes answers comparable where the backends may legitimately order differently:
/// unspent outputs (no defined order) and mempool transactions (arrival order natively,
/// the server's canonical order over Electrum) are sorted.
fn normalized(path: &str, body: Body) -> Body {
    let Body::Json(Value::Array(mut items)) = body else {
        return body;
    };
    let key = |item: &Value| format!("{}:{}", item["txid"], item["vout"]);
    if path.ends_with("/utxo") {
        items.sort_by_key(key);
    } else if path.ends_with("/txs") || path.ends_with("/txs/mempool") {
        let unconfirmed = items
            .iter()
            .take_while(|tx| tx["status"]["confirmed"] == json!(false))
            .count();
        items[..unconfirmed].sort_by_key(key);
    }
    Body::Json(Value::Array(items))
}

/// Asks both servers `path`; they must answer the same: same status, same body (or the same
/// error code). Returns the status.
pub async fn same_answer(pair: &Pair, path: &str) -> u16 {
    compare(
        pair.native.url.clone(),
        pair.electrum.url.clone(),
        path.to_owned(),
    )
    .await
}

/// [`same_answer`] for many paths, several at a time (ElectrumX takes its time per request,
/// and answers many at once).
pub async fn same_answers(pair: &Pair, paths: &[String]) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(32) {
        let mut tasks = tokio::task::JoinSet::new();
        for (at, path) in chunk.iter().enumerate() {
            let (native, electrum) = (pair.native.url.clone(), pair.electrum.url.clone());
            let path = path.clone();
            tasks.spawn(async move { (at, compare(native, electrum, path).await) });
        }
        let mut done: Vec<(usize, u16)> = tasks.join_all().await;
        done.sort_unstable();
        statuses.extend(done.into_iter().map(|(_, status)| status));
    }
    statuses
}

async fn compare(native_url: String, electrum_url: String, path: String) -> u16 {
    let (native_status, native) = get(&format!("{native_url}{path}")).await;
    let (electrum_status, electrum) = get(&format!("{electrum_url}{path}")).await;
    assert_eq!(
        native_status,
        electrum_status,
        "{path}: native answered {native_status} {}, electrum {electrum_status} {}",
        shown(&native),
        shown(&electrum)
    );
    if native_status >= 400 {
        assert_eq!(error_code(&native), error_code(&electrum), "{path}");
    } else {
        assert_eq!(
            normalized(&path, native),
            normalized(&path, electrum),
            "{path}: answers differ"
        );
    }
    native_status
}

/// Asks the electrum server `path`: a 501 with the error body, while the native one answers.
pub async fn electrum_unsupported(pair: &Pair, path: &str) {
    let (native_status, _) = get(&format!("{}{path}", pair.native.url)).await;
    assert_eq!(native_status, 200, "{path} on the native backend");
    let (status, body) = get(&format!("{}{path}", pair.electrum.url)).await;
    assert_eq!(status, 501, "{path}: {body:?}");
    assert_eq!(error_code(&body), "not_implemented", "{path}");
    let Body::Json(value) = body else {
        unreachable!()
    };
    assert!(
        value["error"]["message"].as_str().unwrap().len() > 20,
        "{value}"
    );
}

/// The Electrum-protocol script hash of an address, as `/scripthash/:hash` takes it (plain
/// SHA-256 order, not Electrum's reversed hex).
pub fn script_hash(address: &str) -> String {
    let coins = Coins::builtin();
    let profile = coins.get("LTC", Network::Regtest).unwrap();
    Address::parse(profile, address)
        .unwrap()
        .script_hash()
        .to_string()
}

/// A TCP relay standing in for a server's address, so the server behind it can be swapped
/// (a restart on the same address, as rot-server sees it) or cut off.
#[derive(Debug, Clone)]
pub struct Relay {
    pub address: String,
    target: Arc<Mutex<Option<String>>>,
}

impl Relay {
    /// Relays 127.0.0.1:<free port> to `target`.
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let target = Arc::new(Mutex::new(Some(target.to_owned())));
        let shared = target.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Some(to) = shared.lock().unwrap().clone() else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { address, target }
    }

    /// Points new connections at `target`, or refuses them with `None`.
    pub fn point_to(&self, target: Option<&str>) {
        *self.target.lock().unwrap() = target.map(str::to_owned);
    }
}
