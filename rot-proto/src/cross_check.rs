//! Cross-checking what an address holds over several sources (feature `client`), so that a
//! wallet does not have to believe one server. Every source is asked for the address's
//! totals and unspent outputs; their answers are compared with each other and each with
//! itself (the outputs must add up to funded minus spent). With two or more sources, each
//! confirmed output is then proven: its funding transaction, from the source that listed it,
//! must hash to its id and pay that value to the address, and its merkle proof must lead to
//! the merkle root of a header obtained from a *different* source, with valid proof of work.
//! A server inventing or hiding coins then has to collude with the others.
//!
//! Sources are [`Esplora`] endpoints: servers' base URLs asked directly, or a proxy's relay
//! (asked several times, each answer attributed by `X-Rot-Server`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::client::Esplora;
use crate::esplora::{AddressStats, Utxo};
use crate::{Address, Error, Hash256, PublicKey, Transaction};

/// How many outputs are proven at once.
const PROOFS_IN_FLIGHT: usize = 8;

/// What one source answered about the address.
#[derive(Debug, Clone, Serialize)]
pub struct SourceAnswer {
    /// The source's base URL.
    pub source: String,
    /// The server that answered the outputs query, when a proxy named it.
    pub server: Option<PublicKey>,
    /// The source's tip height when asked.
    pub tip_height: Option<u32>,
    /// The address's totals.
    pub stats: Option<AddressStats>,
    /// The address's unspent outputs.
    pub utxos: Option<Vec<Utxo>>,
    /// Why the source gave no (complete) answer.
    pub error: Option<String>,
}

impl SourceAnswer {
    /// The source as people read it: its URL, and the server behind it when known.
    pub fn label(&self) -> String {
        label(&self.source, self.server)
    }
}

/// A source's URL, with the server a proxy named for the answer.
fn label(source: &str, server: Option<PublicKey>) -> String {
    match server {
        Some(server) => format!("{source} (server {server})"),
        None => source.to_owned(),
    }
}

/// How an unspent output was proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ProofStatus {
    /// Its funding transaction hashes to its id and pays its value to the address, and its
    /// merkle proof leads to the merkle root of a header, with valid proof of work, from
    /// another source.
    Verified {
        /// The source of the transaction and the proof.
        proof_from: String,
        /// The source of the header.
        header_from: String,
        /// Height of the block holding the funding transaction.
        block_height: u32,
        /// Its hash.
        block_hash: Hash256,
    },
    /// In the mempool: no block to prove it in yet.
    Unconfirmed,
    /// Not proven: only one source was asked.
    NotChecked,
    /// A source could not be asked; nothing is known either way.
    Unverified {
        /// Why.
        reason: String,
    },
    /// A source answered wrongly.
    Failed {
        /// What was wrong and which source said it.
        reason: String,
    },
}

/// One unspent output some source listed.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedUtxo {
    /// The output as first listed.
    pub utxo: Utxo,
    /// The sources (labels) that listed it.
    pub listed_by: Vec<String>,
    /// Whether it was proven.
    pub proof: ProofStatus,
}

/// Sources that answered the same question differently, or one source contradicting itself.
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    /// What the question was.
    pub about: String,
    /// Each source's answer (label, value).
    pub answers: Vec<(String, Value)>,
}

/// The outcome of a cross-check of one address.
#[derive(Debug, Clone, Serialize)]
pub struct AddressReport {
    /// The address.
    pub address: String,
    /// What each source answered.
    pub sources: Vec<SourceAnswer>,
    /// Every unspent output any source listed, in outpoint order.
    pub utxos: Vec<CheckedUtxo>,
    /// Every disagreement found.
    pub disagreements: Vec<Disagreement>,
    /// How many different servers answered (by `X-Rot-Server`, else by URL).
    pub distinct_servers: usize,
}

impl AddressReport {
    /// The totals of the first source that gave them.
    pub fn stats(&self) -> Option<&AddressStats> {
        self.sources.iter().find_map(|s| s.stats.as_ref())
    }

    /// Whether a source answered wrongly: a disagreement or a failed proof.
    pub fn has_wrong_answers(&self) -> bool {
        !self.disagreements.is_empty()
            || self
                .utxos
                .iter()
                .any(|u| matches!(u.proof, ProofStatus::Failed { .. }))
    }

    /// Whether no source answered.
    pub fn unanswered(&self) -> bool {
        self.sources.iter().all(|s| s.error.is_some())
    }
}

/// Cross-checks addresses over a set of sources.
#[derive(Debug, Clone)]
pub struct CrossCheck {
    sources: Vec<Esplora>,
}

impl CrossCheck {
    /// Asks every one of `sources` (at least one).
    pub fn new(sources: Vec<Esplora>) -> Result<Self, Error> {
        if sources.is_empty() {
            return Err(Error::NotEnoughSources {
                wanted: 1,
                available: 0,
            });
        }
        Ok(Self { sources })
    }

    /// Asks every source about `address`, compares the answers and, with two or more
    /// sources, proves every confirmed output against another source's headers.
    pub async fn address(&self, address: &Address) -> AddressReport {
        let sources = self.ask_all(address).await;
        let mut disagreements = Vec::new();
        for answer in &sources {
            disagreements.extend(self_contradiction(address, answer));
        }
        disagreements.extend(compare(&format!("totals of {address}"), &sources, |s| {
            s.stats.map(|stats| json!(stats))
        }));
        disagreements.extend(compare(
            &format!("unspent outputs of {address}"),
            &sources,
            |s| s.utxos.as_ref().map(|utxos| json!(outpoints(utxos))),
        ));
        let listed = union(&sources);
        let utxos = self.prove_all(address, &sources, listed).await;
        let distinct_servers = sources
            .iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.server.map_or_else(|| s.source.clone(), |k| k.to_string()))
            .collect::<BTreeSet<_>>()
            .len();
        AddressReport {
            address: address.to_string(),
            sources,
            utxos,
            disagreements,
            distinct_servers,
        }
    }

    async fn ask_all(&self, address: &Address) -> Vec<SourceAnswer> {
        let mut pending = JoinSet::new();
        for (index, source) in self.sources.iter().enumerate() {
            let (source, address) = (source.clone(), address.clone());
            pending.spawn(async move { (index, ask(&source, &address).await) });
        }
        let mut answers: Vec<Option<SourceAnswer>> = vec![None; self.sources.len()];
        while let Some(joined) = pending.join_next().await {
            if let Ok((index, answer)) = joined {
                answers[index] = Some(answer);
            }
        }
        answers
            .into_iter()
            .zip(&self.sources)
            .map(|(answer, source)| {
                answer.unwrap_or_else(|| SourceAnswer {
                    source: source.base_url().to_owned(),
                    server: None,
                    tip_height: None,
                    stats: None,
                    utxos: None,
                    error: Some("the request task failed".to_owned()),
                })
            })
            .collect()
    }

    /// Proves every listed output, a few at a time.
    async fn prove_all(
        &self,
        address: &Address,
        sources: &[SourceAnswer],
        listed: Vec<(Utxo, Vec<usize>)>,
    ) -> Vec<CheckedUtxo> {
        let answered: Vec<usize> = (0..sources.len())
            .filter(|&i| sources[i].error.is_none())
            .collect();
        let mut checked: Vec<CheckedUtxo> = listed
            .iter()
            .map(|(utxo, by)| CheckedUtxo {
                utxo: *utxo,
                listed_by: by.iter().map(|&i| sources[i].label()).collect(),
                proof: ProofStatus::NotChecked,
            })
            .collect();
        for chunk in (0..listed.len())
            .collect::<Vec<_>>()
            .chunks(PROOFS_IN_FLIGHT)
        {
            let mut pending = JoinSet::new();
            for &i in chunk {
                let (utxo, by) = &listed[i];
                let proof_from = by[0];
                // The next source that answered, after the one that listed the output.
                let header_from = answered
                    .iter()
                    .copied()
                    .find(|&j| j > proof_from)
                    .or_else(|| answered.iter().copied().find(|&j| j != proof_from));
                let proof = match header_from {
                    _ if !utxo.status.confirmed => {
                        checked[i].proof = ProofStatus::Unconfirmed;
                        continue;
                    }
                    None => continue,
                    Some(header_from) => Prover {
                        address: address.clone(),
                        utxo: *utxo,
                        proof_source: self.sources[proof_from].clone(),
                        header_source: self.sources[header_from].clone(),
                    },
                };
                pending.spawn(async move { (i, proof.prove().await) });
            }
            while let Some(joined) = pending.join_next().await {
                if let Ok((i, status)) = joined {
                    checked[i].proof = status;
                }
            }
        }
        checked
    }
}

/// Asks one source for its tip, the address's totals and its unspent outputs.
async fn ask(source: &Esplora, address: &Address) -> SourceAnswer {
    let mut answer = SourceAnswer {
        source: source.base_url().to_owned(),
        server: None,
        tip_height: None,
        stats: None,
        utxos: None,
        error: None,
    };
    let result: Result<(), Error> = async {
        answer.tip_height = Some(source.tip_height().await?.value);
        answer.stats = Some(source.address_stats(address).await?.value);
        let utxos = source.utxos(address).await?;
        answer.server = utxos.server;
        answer.utxos = Some(utxos.value);
        Ok(())
    }
    .await;
    answer.error = result.err().map(|e| e.to_string());
    answer
}

/// A source whose outputs do not add up to its own totals.
fn self_contradiction(address: &Address, answer: &SourceAnswer) -> Option<Disagreement> {
    let (stats, utxos) = (answer.stats?, answer.utxos.as_ref()?);
    let sum = utxos
        .iter()
        .try_fold(0u64, |sum, utxo| sum.checked_add(utxo.value));
    let consistent = sum.is_some()
        && sum == stats.balance()
        && Some(utxos.len() as u64) == stats.unspent_count();
    (!consistent).then(|| Disagreement {
        about: format!("unspent outputs of {address} against funded minus spent"),
        answers: vec![(
            answer.label(),
            json!({
                "utxo_count": utxos.len(),
                "utxo_sum": sum,
                "funded_minus_spent_count": stats.unspent_count(),
                "funded_minus_spent_sum": stats.balance(),
            }),
        )],
    })
}

/// The disagreement among sources' answers as `view` shows them, if they differ.
fn compare(
    about: &str,
    sources: &[SourceAnswer],
    view: impl Fn(&SourceAnswer) -> Option<Value>,
) -> Option<Disagreement> {
    let answers: Vec<(String, Value)> = sources
        .iter()
        .filter_map(|s| {
            view(s).map(|value| {
                (
                    s.label(),
                    json!({"answer": value, "tip_height": s.tip_height}),
                )
            })
        })
        .collect();
    let distinct: BTreeSet<String> = answers
        .iter()
        .map(|(_, v)| v["answer"].to_string())
        .collect();
    (distinct.len() > 1).then(|| Disagreement {
        about: about.to_owned(),
        answers,
    })
}

/// Outputs as compared between sources: outpoint, value, confirmed or not.
fn outpoints(utxos: &[Utxo]) -> BTreeSet<(String, u64, bool)> {
    utxos
        .iter()
        .map(|u| {
            (
                format!("{}:{}", u.txid, u.vout),
                u.value,
                u.status.confirmed,
            )
        })
        .collect()
}

/// Every output any source listed, once, with the indices of the sources that listed it.
fn union(sources: &[SourceAnswer]) -> Vec<(Utxo, Vec<usize>)> {
    let mut listed: BTreeMap<(Hash256, u32), (Utxo, Vec<usize>)> = BTreeMap::new();
    for (index, source) in sources.iter().enumerate() {
        for utxo in source.utxos.iter().flatten() {
            listed
                .entry((utxo.txid, utxo.vout))
                .or_insert_with(|| (*utxo, Vec::new()))
                .1
                .push(index);
        }
    }
    listed.into_values().collect()
}

/// Proves one confirmed output: its transaction and proof from one source, the header from
/// another. Answers are labelled with the server that gave them, which behind a proxy's
/// relay need not be the one that listed the output.
struct Prover {
    address: Address,
    utxo: Utxo,
    proof_source: Esplora,
    header_source: Esplora,
}

impl Prover {
    async fn prove(self) -> ProofStatus {
        match self.try_prove().await {
            Ok(status) => status,
            Err(Error::Unreachable { url, reason }) => ProofStatus::Unverified {
                reason: format!("{url} unreachable: {reason}"),
            },
            Err(error) => ProofStatus::Failed {
                reason: error.to_string(),
            },
        }
    }

    async fn try_prove(&self) -> Result<ProofStatus, Error> {
        let Utxo { txid, vout, .. } = self.utxo;
        let profile = self.proof_source.profile();
        let failed = |reason: String| Ok(ProofStatus::Failed { reason });
        let raw = self.proof_source.raw_tx(&txid).await?;
        let raw_label = label(self.proof_source.base_url(), raw.server);
        let tx = Transaction::parse(&raw.value, &profile.rules)?;
        let script = self.address.script_pubkey();
        let pays = tx
            .outputs()
            .get(vout as usize)
            .is_some_and(|out| out.value == self.utxo.value && out.script_pubkey == script);
        if !pays {
            return failed(format!(
                "{txid}:{vout} is listed worth {} to {}, but that output of the transaction \
                 {raw_label} serves does not pay that",
                self.utxo.value, self.address
            ));
        }
        let proof = self.proof_source.merkle_proof(&txid).await?;
        let proof_label = label(self.proof_source.base_url(), proof.server);
        let proof = proof.value;
        if self
            .utxo
            .status
            .block_height
            .is_some_and(|h| h != proof.block_height)
        {
            return failed(format!(
                "{txid} is listed at height {:?}, but {proof_label} proves it at {}",
                self.utxo.status.block_height, proof.block_height
            ));
        }
        let block_hash = self
            .header_source
            .block_hash(proof.block_height)
            .await?
            .value;
        let header = self.header_source.header(&block_hash).await?;
        let header_label = label(self.header_source.base_url(), header.server);
        let header = header.value;
        let merge_mined = profile.rules.auxpow && header.has_auxpow_bit();
        if !merge_mined && !header.meets_target(profile.rules.pow)? {
            return failed(format!(
                "{header_label} serves a header for block {block_hash} that does not meet its \
                 proof-of-work target"
            ));
        }
        if !proof.verify(txid, &header.merkle_root) {
            return failed(format!(
                "the merkle proof of {txid} from {proof_label} does not lead to the merkle root \
                 of block {block_hash} (height {}) from {header_label}",
                proof.block_height
            ));
        }
        Ok(ProofStatus::Verified {
            proof_from: proof_label,
            header_from: header_label,
            block_height: proof.block_height,
            block_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esplora::{ScriptStats, TxStatus};

    fn utxo(n: u8, value: u64) -> Utxo {
        Utxo {
            txid: Hash256([n; 32]),
            vout: 0,
            value,
            status: TxStatus {
                confirmed: true,
                block_height: Some(5),
                ..TxStatus::default()
            },
        }
    }

    fn address() -> Address {
        let profile = crate::Coins::builtin()
            .get("LTC", crate::Network::Main)
            .unwrap()
            .clone();
        let script = [&[0x76, 0xa9, 0x14][..], &[7; 20], &[0x88, 0xac]].concat();
        Address::from_script(&profile, &script).unwrap()
    }

    fn answer(source: &str, utxos: Vec<Utxo>, funded: u64) -> SourceAnswer {
        SourceAnswer {
            source: source.to_owned(),
            server: None,
            tip_height: Some(10),
            stats: Some(AddressStats {
                chain_stats: ScriptStats {
                    funded_txo_count: 2,
                    funded_txo_sum: funded,
                    spent_txo_count: 0,
                    spent_txo_sum: 0,
                    tx_count: 2,
                },
                ..AddressStats::default()
            }),
            utxos: Some(utxos),
            error: None,
        }
    }

    #[test]
    fn agreeing_sources_raise_nothing() {
        let a = answer("http://a", vec![utxo(1, 5), utxo(2, 7)], 12);
        let b = answer("http://b", vec![utxo(2, 7), utxo(1, 5)], 12);
        let sources = [a, b];
        assert!(
            compare("x", &sources, |s| s
                .utxos
                .as_ref()
                .map(|u| json!(outpoints(u))))
            .is_none()
        );
        assert!(compare("x", &sources, |s| s.stats.map(|st| json!(st))).is_none());
        let address = address();
        assert!(self_contradiction(&address, &sources[0]).is_none());
        let listed = union(&sources);
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|(_, by)| by == &vec![0, 1]));
    }

    #[test]
    fn a_lie_shows_as_a_disagreement() {
        let honest = answer("http://a", vec![utxo(1, 5), utxo(2, 7)], 12);
        let hider = answer("http://b", vec![utxo(1, 5)], 12);
        let sources = [honest, hider];
        let d = compare("outputs", &sources, |s| {
            s.utxos.as_ref().map(|u| json!(outpoints(u)))
        })
        .unwrap();
        assert_eq!(d.answers.len(), 2);
        let address = address();
        // The hider's outputs no longer add up to its own totals.
        assert!(self_contradiction(&address, &sources[1]).is_some());
        // An output only one source lists is still proven (against the other's headers).
        let listed = union(&sources);
        assert_eq!(listed[1].1, vec![0]);
    }
}
