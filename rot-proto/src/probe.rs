//! One server under the conformance checks (feature `client`). A [`Probe`] runs the checks
//! one by one and remembers what they fetched (the signed info, the tip height, the newest
//! headers, the sampled transactions), so a proxy can run a cheap subset and the full suite
//! asks each thing once.
//!
//! A check that needs another check's facts reports that check's failure itself only if it
//! was not reported yet: in a full run a broken header chain fails `headers` once and the
//! checks built on it skip, while a proxy running only `transactions` still sees the failure.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::Esplora;
use crate::conformance::{CheckResult, Options, Report, TipSeen, check};
use crate::esplora::{AddressStats, Utxo};
use crate::merkle::{branch_root, merkle_root};
use crate::message::{ErrorCode, Nonce, ServerInfo, capability};
use crate::problem::{Fact, Passed, Problem, finish, own, settle};
use crate::sample::Sampler;
use crate::{Address, BlockHeader, Coins, Error, Hash256, PublicKey, Signed, Transaction};

/// How often a check re-reads values that move under it (tip, address totals) before it
/// gives up on a consistent view.
const ATTEMPTS: usize = 3;
/// Pause before re-reading a moving value.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The server's info, verified.
#[derive(Debug)]
struct InfoSeen {
    info: ServerInfo,
    key: PublicKey,
}

/// A header of the newest blocks.
#[derive(Debug, Clone)]
struct HeaderSeen {
    height: u32,
    hash: Hash256,
    header: BlockHeader,
    /// Whether its proof of work was checked (not for merge-mined headers, whose proof is in
    /// the parent chain's block).
    pow_checked: bool,
}

/// A confirmed transaction that may be sampled.
#[derive(Debug, Clone)]
struct Candidate {
    height: u32,
    block_hash: Hash256,
    /// Its position in the block, when the block's txid list told.
    pos: Option<usize>,
    txid: Hash256,
}

/// A sampled transaction, verified.
#[derive(Debug, Clone)]
struct SampledTx {
    candidate: Candidate,
    raw: Vec<u8>,
    /// Whether its merkle proof was checked (not when the server offers none).
    proven: bool,
}

/// The sampled transactions and where they were sampled from.
#[derive(Debug)]
struct Samples {
    source: &'static str,
    txs: Vec<SampledTx>,
    blocks_listed: usize,
    /// The first merkle proof that failed. The transactions themselves hashed to their ids,
    /// so the checks built on them still run; only the `transactions` check fails.
    proof_failure: Option<Problem>,
}

/// One server under the conformance checks; see the module documentation.
#[derive(Debug)]
pub struct Probe {
    api: Esplora,
    options: Options,
    info: Option<Fact<InfoSeen>>,
    /// The key the info names, even if it does not verify: the key answers must be signed by.
    claimed_key: Option<PublicKey>,
    tip_height: Option<Fact<u32>>,
    tip: Option<TipSeen>,
    headers: Option<Fact<Vec<HeaderSeen>>>,
    samples: Option<Fact<Samples>>,
}

impl Probe {
    pub(crate) fn new(api: Esplora, options: Options) -> Self {
        Self {
            api,
            options,
            info: None,
            claimed_key: None,
            tip_height: None,
            tip: None,
            headers: None,
            samples: None,
        }
    }

    /// The report of the checks run, with what the probe learnt about the server.
    pub fn into_report(self, checks: Vec<CheckResult>) -> Report {
        let server_key = match &self.info {
            Some(Fact {
                value: Ok(seen), ..
            }) => Some(seen.key),
            _ => None,
        };
        Report {
            base_url: self.api.base_url().to_owned(),
            coin: self.api.profile().id(),
            seed: self.options.seed,
            server_key,
            tip: self.tip,
            checks,
        }
    }

    /// [`check::INFO_SIGNATURE`].
    pub async fn info_signature(&mut self) -> CheckResult {
        self.load_info().await;
        let result = own(&mut self.info).map(|seen| Passed {
            summary: format!(
                "signed by {} ({}, {} backend, height {})",
                seen.key,
                seen.info.software,
                wire_name(&seen.info.backend),
                seen.info.height
            ),
            evidence: json!({
                "server_key": seen.key,
                "software": seen.info.software,
                "backend": seen.info.backend,
                "height": seen.info.height,
                "tip_hash": seen.info.tip_hash,
                "capabilities": seen.info.capabilities,
            }),
        });
        finish(check::INFO_SIGNATURE, result)
    }

    /// [`check::CHALLENGE_SIGNATURE`].
    pub async fn challenge_signature(&mut self) -> CheckResult {
        let result = self.challenge_inner().await;
        finish(check::CHALLENGE_SIGNATURE, result)
    }

    /// [`check::CHAIN_IDENTITY`].
    pub async fn chain_identity(&mut self) -> CheckResult {
        let result = self.chain_identity_inner().await;
        finish(check::CHAIN_IDENTITY, result)
    }

    /// [`check::TIP`].
    pub async fn tip(&mut self) -> CheckResult {
        let result = self.tip_inner().await;
        finish(check::TIP, result)
    }

    /// [`check::HEADERS`].
    pub async fn headers(&mut self) -> CheckResult {
        let result = self.headers_inner().await;
        finish(check::HEADERS, result)
    }

    /// [`check::TRANSACTIONS`].
    pub async fn transactions(&mut self) -> CheckResult {
        let result = self.transactions_inner().await;
        finish(check::TRANSACTIONS, result)
    }

    /// [`check::SPENT_BY`].
    pub async fn spent_by(&mut self) -> CheckResult {
        let result = self.spent_by_inner().await;
        finish(check::SPENT_BY, result)
    }

    /// [`check::ADDRESS_BALANCE`].
    pub async fn address_balance(&mut self) -> CheckResult {
        let result = self.address_balance_inner().await;
        finish(check::ADDRESS_BALANCE, result)
    }

    /// [`check::ERROR_ANSWERS`].
    pub async fn error_answers(&mut self) -> CheckResult {
        let result = self.error_answers_inner().await;
        finish(check::ERROR_ANSWERS, result)
    }

    // --- facts ---

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.base_url())
    }

    /// Whether the server's verified info lists `name`; `None` when the info is not
    /// available.
    fn offers(&self, name: &str) -> Option<bool> {
        match &self.info {
            Some(Fact {
                value: Ok(seen), ..
            }) => Some(seen.info.capabilities.iter().any(|c| c == name)),
            _ => None,
        }
    }

    async fn load_info(&mut self) {
        if self.info.is_some() {
            return;
        }
        let value = match self.api.info().await {
            Err(error) => Err(Problem::required(error)),
            Ok(served) => {
                let signed = served.value;
                self.claimed_key = signed
                    .body()
                    .get("server_key")
                    .and_then(|key| serde_json::from_value(key.clone()).ok())
                    .or_else(|| signed.signer().ok());
                self.verify_info(&signed)
            }
        };
        self.info = Some(Fact::new(value));
    }

    fn verify_info(&self, signed: &Signed<ServerInfo>) -> Result<InfoSeen, Problem> {
        let url = self.url("/rot/v1/info");
        let envelope = serde_json::to_value(signed).unwrap_or(Value::Null);
        let info = signed.verify().map_err(|e| {
            Problem::fault(
                format!("the server info does not verify: {e}"),
                json!({"request": url, "error": e.to_string(), "answer": envelope}),
            )
        })?;
        let key = info.server_key;
        if let Some(expected) = self.options.expected_key.filter(|&k| k != key) {
            return Err(Problem::fault(
                format!("the server info is signed by {key}, not by the expected {expected}"),
                json!({"request": url, "expected_key": expected, "answer": envelope}),
            ));
        }
        Ok(InfoSeen { info, key })
    }

    async fn load_tip_height(&mut self) {
        if self.tip_height.is_none() {
            let value = self
                .api
                .tip_height()
                .await
                .map(|served| served.value)
                .map_err(Problem::required);
            self.tip_height = Some(Fact::new(value));
        }
    }

    async fn load_headers(&mut self) {
        if self.headers.is_some() {
            return;
        }
        let Some(Ok(&tip)) = self.tip_height.as_ref().map(|f| f.value.as_ref()) else {
            return;
        };
        let value = self.walk_headers(tip).await;
        self.headers = Some(Fact::new(value));
    }

    async fn load_samples(&mut self) {
        if self.samples.is_some() {
            return;
        }
        let Some(Ok(headers)) = self.headers.as_ref().map(|f| f.value.as_ref()) else {
            return;
        };
        let headers = headers.clone();
        let value = self.sample_transactions(&headers).await;
        self.samples = Some(Fact::new(value));
    }

    /// The tip height, then the headers, then the samples, each settled for a dependent check.
    async fn need_samples(&mut self) -> Result<&Samples, Problem> {
        self.load_tip_height().await;
        settle(&mut self.tip_height, check::TIP)?;
        self.load_headers().await;
        settle(&mut self.headers, check::HEADERS)?;
        self.load_samples().await;
        settle(&mut self.samples, check::TRANSACTIONS)
    }

    // --- checks ---

    async fn challenge_inner(&mut self) -> Result<Passed, Problem> {
        self.load_info().await;
        let nonce = Nonce::random().map_err(|e| Problem::Unreachable {
            summary: format!("no local randomness for a nonce: {e}"),
            evidence: json!({"error": e.to_string()}),
        })?;
        let url = self.url(&format!("/rot/v1/challenge?nonce={nonce}"));
        let signed = self
            .api
            .challenge(&nonce)
            .await
            .map_err(Problem::required)?
            .value;
        let envelope = serde_json::to_value(&signed).unwrap_or(Value::Null);
        let wrong = |what: String| {
            Problem::fault(
                what,
                json!({"request": url, "nonce": nonce, "answer": envelope}),
            )
        };
        let answer = signed
            .verify()
            .map_err(|e| wrong(format!("the challenge answer does not verify: {e}")))?;
        answer
            .check(&nonce, unix_now(), self.options.max_clock_skew_secs)
            .map_err(|e| wrong(format!("the challenge answer is wrong: {e}")))?;
        let signer = signed
            .signer()
            .map_err(|e| wrong(format!("the challenge answer's key: {e}")))?;
        let expected = self.options.expected_key.or(self.claimed_key);
        if let Some(expected) = expected.filter(|&k| k != signer) {
            return Err(wrong(format!(
                "the challenge is answered by {signer}, not by the server's key {expected}"
            )));
        }
        Ok(Passed {
            summary: format!("a fresh nonce is signed by {signer}"),
            evidence: json!({"request": url, "key": signer, "nonce": nonce, "time": answer.time}),
        })
    }

    async fn chain_identity_inner(&mut self) -> Result<Passed, Problem> {
        self.load_info().await;
        let profile = self.api.profile().clone();
        let mut mismatches = Vec::new();
        let info_checked = match &self.info {
            Some(Fact {
                value: Ok(seen), ..
            }) => {
                let info = &seen.info;
                for (field, got, expected) in [
                    ("coin", json!(info.coin), json!(profile.ticker)),
                    ("network", json!(info.network), json!(profile.network)),
                    (
                        "genesis_hash",
                        json!(info.genesis_hash),
                        json!(profile.genesis_hash),
                    ),
                ] {
                    if got != expected {
                        mismatches.push(json!({"request": self.url("/rot/v1/info"),
                            "field": field, "got": got, "expected": expected}));
                    }
                }
                true
            }
            _ => false,
        };
        let genesis = self
            .api
            .block_hash(0)
            .await
            .map_err(Problem::required)?
            .value;
        if genesis != profile.genesis_hash {
            mismatches.push(json!({"request": self.url("/block-height/0"),
                "got": genesis, "expected": profile.genesis_hash}));
        }
        if !mismatches.is_empty() {
            return Err(Problem::fault(
                format!(
                    "the server is not on {} ({} mismatch(es))",
                    profile.id(),
                    mismatches.len()
                ),
                json!({"mismatches": mismatches}),
            ));
        }
        let header = self
            .api
            .header(&genesis)
            .await
            .map_err(Problem::required)?
            .value;
        self.check_pow(0, &genesis, &header)?;
        let note = if info_checked {
            ""
        } else {
            " (server info unavailable: block 0 only)"
        };
        Ok(Passed {
            summary: format!("serves {} with genesis block {genesis}{note}", profile.id()),
            evidence: json!({
                "coin": profile.ticker,
                "network": profile.network,
                "genesis_hash": genesis,
                "info_checked": info_checked,
            }),
        })
    }

    async fn tip_inner(&mut self) -> Result<Passed, Problem> {
        self.load_tip_height().await;
        let mut height = *own(&mut self.tip_height)?;
        let mut mismatch = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RETRY_PAUSE).await;
                height = self.read(self.api.tip_height()).await?;
            }
            let hash = self.read(self.api.tip_hash()).await?;
            let named = self.read(self.api.block_hash(height)).await?;
            if hash == named {
                self.tip = Some(TipSeen { height, hash });
                return Ok(Passed {
                    summary: format!("tip {height} is {hash}"),
                    evidence: json!({"height": height, "hash": hash}),
                });
            }
            // A mismatch counts only while the tip stood still: same height and same hash
            // (a reorganisation can replace the tip at the same height).
            let height_after = self.read(self.api.tip_height()).await?;
            let hash_after = self.read(self.api.tip_hash()).await?;
            if height_after == height && hash_after == hash {
                mismatch = Some((height, hash, named));
            }
        }
        match mismatch {
            Some((height, hash, named)) => Err(Problem::fault(
                format!("/blocks/tip/hash names {hash}, but /block-height/{height} names {named}"),
                json!({
                    "requests": [self.url("/blocks/tip/height"), self.url("/blocks/tip/hash"),
                                 self.url(&format!("/block-height/{height}"))],
                    "tip_height": height,
                    "tip_hash": hash,
                    "block_at_tip_height": named,
                    "expected": "the same hash",
                }),
            )),
            None => Err(Problem::Unreachable {
                summary: format!("the tip moved during each of {ATTEMPTS} attempts"),
                evidence: json!({"attempts": ATTEMPTS}),
            }),
        }
    }

    /// The value of a request to an endpoint every server serves.
    async fn read<T>(
        &self,
        request: impl Future<Output = Result<crate::client::Served<T>, Error>>,
    ) -> Result<T, Problem> {
        request
            .await
            .map(|served| served.value)
            .map_err(Problem::required)
    }

    async fn headers_inner(&mut self) -> Result<Passed, Problem> {
        self.load_tip_height().await;
        settle(&mut self.tip_height, check::TIP)?;
        self.load_headers().await;
        let pow = self.api.profile().rules.pow;
        let seen = own(&mut self.headers)?;
        let (Some(newest), Some(oldest)) = (seen.first(), seen.last()) else {
            return Err(Problem::skip("no headers", Value::Null));
        };
        let unchecked = seen.iter().filter(|h| !h.pow_checked).count();
        let note = if unchecked > 0 {
            format!(" ({unchecked} merge-mined: proof of work in the parent chain, not checked)")
        } else {
            String::new()
        };
        Ok(Passed {
            summary: format!(
                "{} headers from {} down to {} link and meet their {} targets{note}",
                seen.len(),
                newest.height,
                oldest.height,
                wire_name(&pow)
            ),
            evidence: json!({
                "tip_height": newest.height,
                "tip_hash": newest.hash,
                "lowest_height": oldest.height,
                "lowest_hash": oldest.hash,
                "count": seen.len(),
                "pow": pow,
                "merge_mined_unchecked": unchecked,
            }),
        })
    }

    async fn walk_headers(&self, tip: u32) -> Result<Vec<HeaderSeen>, Problem> {
        let count = self.options.headers.clamp(1, tip as usize + 1);
        let mut hash = self.read(self.api.block_hash(tip)).await?;
        let mut seen = Vec::with_capacity(count);
        for height in (0..=tip).rev().take(count) {
            let header = self.read(self.api.header(&hash)).await?;
            let pow_checked = self.check_pow(height, &hash, &header)?;
            seen.push(HeaderSeen {
                height,
                hash,
                header,
                pow_checked,
            });
            hash = header.prev_blockhash;
        }
        if let Some(oldest) = seen.last().filter(|_| count > 1) {
            let named = self.read(self.api.block_hash(oldest.height)).await?;
            if named != oldest.hash {
                let path = format!("/block-height/{}", oldest.height);
                return Err(Problem::fault(
                    format!(
                        "{path} names {named}, but the headers from the tip link to {}",
                        oldest.hash
                    ),
                    json!({"request": self.url(&path), "got": named, "expected": oldest.hash,
                           "tip_height": tip}),
                ));
            }
        }
        Ok(seen)
    }

    /// Checks a header's proof of work; `Ok(false)` for a merge-mined header, whose proof is
    /// in the parent chain.
    fn check_pow(
        &self,
        height: u32,
        hash: &Hash256,
        header: &BlockHeader,
    ) -> Result<bool, Problem> {
        let rules = &self.api.profile().rules;
        if rules.auxpow && header.has_auxpow_bit() {
            return Ok(false);
        }
        let evidence = |extra: Value| {
            json!({
                "request": self.url(&format!("/block/{hash}/header")),
                "height": height,
                "header": hex::encode(header.serialize()),
                "bits": format!("{:08x}", header.bits),
                "detail": extra,
            })
        };
        let target = header.target().map_err(|e| {
            Problem::fault(
                format!("block {hash} at height {height} has unusable target bits: {e}"),
                evidence(Value::Null),
            )
        })?;
        let pow_hash = header.pow_hash(rules.pow);
        if !target.is_met_by(&pow_hash) {
            return Err(Problem::fault(
                format!("block {hash} at height {height} does not meet its proof-of-work target"),
                evidence(
                    json!({"pow": rules.pow, "pow_hash": pow_hash, "target": target.to_string()}),
                ),
            ));
        }
        Ok(true)
    }

    async fn transactions_inner(&mut self) -> Result<Passed, Problem> {
        self.load_info().await;
        self.load_tip_height().await;
        settle(&mut self.tip_height, check::TIP)?;
        self.load_headers().await;
        settle(&mut self.headers, check::HEADERS)?;
        self.load_samples().await;
        let seed = self.options.seed;
        let samples = own(&mut self.samples)?;
        if let Some(problem) = &samples.proof_failure {
            return Err(problem.clone());
        }
        let proven = samples.txs.iter().filter(|s| s.proven).count();
        let proofs = if proven == samples.txs.len() {
            ", and their merkle proofs lead to their blocks' merkle roots".to_owned()
        } else {
            format!("; {proven} merkle proof(s) checked, the server offers none for the others")
        };
        let listed = if samples.blocks_listed > 0 {
            format!(
                "the txid lists of {} recent blocks lead to their merkle roots; ",
                samples.blocks_listed
            )
        } else {
            String::new()
        };
        let picks: Vec<Value> = samples
            .txs
            .iter()
            .map(|s| {
                let c = &s.candidate;
                json!({"height": c.height, "block": c.block_hash, "pos": c.pos, "txid": c.txid,
                       "merkle_proof_checked": s.proven})
            })
            .collect();
        Ok(Passed {
            summary: format!(
                "{listed}{} sampled transaction(s) hash to their txids{proofs}",
                samples.txs.len()
            ),
            evidence: json!({
                "seed": seed,
                "sampled_from": samples.source,
                "blocks_listed": samples.blocks_listed,
                "samples": picks,
            }),
        })
    }

    async fn sample_transactions(&self, headers: &[HeaderSeen]) -> Result<Samples, Problem> {
        let (source, candidates, blocks_listed) = match self.block_candidates(headers).await? {
            Some(candidates) => ("block-txids", candidates, headers.len()),
            None => ("address-history", self.history_candidates().await?, 0),
        };
        if candidates.is_empty() {
            return Err(Problem::skip(
                "no confirmed transactions to sample",
                json!({"sampled_from": source}),
            ));
        }
        let mut sampler = Sampler::new(self.options.seed, check::TRANSACTIONS);
        let picks = sampler.distinct(candidates.len(), self.options.sampled_txs.max(1));
        let merkle = self.offers(capability::MERKLE_PROOF);
        let mut txs = Vec::with_capacity(picks.len());
        let mut proof_failure = None;
        for i in picks {
            let candidate = candidates[i].clone();
            let header = match headers.iter().find(|h| h.hash == candidate.block_hash) {
                Some(seen) => seen.header,
                None => {
                    self.header_at(candidate.height, &candidate.block_hash)
                        .await?
                }
            };
            let raw = self.read(self.api.raw_tx(&candidate.txid)).await?;
            let proven = match merkle {
                Some(false) => false,
                _ if proof_failure.is_some() => false,
                offered => {
                    match self
                        .verify_proof(&candidate, &header, offered == Some(true))
                        .await
                    {
                        Ok(proven) => proven,
                        Err(problem) => {
                            proof_failure = Some(problem);
                            false
                        }
                    }
                }
            };
            txs.push(SampledTx {
                candidate,
                raw,
                proven,
            });
        }
        Ok(Samples {
            source,
            txs,
            blocks_listed,
            proof_failure,
        })
    }

    /// Every transaction of the newest blocks, each block's list checked against its
    /// header's merkle root; `None` when the server cannot list a block's transactions.
    async fn block_candidates(
        &self,
        headers: &[HeaderSeen],
    ) -> Result<Option<Vec<Candidate>>, Problem> {
        let mut candidates = Vec::new();
        for seen in headers {
            let txids = match self.api.block_txids(&seen.hash).await {
                Ok(served) => served.value,
                Err(Error::HttpStatus { status: 501, .. }) => return Ok(None),
                Err(error) => return Err(Problem::required(error)),
            };
            let computed = merkle_root(&txids);
            if computed != Some(seen.header.merkle_root) {
                return Err(Problem::fault(
                    format!(
                        "the txids of block {} (height {}) do not lead to its header's merkle root",
                        seen.hash, seen.height
                    ),
                    json!({
                        "request": self.url(&format!("/block/{}/txids", seen.hash)),
                        "txid_count": txids.len(),
                        "computed_root": computed,
                        "header_merkle_root": seen.header.merkle_root,
                    }),
                ));
            }
            candidates.extend(txids.into_iter().enumerate().map(|(pos, txid)| Candidate {
                height: seen.height,
                block_hash: seen.hash,
                pos: Some(pos),
                txid,
            }));
        }
        Ok(Some(candidates))
    }

    /// The confirmed transactions of the given addresses' histories.
    async fn history_candidates(&self) -> Result<Vec<Candidate>, Problem> {
        if self.options.addresses.is_empty() {
            return Err(Problem::skip(
                "the server cannot list a block's transactions (HTTP 501) and no addresses \
                 were given to sample from instead",
                Value::Null,
            ));
        }
        let mut candidates = Vec::new();
        let mut seen = BTreeSet::new();
        for text in &self.options.addresses {
            let address = self.parse_address(text)?;
            for tx in self.read(self.api.confirmed_history(&address)).await? {
                let status = tx.status;
                if let (true, Some(height), Some(block_hash)) =
                    (status.confirmed, status.block_height, status.block_hash)
                    && seen.insert(tx.txid)
                {
                    candidates.push(Candidate {
                        height,
                        block_hash,
                        pos: None,
                        txid: tx.txid,
                    });
                }
            }
        }
        Ok(candidates)
    }

    /// The header of a block outside the newest ones, with its proof of work checked and its
    /// height confirmed by `/block-height`.
    async fn header_at(&self, height: u32, hash: &Hash256) -> Result<BlockHeader, Problem> {
        let header = self.read(self.api.header(hash)).await?;
        self.check_pow(height, hash, &header)?;
        let named = self.read(self.api.block_hash(height)).await?;
        if named != *hash {
            let path = format!("/block-height/{height}");
            return Err(Problem::fault(
                format!(
                    "a transaction status places block {hash} at height {height}, but {path} names {named}"
                ),
                json!({"request": self.url(&path), "got": named, "expected": hash}),
            ));
        }
        Ok(header)
    }

    /// Checks the merkle proof of a candidate against its block's header; `Ok(false)` when
    /// the server does not serve proofs and did not claim to.
    async fn verify_proof(
        &self,
        candidate: &Candidate,
        header: &BlockHeader,
        claimed: bool,
    ) -> Result<bool, Problem> {
        let txid = candidate.txid;
        let proof = match self.api.merkle_proof(&txid).await {
            Ok(served) => served.value,
            Err(error) => {
                return match Problem::optional(error, claimed) {
                    Problem::Skip { .. } => Ok(false),
                    problem => Err(problem),
                };
            }
        };
        let computed = branch_root(txid, &proof.merkle, proof.pos);
        let evidence = json!({
            "request": self.url(&format!("/tx/{txid}/merkle-proof")),
            "answer": proof,
            "txid": txid,
            "block": candidate.block_hash,
            "height": candidate.height,
            "pos": candidate.pos,
            "header_merkle_root": header.merkle_root,
            "computed_root": computed,
        });
        let wrong = if proof.block_height != candidate.height {
            Some(format!(
                "names height {}, but the transaction is in block {} at height {}",
                proof.block_height, candidate.block_hash, candidate.height
            ))
        } else if candidate.pos.is_some_and(|pos| pos != proof.pos) {
            Some(format!(
                "names position {}, but the block lists the transaction at {:?}",
                proof.pos, candidate.pos
            ))
        } else if !proof.verify(txid, &header.merkle_root) {
            Some(format!(
                "leads to {computed}, not to the merkle root {} of block {}",
                header.merkle_root, candidate.block_hash
            ))
        } else {
            None
        };
        match wrong {
            Some(what) => Err(Problem::fault(
                format!("the merkle proof of {txid} {what}"),
                evidence,
            )),
            None => Ok(true),
        }
    }

    async fn spent_by_inner(&mut self) -> Result<Passed, Problem> {
        self.load_info().await;
        let offered = self.offers(capability::SPENT_BY);
        if offered == Some(false) {
            return Err(Problem::skip(
                "the server does not offer spent-by",
                json!({"capability": capability::SPENT_BY}),
            ));
        }
        let rules = self.api.profile().rules;
        let seed = self.options.seed;
        let samples = self.need_samples().await?.txs.clone();
        let mut sampler = Sampler::new(seed, check::SPENT_BY);
        let mut checked = Vec::new();
        for sample in &samples {
            let Ok(tx) = Transaction::parse(&sample.raw, &rules) else {
                continue; // parsed when sampled; cannot fail
            };
            if tx.is_coinbase() || tx.inputs().is_empty() {
                continue;
            }
            let vin = sampler.below(tx.inputs().len());
            let prevout = tx.inputs()[vin].prevout;
            let spend = match self.api.outspend(&prevout.txid, prevout.vout).await {
                Ok(served) => served.value,
                Err(error) => return Err(Problem::optional(error, offered == Some(true))),
            };
            let height = sample.candidate.height;
            let status_right = spend
                .status
                .is_none_or(|s| s.confirmed && s.block_height.is_none_or(|h| h == height));
            let right = spend.spent
                && spend.txid == Some(sample.candidate.txid)
                && spend.vin == Some(vin as u32)
                && status_right;
            let outpoint = format!("{}:{}", prevout.txid, prevout.vout);
            if !right {
                return Err(Problem::fault(
                    format!(
                        "output {outpoint} is spent by input {vin} of {}, but the server answers otherwise",
                        sample.candidate.txid
                    ),
                    json!({
                        "request": self.url(&format!("/tx/{}/outspend/{}", prevout.txid, prevout.vout)),
                        "answer": spend,
                        "expected": {"spent": true, "txid": sample.candidate.txid, "vin": vin,
                                     "block_height": height},
                        "seed": seed,
                    }),
                ));
            }
            checked
                .push(json!({"outpoint": outpoint, "spender": sample.candidate.txid, "vin": vin}));
        }
        if checked.is_empty() {
            return Err(Problem::skip(
                "no sampled transaction spends an output (only coinbases were sampled)",
                json!({"seed": seed}),
            ));
        }
        Ok(Passed {
            summary: format!(
                "{} output(s) spent by sampled transactions are reported spent by them",
                checked.len()
            ),
            evidence: json!({"seed": seed, "checked": checked}),
        })
    }

    async fn address_balance_inner(&mut self) -> Result<Passed, Problem> {
        let mut sampler = Sampler::new(self.options.seed, check::ADDRESS_BALANCE);
        let address = if self.options.addresses.is_empty() {
            let profile = self.api.profile().clone();
            let samples = self.need_samples().await?;
            let mut addresses: Vec<Address> = Vec::new();
            for sample in &samples.txs {
                let Ok(tx) = Transaction::parse(&sample.raw, &profile.rules) else {
                    continue; // parsed when sampled; cannot fail
                };
                for output in tx.outputs() {
                    if let Some(address) = Address::from_script(&profile, output.script_pubkey)
                        && !addresses.contains(&address)
                    {
                        addresses.push(address);
                    }
                }
            }
            if addresses.is_empty() {
                return Err(Problem::skip(
                    "no sampled output pays to an address",
                    json!({"seed": self.options.seed}),
                ));
            }
            addresses.swap_remove(sampler.below(addresses.len()))
        } else {
            let pick = sampler.below(self.options.addresses.len());
            self.parse_address(&self.options.addresses[pick])?
        };
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            let before = self.read(self.api.address_stats(&address)).await?;
            let utxos = self.read(self.api.utxos(&address)).await?;
            let after = self.read(self.api.address_stats(&address)).await?;
            if before == after {
                return self.judge_balance(&address, &before, &utxos);
            }
        }
        Err(Problem::Unreachable {
            summary: format!("the totals of {address} changed during each of {ATTEMPTS} attempts"),
            evidence: json!({"address": address}),
        })
    }

    fn judge_balance(
        &self,
        address: &Address,
        stats: &AddressStats,
        utxos: &[Utxo],
    ) -> Result<Passed, Problem> {
        let sum = utxos
            .iter()
            .try_fold(0u64, |sum, utxo| sum.checked_add(utxo.value));
        let distinct: BTreeSet<(Hash256, u32)> = utxos.iter().map(|u| (u.txid, u.vout)).collect();
        let evidence = json!({
            "address": address,
            "requests": [self.url(&format!("/address/{address}")),
                         self.url(&format!("/address/{address}/utxo"))],
            "stats": stats,
            "utxo_count": utxos.len(),
            "utxo_sum": sum,
            "expected_count": stats.unspent_count(),
            "expected_sum": stats.balance(),
            "seed": self.options.seed,
        });
        if distinct.len() != utxos.len() {
            return Err(Problem::fault(
                format!(
                    "{address}: {} unspent output(s) listed more than once",
                    utxos.len() - distinct.len()
                ),
                evidence,
            ));
        }
        let (Some(expected_sum), Some(expected_count)) = (stats.balance(), stats.unspent_count())
        else {
            return Err(Problem::fault(
                format!("{address}: the totals spend more than they fund"),
                evidence,
            ));
        };
        if sum != Some(expected_sum) || utxos.len() as u64 != expected_count {
            return Err(Problem::fault(
                format!(
                    "{address}: the unspent outputs add up to {} in {} output(s), but funded \
                     minus spent is {expected_sum} in {expected_count}",
                    sum.map_or_else(|| "more than 2^64".to_owned(), |s| s.to_string()),
                    utxos.len()
                ),
                evidence,
            ));
        }
        Ok(Passed {
            summary: format!(
                "{address}: {expected_count} unspent output(s) worth {expected_sum} match funded minus spent"
            ),
            evidence,
        })
    }

    async fn error_answers_inner(&mut self) -> Result<Passed, Problem> {
        let zeros = "0".repeat(64);
        let mut cases: Vec<(String, ErrorCode)> = vec![
            ("/tx/not-a-txid".to_owned(), ErrorCode::BadRequest),
            (format!("/tx/{zeros}"), ErrorCode::NotFound),
            (format!("/block/{zeros}/header"), ErrorCode::NotFound),
            (
                "/block-height/not-a-height".to_owned(),
                ErrorCode::BadRequest,
            ),
            (format!("/block-height/{}", u32::MAX), ErrorCode::NotFound),
            ("/address/not-an-address".to_owned(), ErrorCode::BadRequest),
            (
                "/scripthash/not-a-script-hash/utxo".to_owned(),
                ErrorCode::BadRequest,
            ),
            ("/rot/v1/challenge".to_owned(), ErrorCode::BadRequest),
            (
                "/rot/v1/challenge?nonce=not-a-nonce".to_owned(),
                ErrorCode::BadRequest,
            ),
        ];
        if let Some(foreign) = self.foreign_address() {
            cases.push((format!("/address/{foreign}"), ErrorCode::BadRequest));
        }
        let mut wrong = Vec::new();
        let mut checked = Vec::new();
        for (path, code) in &cases {
            let answer = self.api.fetch(path).await.map_err(Problem::required)?;
            if let Err(error @ Error::Unreachable { .. }) = answer.clone().success() {
                return Err(Problem::required(error));
            }
            let body = answer.error_body();
            let right = answer.status == code.http_status()
                && body.as_ref().is_some_and(|b| {
                    b.error.code == code.as_str() && !b.error.message.trim().is_empty()
                });
            if right {
                checked.push(json!({"request": answer.url, "status": answer.status}));
            } else {
                wrong.push(json!({
                    "request": answer.url,
                    "expected": {"status": code.http_status(), "code": code.as_str()},
                    "got": {"status": answer.status, "body": answer.excerpt()},
                }));
            }
        }
        if !wrong.is_empty() {
            return Err(Problem::fault(
                format!(
                    "{} of {} malformed or unknown requests did not get the specified error answer",
                    wrong.len(),
                    cases.len()
                ),
                json!({"wrong": wrong}),
            ));
        }
        Ok(Passed {
            summary: format!(
                "{} malformed or unknown requests got the specified 4xx and error body",
                checked.len()
            ),
            evidence: json!({"checked": checked}),
        })
    }

    /// A valid address of another built-in coin, whose prefix the checked coin does not use.
    fn foreign_address(&self) -> Option<Address> {
        let ours = self.api.profile();
        let p2pkh_script = [&[0x76, 0xa9, 0x14][..], &[0x11; 20][..], &[0x88, 0xac][..]].concat();
        Coins::builtin()
            .iter()
            .filter(|other| {
                other.p2pkh_prefix != ours.p2pkh_prefix && !ours.is_p2sh_prefix(other.p2pkh_prefix)
            })
            .find_map(|other| Address::from_script(other, &p2pkh_script))
    }

    fn parse_address(&self, text: &str) -> Result<Address, Problem> {
        Address::parse(self.api.profile(), text).map_err(|e| {
            Problem::skip(
                format!("cannot use address {text:?}: {e}"),
                json!({"address": text, "error": e.to_string()}),
            )
        })
    }
}

/// The JSON spelling of an enum value (`native`, `scrypt`), for summaries.
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
