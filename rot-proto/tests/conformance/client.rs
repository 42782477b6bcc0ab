//! The wallet client: cross-checks over servers asked directly and over a proxy's relay,
//! with a liar among the sources.

use std::collections::BTreeSet;

use rot_harness::{ChainView, Litecoind};
use rot_proto::client::{Esplora, Proxy};
use rot_proto::cross_check::{AddressReport, CrossCheck, ProofStatus};
use rot_proto::transport::Transport;
use rot_proto::{Address, Hash256, Identity, PublicKey};
use serde_json::json;

use crate::chain::{SYNC, profile, synced_server, varied_chain};
use crate::fakes::{Lie, liar, proxy};

fn esplora(url: &str) -> Esplora {
    Esplora::new(Transport::default(), url, profile()).unwrap()
}

fn key_of(server: &rot_harness::RotServer) -> PublicKey {
    Identity::load(&server.data_dir.join("identity.key"))
        .unwrap()
        .public_key()
}

/// The unspent outputs of `address` as the node reports its chain and mempool: (txid, vout,
/// value, confirmed).
async fn node_utxos(node: &Litecoind, address: &Address) -> BTreeSet<(Hash256, u32, u64, bool)> {
    let view = ChainView::load(node).await.unwrap();
    let script = hex::encode(address.script_pubkey());
    let mut utxos = BTreeSet::new();
    for tx in &view.txs {
        for (vout, output) in tx.outputs.iter().enumerate() {
            let vout = vout as u32;
            if let Some((s, value)) = output
                && *s == script
                && view.spender(&tx.txid, vout).is_none()
            {
                utxos.insert((tx.txid, vout, *value, tx.block.is_some()));
            }
        }
    }
    utxos
}

fn reported_utxos(report: &AddressReport) -> BTreeSet<(Hash256, u32, u64, bool)> {
    report
        .utxos
        .iter()
        .map(|c| {
            (
                c.utxo.txid,
                c.utxo.vout,
                c.utxo.value,
                c.utxo.status.confirmed,
            )
        })
        .collect()
}

/// Every confirmed output proven; with `apart`, with a header from another source than its
/// proof.
fn assert_proven(report: &AddressReport, apart: bool) {
    for checked in &report.utxos {
        match &checked.proof {
            ProofStatus::Verified {
                proof_from,
                header_from,
                ..
            } => {
                assert!(checked.utxo.status.confirmed);
                assert!(!apart || proof_from != header_from, "{checked:?}");
            }
            ProofStatus::Unconfirmed => assert!(!checked.utxo.status.confirmed),
            other => panic!("{checked:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn cross_checks_prove_outputs_and_catch_a_liar() {
    let chain = varied_chain(false).await;
    let (a, b) = (
        synced_server(&chain.node).await,
        synced_server(&chain.node).await,
    );
    // An address outside the wallet (so it never spends from it) gets two confirmed
    // outputs and one in the mempool.
    let script = [&[0x76, 0xa9, 0x14][..], &[0x33; 20], &[0x88, 0xac]].concat();
    let address = Address::from_script(&profile(), &script).unwrap();
    let text = address.to_string();
    chain.wallet.send_to(&text, 40_000_000).await.unwrap();
    chain.node.mine(1, &chain.miner).await.unwrap();
    chain.wallet.send_to(&text, 30_000_000).await.unwrap();
    chain.node.mine(1, &chain.miner).await.unwrap();
    chain.wallet.send_to(&text, 25_000_000).await.unwrap();
    a.wait_synced(&chain.node, SYNC).await.unwrap();
    b.wait_synced(&chain.node, SYNC).await.unwrap();
    let expected = node_utxos(&chain.node, &address).await;
    assert_eq!(expected.len(), 3);

    let report = CrossCheck::new(vec![esplora(&a.url), esplora(&b.url)])
        .unwrap()
        .address(&address)
        .await;
    assert!(!report.has_wrong_answers(), "{report:#?}");
    assert_eq!(report.distinct_servers, 2);
    assert_eq!(reported_utxos(&report), expected);
    assert_proven(&report, true);
    let balance: u64 = expected.iter().map(|u| u.2).sum();
    assert_eq!(report.stats().unwrap().balance(), Some(balance));

    // A server lying about the totals contradicts its own outputs and the other server.
    let lying = liar(&a.url, Lie::Balance).await;
    let report = CrossCheck::new(vec![esplora(&lying), esplora(&b.url)])
        .unwrap()
        .address(&address)
        .await;
    assert!(report.has_wrong_answers());
    let about: Vec<&str> = report
        .disagreements
        .iter()
        .map(|d| d.about.as_str())
        .collect();
    assert!(
        about.iter().any(|a| a.starts_with("totals of")),
        "{about:?}"
    );
    assert!(
        about
            .iter()
            .any(|a| a.ends_with("against funded minus spent")),
        "{about:?}"
    );

    // A server forging merkle proofs is caught by the other server's headers.
    let forging = liar(&a.url, Lie::MerkleProof).await;
    let report = CrossCheck::new(vec![esplora(&forging), esplora(&b.url)])
        .unwrap()
        .address(&address)
        .await;
    assert!(report.disagreements.is_empty(), "{report:#?}");
    assert!(report.has_wrong_answers());
    for checked in report.utxos.iter().filter(|c| c.utxo.status.confirmed) {
        assert!(
            matches!(&checked.proof, ProofStatus::Failed { reason } if reason.contains("does not lead")),
            "{checked:?}"
        );
    }

    // Through a proxy: its directory, and its relay spreading requests over both servers.
    let (key_a, key_b) = (key_of(&a), key_of(&b));
    let coin = json!({"id": "ltc-regtest", "ticker": "LTC", "network": "regtest",
                      "genesis_hash": profile().genesis_hash, "healthy_servers": 2});
    let proxy_url = proxy(
        "ltc-regtest",
        coin,
        &[(a.url.clone(), key_a), (b.url.clone(), key_b)],
    )
    .await;
    let proxy = Proxy::new(Transport::default(), &proxy_url).unwrap();
    let coins = proxy.coins().await.unwrap();
    assert_eq!(coins[0].id, "ltc-regtest");
    assert_eq!(coins[0].genesis_hash, profile().genesis_hash);
    let servers = proxy.servers("ltc-regtest").await.unwrap();
    let keys: BTreeSet<PublicKey> = servers.iter().map(|s| s.server_key).collect();
    assert_eq!(keys, BTreeSet::from([key_a, key_b]));
    let relay = proxy.esplora(profile()).unwrap();
    let (tip, _) = chain.node.tip().await.unwrap();
    let served = relay.tip_height().await.unwrap();
    assert_eq!(served.value, tip);
    assert!(served.server.is_some_and(|k| keys.contains(&k)));
    let report = CrossCheck::new(vec![relay.clone(), relay])
        .unwrap()
        .address(&address)
        .await;
    assert!(!report.has_wrong_answers(), "{report:#?}");
    assert_eq!(report.distinct_servers, 2);
    assert_eq!(reported_utxos(&report), expected);
    // Until a wallet can pin a server through the relay, proof and header may come from the
    // same server; the labels say which server gave each.
    assert_proven(&report, false);
    let labels: BTreeSet<String> = report
        .utxos
        .iter()
        .filter_map(|c| match &c.proof {
            ProofStatus::Verified { proof_from, .. } => Some(proof_from.clone()),
            _ => None,
        })
        .collect();
    assert!(labels.iter().all(|l| l.contains("(server ")), "{labels:?}");
}
