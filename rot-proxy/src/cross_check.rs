//! Cross-checks between a coin's servers: several healthy servers on the agreed tip are asked
//! the same sampled question, and their answers compared. The questions are about settled
//! chain data only, so honest servers on the same tip answer alike whatever their mempools:
//!
//! - the hash of a block at a sampled height (`/block-height/:h`);
//! - where a transaction of that block is (`/tx/:txid/status`);
//! - the confirmed totals of an address it pays (`/address/:a`, `chain_stats`);
//! - that address's confirmed history (`/address/:a/txs/chain`: txids and blocks).
//!
//! A server that disagrees with a strict majority of at least two, and still disagrees when
//! asked again while the tip stands and the majority still answers the same, has answered
//! wrongly: it is warned, with every server's answer as evidence. A disagreement without a
//! majority is recorded against each server involved, without consequence. A server that
//! does not answer (refused, timed out, busy) is left out of the comparison.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use rot_proto::client::Esplora;
use rot_proto::message::Consequence;
use rot_proto::sample::Sampler;
use rot_proto::transport::{Answer, Transport};
use rot_proto::{Address, Hash256, Transaction};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::pool::{Agreement, Candidate, Tip};
use crate::probe::Prober;

/// The incident check name of a lost cross-check.
pub const CHECK: &str = "cross-check";
/// How far below the agreed tip questions are sampled.
const DEPTH: u64 = 100;
/// `/address/:a/txs/chain` answers at most this many transactions (Esplora's page).
const HISTORY_PAGE: usize = 25;

/// One question asked of several servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// The hash of the block at a height.
    BlockHash(u64),
    /// A transaction's status.
    TxStatus(Hash256),
    /// An address's confirmed totals.
    AddressStats(String),
    /// An address's confirmed history.
    AddressHistory(String),
}

impl Question {
    /// The Esplora path asked.
    pub fn path(&self) -> String {
        match self {
            Self::BlockHash(height) => format!("/block-height/{height}"),
            Self::TxStatus(txid) => format!("/tx/{txid}/status"),
            Self::AddressStats(address) => format!("/address/{address}"),
            Self::AddressHistory(address) => format!("/address/{address}/txs/chain"),
        }
    }

    /// The part of an answer honest servers on one tip agree on; `None` when the server gave
    /// no answer (unreachable, busy, 5xx).
    pub fn comparable(&self, answer: &Answer) -> Option<Value> {
        if matches!(answer.status, 429 | 500 | 502 | 503 | 504) {
            return None;
        }
        if !(200..300).contains(&answer.status) {
            return Some(json!({"status": answer.status}));
        }
        let malformed = || json!({"malformed": answer.excerpt()});
        let value = match self {
            Self::BlockHash(_) => answer
                .text()
                .ok()
                .and_then(|text| text.parse::<Hash256>().ok())
                .map(|hash| json!(hash)),
            Self::TxStatus(_) => answer.json::<Value>().ok().map(|status| {
                json!({
                    "confirmed": status["confirmed"],
                    "block_height": status["block_height"],
                    "block_hash": status["block_hash"],
                })
            }),
            Self::AddressStats(_) => answer
                .json::<Value>()
                .ok()
                .map(|stats| stats["chain_stats"].clone())
                .filter(|stats| stats.is_object()),
            Self::AddressHistory(_) => answer
                .json::<Vec<Value>>()
                .ok()
                .map(|txs| json!(settled_history(&txs))),
        };
        Some(value.unwrap_or_else(malformed))
    }
}

/// A confirmed history as compared: `(height, block, txid)` sorted, without the lowest
/// block's entries when the page is full (where a page cuts a block depends on the order
/// within it, which implementations may choose differently).
fn settled_history(txs: &[Value]) -> Vec<(u64, String, String)> {
    let mut entries: Vec<(u64, String, String)> = txs
        .iter()
        .map(|tx| {
            (
                tx["status"]["block_height"].as_u64().unwrap_or(0),
                tx["status"]["block_hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                tx["txid"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    entries.sort_unstable();
    if txs.len() >= HISTORY_PAGE
        && let Some(lowest) = entries.first().map(|e| e.0)
    {
        entries.retain(|e| e.0 != lowest);
    }
    entries
}

/// One cross-check round of `prober`'s coin.
pub(crate) async fn round(prober: &Prober) {
    let view = prober.pool.view();
    let Agreement::Agreed { tip } = *view.agreement() else {
        return;
    };
    let servers = view.on_tip();
    if servers.len() < 2 {
        return;
    }
    let seed = RandomState::new().hash_one(tip);
    let mut sampler = Sampler::new(seed, CHECK);
    let asked: Vec<Candidate> = sampler
        .distinct(servers.len(), prober.settings.cross_check_servers.max(2))
        .into_iter()
        .map(|i| servers[i].clone())
        .collect();
    let Some(question) = pick_question(prober, &asked[0], tip, &mut sampler).await else {
        return;
    };
    let answers = ask_all(prober, &asked, &question).await;
    judge(prober, tip, seed, &question, &asked, answers).await;
}

/// A question sampled from what `source` says about a block below the tip.
async fn pick_question(
    prober: &Prober,
    source: &Candidate,
    tip: Tip,
    sampler: &mut Sampler,
) -> Option<Question> {
    let height = tip.height - sampler.below(tip.height.min(DEPTH) as usize + 1) as u64;
    let kind = sampler.below(4);
    if kind == 0 {
        return Some(Question::BlockHash(height));
    }
    let api = Esplora::new(prober.checks.clone(), &source.base, prober.profile.clone()).ok()?;
    let block = api
        .block_hash(u32::try_from(height).ok()?)
        .await
        .ok()?
        .value;
    let Ok(txids) = api.block_txids(&block).await.map(|served| served.value) else {
        // A server that cannot list a block's transactions: ask about the block itself.
        return Some(Question::BlockHash(height));
    };
    let txid = match txids.len() {
        0 => return Some(Question::BlockHash(height)),
        1 => txids[0],
        // Not the coinbase when there is another: its outputs pay more varied addresses.
        n => txids[1 + sampler.below(n - 1)],
    };
    if kind == 1 {
        return Some(Question::TxStatus(txid));
    }
    let raw = api.raw_tx(&txid).await.ok()?.value;
    let tx = Transaction::parse(&raw, &prober.profile.rules).ok()?;
    let addresses: BTreeSet<String> = tx
        .outputs()
        .iter()
        .filter_map(|out| Address::from_script(&prober.profile, out.script_pubkey))
        .map(|address| address.to_string())
        .collect();
    let addresses: Vec<String> = addresses.into_iter().collect();
    if addresses.is_empty() {
        return Some(Question::TxStatus(txid));
    }
    let address = addresses[sampler.below(addresses.len())].clone();
    Some(if kind == 2 {
        Question::AddressStats(address)
    } else {
        Question::AddressHistory(address)
    })
}

/// What the server at `base` answers to `question`, comparable; `None` without an answer.
async fn ask(checks: Transport, base: Arc<str>, question: Question) -> Option<Value> {
    let answer = checks
        .get(&format!("{base}{}", question.path()))
        .await
        .ok()?;
    question.comparable(&answer)
}

async fn ask_all(
    prober: &Prober,
    servers: &[Candidate],
    question: &Question,
) -> Vec<Option<Value>> {
    let mut pending = JoinSet::new();
    for (i, server) in servers.iter().enumerate() {
        let asking = ask(prober.checks.clone(), server.base.clone(), question.clone());
        pending.spawn(async move { (i, asking.await) });
    }
    let mut answers = vec![None; servers.len()];
    while let Some(joined) = pending.join_next().await {
        if let Ok((i, answer)) = joined {
            answers[i] = answer;
        }
    }
    answers
}

/// Compares the answers; warns a server that stays alone against a majority.
async fn judge(
    prober: &Prober,
    tip: Tip,
    seed: u64,
    question: &Question,
    servers: &[Candidate],
    answers: Vec<Option<Value>>,
) {
    let answered: Vec<(usize, Value)> = answers
        .into_iter()
        .enumerate()
        .filter_map(|(i, a)| a.map(|a| (i, a)))
        .collect();
    let mut groups: Vec<(Value, Vec<usize>)> = Vec::new();
    for (i, value) in &answered {
        match groups.iter_mut().find(|(v, _)| v == value) {
            Some((_, members)) => members.push(*i),
            None => groups.push((value.clone(), vec![*i])),
        }
    }
    if groups.len() < 2 {
        return;
    }
    groups.sort_by_key(|(_, members)| std::cmp::Reverse(members.len()));
    let (majority, members) = &groups[0];
    let strict = members.len() >= 2 && members.len() * 2 > answered.len();
    // Asked again while the tip stands: a server that only saw a block late agrees now.
    let tip_stands =
        || matches!(prober.pool.view().agreement(), Agreement::Agreed { tip: now } if *now == tip);
    if !tip_stands() {
        return;
    }
    if strict
        && ask(
            prober.checks.clone(),
            servers[members[0]].base.clone(),
            question.clone(),
        )
        .await
        .as_ref()
            != Some(majority)
    {
        return;
    }
    let mut still = Vec::new();
    for (value, group) in &groups[1..] {
        for &i in group {
            let again = ask(
                prober.checks.clone(),
                servers[i].base.clone(),
                question.clone(),
            )
            .await;
            if again.as_ref().is_some_and(|a| a != majority) {
                still.push((i, value.clone(), again));
            }
        }
    }
    if still.is_empty() || !tip_stands() {
        return;
    }
    let evidence_answers: Vec<Value> = answered
        .iter()
        .map(|(i, value)| json!({"server": servers[*i].upstream.key, "answer": value}))
        .collect();
    let coin = prober.pool.coin();
    let blamed: Vec<usize> = if strict {
        still.iter().map(|(i, _, _)| *i).collect()
    } else {
        answered.iter().map(|(i, _)| *i).collect()
    };
    for i in blamed {
        let key = servers[i].upstream.key;
        let own = still.iter().find(|(j, _, _)| *j == i);
        let evidence = json!({
            "question": question.path(),
            "tip": tip,
            "seed": seed,
            "answers": evidence_answers,
            "majority": strict.then_some(majority),
            "majority_servers": members.len(),
            "answered": answered.len(),
            "asked_again": own.map(|(_, _, again)| again),
        });
        let consequence = if strict {
            let reason = format!(
                "{CHECK}: {} answered differently from {} of {} servers",
                question.path(),
                members.len(),
                answered.len()
            );
            prober.warn(&key, &reason)
        } else {
            Consequence::None
        };
        if let Err(e) = prober
            .incidents
            .record(coin, key, CHECK, evidence, consequence)
        {
            tracing::warn!(error = %e, "recording an incident failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            url: "http://127.0.0.1:1/x".into(),
            status,
            server: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_are_compared_on_their_settled_part() {
        let hash = "ab".repeat(32);
        let q = Question::BlockHash(5);
        assert_eq!(
            q.comparable(&answer(200, &format!("{hash}\n"))),
            Some(json!(hash))
        );
        assert_eq!(q.comparable(&answer(503, "busy")), None);
        assert_eq!(
            q.comparable(&answer(404, "{}")),
            Some(json!({"status": 404}))
        );
        assert!(q.comparable(&answer(200, "garbage")).unwrap()["malformed"].is_string());

        let stats = Question::AddressStats("x".into());
        let a = r#"{"chain_stats":{"funded_txo_sum":5},"mempool_stats":{"funded_txo_sum":1}}"#;
        let b = r#"{"chain_stats":{"funded_txo_sum":5},"mempool_stats":{"funded_txo_sum":9}}"#;
        assert_eq!(
            stats.comparable(&answer(200, a)),
            stats.comparable(&answer(200, b)),
            "mempool totals are not compared"
        );
    }

    #[test]
    fn histories_compare_regardless_of_order_and_page_cut() {
        let tx = |txid: &str, height: u64| json!({"txid": txid, "status": {"confirmed": true, "block_height": height, "block_hash": format!("b{height}")}});
        let a = vec![tx("t1", 10), tx("t2", 10), tx("t3", 9)];
        let b = vec![tx("t3", 9), tx("t2", 10), tx("t1", 10)];
        assert_eq!(settled_history(&a), settled_history(&b));
        let mut full: Vec<Value> = (0..HISTORY_PAGE)
            .map(|i| tx(&format!("x{i}"), 20))
            .collect();
        full.push(tx("cut", 3));
        assert!(settled_history(&full).iter().all(|e| e.0 == 20));
    }
}
