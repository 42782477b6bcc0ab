//! A wallet loaded in a test node, so tests can receive coinbase rewards and create real
//! transactions of every address type the node supports.

use rot_proto::Hash256;
use rot_server::rpc::NodeRpc;
use serde_json::json;

use crate::Error;

/// Address types `getnewaddress` of litecoind 0.21.2 accepts. There is no `bech32m`: that
/// version can pay to taproot addresses but its wallet cannot create them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    /// Base58 P2PKH.
    Legacy,
    /// Base58 P2SH wrapping P2WPKH.
    P2shSegwit,
    /// Native segwit v0 P2WPKH.
    Bech32,
    /// Litecoin MWEB stealth address (`tmweb1...` on regtest).
    Mweb,
}

impl AddressType {
    /// The name the node's RPC uses.
    fn rpc_name(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::P2shSegwit => "p2sh-segwit",
            Self::Bech32 => "bech32",
            Self::Mweb => "mweb",
        }
    }
}

/// A loaded wallet; its RPC client talks to the node's per-wallet endpoint
/// (`/wallet/<name>`), so several wallets can coexist in one node.
#[derive(Debug, Clone)]
pub struct Wallet {
    name: String,
    rpc: NodeRpc,
}

impl Wallet {
    pub(crate) fn new(name: String, rpc: NodeRpc) -> Self {
        Self { name, rpc }
    }

    /// The wallet's name in the node.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// RPC client bound to this wallet, for wallet calls the harness does not wrap.
    pub fn rpc(&self) -> &NodeRpc {
        &self.rpc
    }

    /// A fresh receiving address of `kind`.
    pub async fn new_address(&self, kind: AddressType) -> Result<String, Error> {
        Ok(self
            .rpc
            .call("getnewaddress", json!(["", kind.rpc_name()]))
            .await?)
    }

    /// Pays `amount_sat` satoshis to `address` (fee from `-fallbackfee`); returns the txid.
    pub async fn send_to(&self, address: &str, amount_sat: u64) -> Result<Hash256, Error> {
        let coins = amount_sat as f64 / 1e8;
        Ok(self
            .rpc
            .call("sendtoaddress", json!([address, coins]))
            .await?)
    }
}
