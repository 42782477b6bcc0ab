//! Test chains: a funded regtest node whose newest blocks hold transactions of many kinds,
//! and rot-servers following it.

use std::time::Duration;

use rot_harness::{AddressType, Litecoind, RotServer, Wallet};
use rot_proto::{CoinProfile, Coins, Hash256, Network};
use serde_json::{Value, json};

/// Bound on a server catching up with the node.
pub const SYNC: Duration = Duration::from_secs(60);

/// The coin profile of the test nodes.
pub fn profile() -> CoinProfile {
    Coins::builtin()
        .get("LTC", Network::Regtest)
        .unwrap()
        .clone()
}

/// A node, its wallet, and what the newest blocks hold.
pub struct Chain {
    pub node: Litecoind,
    pub wallet: Wallet,
    pub miner: String,
    /// Addresses paid in the last two blocks.
    pub paid: Vec<String>,
    /// Transactions the wallet sent in the last two blocks.
    pub sent: Vec<Hash256>,
}

/// A node whose last two blocks hold payments to every address kind the wallet makes, to a
/// 2-of-2 multisig, an OP_RETURN output, spends of fresh outputs and, with `mweb`, MWEB
/// activity (so those blocks end with a HogEx transaction).
pub async fn varied_chain(mweb: bool) -> Chain {
    let node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("conformance").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();
    if mweb {
        node.activate_mweb(&wallet, 200_000_000, &miner)
            .await
            .unwrap();
    }
    let (mut paid, mut sent) = (Vec::new(), Vec::new());
    for kind in [
        AddressType::Legacy,
        AddressType::P2shSegwit,
        AddressType::Bech32,
    ] {
        let address = wallet.new_address(kind).await.unwrap();
        sent.push(wallet.send_to(&address, 150_000_000).await.unwrap());
        paid.push(address);
    }
    let keys = [pubkey(&wallet).await, pubkey(&wallet).await];
    let multisig: Value = wallet
        .rpc()
        .call("addmultisigaddress", json!([2, keys, "", "legacy"]))
        .await
        .unwrap();
    let multisig = multisig["address"].as_str().unwrap().to_owned();
    sent.push(wallet.send_to(&multisig, 70_000_000).await.unwrap());
    paid.push(multisig);
    let data: String = node
        .call(
            "createrawtransaction",
            json!([[], [{"data": hex::encode("rot conformance")}]]),
        )
        .await
        .unwrap();
    sent.push(fund_sign_send(&wallet, &data).await);
    node.mine(1, &miner).await.unwrap();

    // The wallet now spends the outputs it just received, and pegs coins into MWEB.
    for kind in [AddressType::Bech32, AddressType::Legacy] {
        let address = wallet.new_address(kind).await.unwrap();
        sent.push(wallet.send_to(&address, 300_000_000).await.unwrap());
        paid.push(address);
    }
    if mweb {
        // An MWEB transfer: no canonical transaction, but the block's HogEx changes.
        let stealth = wallet.new_address(AddressType::Mweb).await.unwrap();
        wallet.send_to(&stealth, 100_000_000).await.unwrap();
    }
    node.mine(1, &miner).await.unwrap();
    Chain {
        node,
        wallet,
        miner,
        paid,
        sent,
    }
}

/// A rot-server over `node`, caught up with it.
pub async fn synced_server(node: &Litecoind) -> RotServer {
    let server = RotServer::start(node).await.unwrap();
    server.wait_synced(node, SYNC).await.unwrap();
    server
}

/// Transactions in the blocks from `lowest` to the tip, as the node reports them.
pub async fn txs_since(node: &Litecoind, lowest: u32) -> usize {
    let (tip, _) = node.tip().await.unwrap();
    let mut count = 0;
    for height in lowest..=tip {
        let hash: Hash256 = node.call("getblockhash", json!([height])).await.unwrap();
        let block: Value = node.call("getblock", json!([hash, 1])).await.unwrap();
        count += block["tx"].as_array().unwrap().len();
    }
    count
}

/// A fresh legacy public key of the wallet, as hex.
async fn pubkey(wallet: &Wallet) -> String {
    let address = wallet.new_address(AddressType::Legacy).await.unwrap();
    let info: Value = wallet
        .rpc()
        .call("getaddressinfo", json!([address]))
        .await
        .unwrap();
    info["pubkey"].as_str().unwrap().to_owned()
}

/// Funds, signs and sends a transaction that has outputs but no inputs.
async fn fund_sign_send(wallet: &Wallet, raw_hex: &str) -> Hash256 {
    let rpc = wallet.rpc();
    let funded: Value = rpc
        .call("fundrawtransaction", json!([raw_hex]))
        .await
        .unwrap();
    let signed: Value = rpc
        .call("signrawtransactionwithwallet", json!([funded["hex"]]))
        .await
        .unwrap();
    rpc.call("sendrawtransaction", json!([signed["hex"]]))
        .await
        .unwrap()
}
