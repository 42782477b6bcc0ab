//! The wallet client (feature `client`): typed calls of the Esplora API at any base URL and
//! of a proxy's directory. An [`Esplora`] is one source of chain data: a server's root
//! (`https://ltc.example.org`), or a proxy's relay for a coin
//! (`https://proxy.example.org/v1/coins/ltc/esplora`), which picks a server per request and
//! names it in `X-Rot-Server`. Every answer comes back as [`Served`], with that server's key
//! when a proxy gave one, so answers can be attributed and cross-checked
//! ([`crate::cross_check`]).
//!
//! What a call can check on its own, it checks: a header must hash to the block asked for,
//! a raw transaction to its txid. Whether to believe the rest is the caller's business.

use serde::Deserialize;

use crate::esplora::{AddressStats, OutSpend, TxSummary, Utxo};
use crate::message::{
    ChallengeAnswer, CoinSummary, DirectoryEntry, Nonce, PeerEntry, PeersAnswer, ProxyInfo,
    ServerInfo,
};
use crate::transport::{Answer, Transport};
use crate::{
    Address, BlockHeader, CoinProfile, Error, Hash256, MerkleProof, PublicKey, Signed, Transaction,
};

/// An answer and the server that gave it, when a proxy relayed the request and named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served<T> {
    /// What was answered.
    pub value: T,
    /// The answering server's key from `X-Rot-Server`; `None` when asked directly.
    pub server: Option<PublicKey>,
}

impl<T> Served<T> {
    fn of(answer: &Answer, value: T) -> Self {
        Self {
            value,
            server: answer.server_key(),
        }
    }
}

/// Checks that `url` is an http(s) base URL without query or fragment, and drops a trailing
/// slash so that paths can be appended.
pub fn base_url(url: &str) -> Result<String, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("must start with http:// or https://"))?;
    if rest.split('/').next().unwrap_or_default().is_empty() {
        return Err(invalid("has no host"));
    }
    if url.contains(['?', '#']) || url.chars().any(char::is_whitespace) {
        return Err(invalid("must not have a query, fragment or whitespace"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// One source of Esplora answers for one coin network.
#[derive(Debug, Clone)]
pub struct Esplora {
    transport: Transport,
    base: String,
    profile: CoinProfile,
}

impl Esplora {
    /// The Esplora API at `base_url` (a server's root or a proxy's relay) of the coin of
    /// `profile`.
    pub fn new(
        transport: impl Into<Transport>,
        base_url: &str,
        profile: CoinProfile,
    ) -> Result<Self, Error> {
        Ok(Self {
            transport: transport.into(),
            base: self::base_url(base_url)?,
            profile,
        })
    }

    /// The base URL requests are made under.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The coin network asked about.
    pub fn profile(&self) -> &CoinProfile {
        &self.profile
    }

    /// `GET {base}{path}` whatever the answer's status, for callers that judge it themselves.
    pub async fn fetch(&self, path: &str) -> Result<Answer, Error> {
        self.transport.get(&format!("{}{path}", self.base)).await
    }

    /// `GET {base}{path}`, which must succeed.
    async fn get(&self, path: &str) -> Result<Answer, Error> {
        self.fetch(path).await?.success()
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Served<T>, Error> {
        let answer = self.get(path).await?;
        let value = answer.json()?;
        Ok(Served::of(&answer, value))
    }

    async fn get_parsed<T: std::str::FromStr>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<Served<T>, Error> {
        let answer = self.get(path).await?;
        let value = answer.parse(what)?;
        Ok(Served::of(&answer, value))
    }

    /// `GET /blocks/tip/height`.
    pub async fn tip_height(&self) -> Result<Served<u32>, Error> {
        self.get_parsed("/blocks/tip/height", "a block height")
            .await
    }

    /// `GET /blocks/tip/hash`.
    pub async fn tip_hash(&self) -> Result<Served<Hash256>, Error> {
        self.get_parsed("/blocks/tip/hash", "a block hash").await
    }

    /// `GET /block-height/:height`: the hash of the best-chain block at `height`.
    pub async fn block_hash(&self, height: u32) -> Result<Served<Hash256>, Error> {
        self.get_parsed(&format!("/block-height/{height}"), "a block hash")
            .await
    }

    /// `GET /block/:hash/header`, checked to hash to `hash`.
    pub async fn header(&self, hash: &Hash256) -> Result<Served<BlockHeader>, Error> {
        let answer = self.get(&format!("/block/{hash}/header")).await?;
        let header = hex::decode(answer.text()?)
            .ok()
            .and_then(|bytes| BlockHeader::parse(&bytes).ok())
            .ok_or_else(|| {
                answer.bad(&format!(
                    "expected 80 bytes of header in hex, got {:?}",
                    answer.excerpt()
                ))
            })?;
        if header.hash() != *hash {
            return Err(answer.bad(&format!(
                "the header hashes to {}, not to the block asked for",
                header.hash()
            )));
        }
        Ok(Served::of(&answer, header))
    }

    /// `GET /block/:hash/txids`: the block's transaction ids in block order (unchecked; see
    /// [`crate::merkle::merkle_root`]).
    pub async fn block_txids(&self, hash: &Hash256) -> Result<Served<Vec<Hash256>>, Error> {
        self.get_json(&format!("/block/{hash}/txids")).await
    }

    /// `GET /tx/:txid/raw`, checked to parse under the coin's rules and hash to `txid`.
    pub async fn raw_tx(&self, txid: &Hash256) -> Result<Served<Vec<u8>>, Error> {
        let answer = self.get(&format!("/tx/{txid}/raw")).await?;
        let parsed = Transaction::parse(&answer.body, &self.profile.rules)
            .map_err(|e| answer.bad(&format!("the raw transaction does not parse: {e}")))?;
        if parsed.txid() != *txid {
            return Err(answer.bad(&format!(
                "the raw transaction hashes to {}, not to the txid asked for",
                parsed.txid()
            )));
        }
        let raw = answer.body.clone();
        Ok(Served::of(&answer, raw))
    }

    /// `GET /tx/:txid/merkle-proof` (unchecked; see [`MerkleProof::verify`]).
    pub async fn merkle_proof(&self, txid: &Hash256) -> Result<Served<MerkleProof>, Error> {
        self.get_json(&format!("/tx/{txid}/merkle-proof")).await
    }

    /// `GET /tx/:txid/outspend/:vout`.
    pub async fn outspend(&self, txid: &Hash256, vout: u32) -> Result<Served<OutSpend>, Error> {
        self.get_json(&format!("/tx/{txid}/outspend/{vout}")).await
    }

    /// `GET /address/:address`.
    pub async fn address_stats(&self, address: &Address) -> Result<Served<AddressStats>, Error> {
        self.get_json(&format!("/address/{address}")).await
    }

    /// `GET /address/:address/utxo`.
    pub async fn utxos(&self, address: &Address) -> Result<Served<Vec<Utxo>>, Error> {
        self.get_json(&format!("/address/{address}/utxo")).await
    }

    /// `GET /address/:address/txs/chain`: the newest confirmed transactions (one page).
    pub async fn confirmed_history(
        &self,
        address: &Address,
    ) -> Result<Served<Vec<TxSummary>>, Error> {
        self.get_json(&format!("/address/{address}/txs/chain"))
            .await
    }

    /// `GET /rot/v1/info` (unverified; see [`Signed::verify`]).
    pub async fn info(&self) -> Result<Served<Signed<ServerInfo>>, Error> {
        self.get_json("/rot/v1/info").await
    }

    /// `GET /rot/v1/challenge?nonce=` (unverified; see [`Signed::verify`] and
    /// [`ChallengeAnswer::check`]).
    pub async fn challenge(&self, nonce: &Nonce) -> Result<Served<Signed<ChallengeAnswer>>, Error> {
        self.get_json(&format!("/rot/v1/challenge?nonce={nonce}"))
            .await
    }
}

#[derive(Deserialize)]
struct CoinsAnswer {
    coins: Vec<CoinSummary>,
}

#[derive(Deserialize)]
struct ServersAnswer {
    servers: Vec<DirectoryEntry>,
}

/// A proxy: its directory of servers, and its relay of Esplora requests.
#[derive(Debug, Clone)]
pub struct Proxy {
    transport: Transport,
    base: String,
}

impl Proxy {
    /// The proxy at `base_url`.
    pub fn new(transport: impl Into<Transport>, base_url: &str) -> Result<Self, Error> {
        Ok(Self {
            transport: transport.into(),
            base: self::base_url(base_url)?,
        })
    }

    /// Its base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /v1/coins`: the coins it serves.
    pub async fn coins(&self) -> Result<Vec<CoinSummary>, Error> {
        let answer = self
            .transport
            .get(&format!("{}/v1/coins", self.base))
            .await?
            .success()?;
        Ok(answer.json::<CoinsAnswer>()?.coins)
    }

    /// `GET /v1/coins/:coin/servers`: the coin's healthy servers (`coin_id` as
    /// [`CoinProfile::id`]).
    pub async fn servers(&self, coin_id: &str) -> Result<Vec<DirectoryEntry>, Error> {
        let answer = self
            .transport
            .get(&format!(
                "{}/v1/coins/{}/servers",
                self.base,
                path_segment(coin_id)?
            ))
            .await?
            .success()?;
        Ok(answer.json::<ServersAnswer>()?.servers)
    }

    /// `GET /v1/info`: the proxy's signed account of itself. Verify it, and compare its key
    /// with the one the bootstrap list names for this URL, before believing it.
    pub async fn info(&self) -> Result<Signed<ProxyInfo>, Error> {
        let answer = self
            .transport
            .get(&format!("{}/v1/info", self.base))
            .await?
            .success()?;
        answer.json()
    }

    /// `GET /v1/peers`: the other proxies of the bootstrap list, as this one last saw them.
    pub async fn peers(&self) -> Result<Vec<PeerEntry>, Error> {
        let answer = self
            .transport
            .get(&format!("{}/v1/peers", self.base))
            .await?
            .success()?;
        Ok(answer.json::<PeersAnswer>()?.peers)
    }

    /// Its relay of the Esplora API for the coin of `profile`, at
    /// `{base}/v1/coins/{id}/esplora`.
    pub fn esplora(&self, profile: CoinProfile) -> Result<Esplora, Error> {
        let url = format!(
            "{}/v1/coins/{}/esplora",
            self.base,
            path_segment(&profile.id())?
        );
        Esplora::new(self.transport.clone(), &url, profile)
    }
}

/// A coin id as a URL path segment: lower-case letters, digits and dashes only.
fn path_segment(coin_id: &str) -> Result<&str, Error> {
    let valid = !coin_id.is_empty()
        && coin_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(coin_id)
    } else {
        Err(Error::InvalidUrl {
            url: coin_id.to_owned(),
            reason: "a coin id has only lower-case letters, digits and dashes".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Coins, Network};

    #[test]
    fn base_urls_are_checked_and_normalized() {
        assert_eq!(
            base_url("http://127.0.0.1:3000/").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            base_url("https://p.example/v1/coins/ltc/esplora").unwrap(),
            "https://p.example/v1/coins/ltc/esplora"
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://x?y=1",
            "http://x#f",
            "x y",
            "",
        ] {
            assert!(
                matches!(base_url(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_proxy_relays_each_coin_under_its_id() {
        let profile = Coins::builtin()
            .get("LTC", Network::Regtest)
            .unwrap()
            .clone();
        let proxy = Proxy::new(Transport::default(), "https://p.example/").unwrap();
        assert_eq!(
            proxy.esplora(profile).unwrap().base_url(),
            "https://p.example/v1/coins/ltc-regtest/esplora"
        );
        assert!(path_segment("../admin").is_err());
    }

    #[test]
    fn coin_summaries_tolerate_missing_tips() {
        let answer: CoinsAnswer = serde_json::from_value(serde_json::json!({"coins": [{
            "id": "ltc", "ticker": "LTC", "network": "main",
            "genesis_hash": "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
            "healthy_servers": 0, "future_field": true
        }]}))
        .unwrap();
        assert_eq!(answer.coins[0].tip_height, None);
    }
}
