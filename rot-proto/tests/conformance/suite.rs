//! The conformance suite against an honest server, lying proxies in front of it, a server
//! posing as an Electrum backend, and servers that do not answer.

use std::collections::BTreeSet;
use std::time::Duration;

use rot_proto::conformance::{Conformance, Options, Outcome, Report, Verdict, check};
use rot_proto::transport::Transport;
use rot_proto::{Error, Hash256, Identity};
use serde_json::{Value, json};

use crate::chain::{profile, synced_server, txs_since, varied_chain};
use crate::fakes::{Lie, liar};

fn conformance() -> Conformance {
    Conformance::new(Transport::default(), profile())
}

fn assert_all_pass(report: &Report) {
    for result in &report.checks {
        assert_eq!(
            result.outcome,
            Outcome::Pass,
            "{}: {}\n{:#}",
            result.name,
            result.summary,
            result.evidence
        );
    }
    assert_eq!(report.verdict(), Verdict::Pass);
    assert_eq!(report.checks.len(), check::ALL.len());
}

/// `name` failed by the server's fault, with evidence; every other check passed.
fn assert_only_failure<'a>(report: &'a Report, name: &str) -> &'a Value {
    for result in &report.checks {
        let expected = if result.name == name {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
        assert_eq!(
            result.outcome, expected,
            "{}: {}\n{:#}",
            result.name, result.summary, result.evidence
        );
    }
    let failed = report.check(name).unwrap();
    assert!(failed.at_fault, "{failed:#?}");
    assert_eq!(report.verdict(), Verdict::ServerFault);
    &failed.evidence
}

fn txids(samples: &Value) -> BTreeSet<Hash256> {
    samples
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_value(s["txid"].clone()).unwrap())
        .collect()
}

#[tokio::test]
async fn an_honest_server_passes_and_each_lie_fails_its_own_check() {
    let chain = varied_chain(true).await;
    let server = synced_server(&chain.node).await;
    let identity = Identity::load(&server.data_dir.join("identity.key")).unwrap();
    let (tip, tip_hash) = chain.node.tip().await.unwrap();
    let options = Options {
        headers: 5,
        sampled_txs: 1000,
        seed: 7,
        expected_key: Some(identity.public_key()),
        ..Options::default()
    };

    let report = conformance().run(&server.url, &options).await.unwrap();
    assert_all_pass(&report);
    assert_eq!(report.server_key, Some(identity.public_key()));
    assert_eq!(
        report.tip.map(|t| (t.height, t.hash)),
        Some((tip, tip_hash))
    );
    // Every transaction of the last five blocks was sampled and proven: payments to every
    // address kind, multisig, OP_RETURN, the coinbases and the HogEx transactions.
    let transactions = &report.check(check::TRANSACTIONS).unwrap().evidence;
    assert_eq!(transactions["sampled_from"], "block-txids");
    assert_eq!(transactions["blocks_listed"], 5);
    let samples = &transactions["samples"];
    assert_eq!(
        samples.as_array().unwrap().len(),
        txs_since(&chain.node, tip - 4).await
    );
    assert!(
        samples
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["merkle_proof_checked"] == json!(true))
    );
    let sampled = txids(samples);
    assert!(chain.sent.iter().all(|txid| sampled.contains(txid)));
    let tip_block: Value = chain
        .node
        .call("getblock", json!([tip_hash]))
        .await
        .unwrap();
    let hogex: Hash256 =
        serde_json::from_value(tip_block["tx"].as_array().unwrap().last().unwrap().clone())
            .unwrap();
    assert!(sampled.contains(&hogex), "the HogEx {hogex} was sampled");
    // Each spending transaction's input was found spent by it.
    let spent = &report.check(check::SPENT_BY).unwrap().evidence["checked"];
    assert!(spent.as_array().unwrap().len() >= chain.sent.len());

    // The same seed picks the same transactions, so a proxy's evidence can be replayed.
    let few = Options {
        sampled_txs: 3,
        ..options.clone()
    };
    let first = conformance().run(&server.url, &few).await.unwrap();
    let again = conformance().run(&server.url, &few).await.unwrap();
    let picks = |r: &Report| r.check(check::TRANSACTIONS).unwrap().evidence["samples"].clone();
    assert_eq!(picks(&first), picks(&again));
    assert_eq!(picks(&first).as_array().unwrap().len(), 3);

    let lying = liar(&server.url, Lie::TipHash).await;
    let report = conformance().run(&lying, &options).await.unwrap();
    let evidence = assert_only_failure(&report, check::TIP);
    assert_eq!(evidence["block_at_tip_height"], json!(tip_hash));
    assert_ne!(evidence["tip_hash"], json!(tip_hash));

    let lying = liar(&server.url, Lie::MerkleProof).await;
    let report = conformance().run(&lying, &options).await.unwrap();
    let evidence = assert_only_failure(&report, check::TRANSACTIONS);
    assert_eq!(evidence["answer"]["merkle"][0], json!(Hash256([0x42; 32])));
    assert_ne!(evidence["computed_root"], evidence["header_merkle_root"]);

    let lying = liar(&server.url, Lie::Balance).await;
    let report = conformance().run(&lying, &options).await.unwrap();
    let evidence = assert_only_failure(&report, check::ADDRESS_BALANCE);
    let (claimed, listed) = (
        evidence["expected_sum"].as_u64().unwrap(),
        evidence["utxo_sum"].as_u64().unwrap(),
    );
    assert_eq!(claimed - listed, 100_000, "{evidence:#}");

    let lying = liar(&server.url, Lie::InfoKey).await;
    let report = conformance().run(&lying, &options).await.unwrap();
    let evidence = assert_only_failure(&report, check::INFO_SIGNATURE);
    assert!(
        evidence["error"].as_str().unwrap().contains("signed by"),
        "{evidence:#}"
    );
    assert_eq!(report.server_key, None);

    // An Electrum-backed server lists no block's transactions and offers no spent-by: the
    // transactions are sampled from the histories of addresses given instead.
    let electrum_like = liar(&server.url, Lie::ElectrumLike(Box::new(identity))).await;
    let options = Options {
        addresses: chain.paid.clone(),
        ..options
    };
    let report = conformance().run(&electrum_like, &options).await.unwrap();
    for result in &report.checks {
        let expected = if result.name == check::SPENT_BY {
            Outcome::Skip
        } else {
            Outcome::Pass
        };
        assert_eq!(result.outcome, expected, "{result:#?}");
    }
    let transactions = &report.check(check::TRANSACTIONS).unwrap().evidence;
    assert_eq!(transactions["sampled_from"], "address-history");
    let sampled = txids(&transactions["samples"]);
    // The payments to those addresses (not the OP_RETURN output nor the peg-in).
    let paying = [0, 1, 2, 3, 5, 6].map(|i| chain.sent[i]);
    assert!(
        paying.iter().all(|txid| sampled.contains(txid)),
        "{sampled:?}"
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_not_blamed() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let report = conformance()
        .run(&closed, &Options::default())
        .await
        .unwrap();
    assert_eq!(report.verdict(), Verdict::Unreachable);
    assert!(report.checks.iter().all(|c| !c.at_fault), "{report:#?}");
    let info = report.check(check::INFO_SIGNATURE).unwrap();
    assert_eq!(info.outcome, Outcome::Fail);
    assert_eq!(
        info.evidence["request"],
        json!(format!("{closed}/rot/v1/info"))
    );
    // Checks built on a fact that could not be fetched skip rather than fail again.
    assert_eq!(
        report.check(check::TRANSACTIONS).unwrap().outcome,
        Outcome::Skip
    );

    // A server that accepts connections and never answers times out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let impatient = Conformance::new(
        Transport::default().with_timeout(Duration::from_millis(300)),
        profile(),
    );
    let report = impatient.run(&url, &Options::default()).await.unwrap();
    assert_eq!(report.verdict(), Verdict::Unreachable);
    let info = report.check(check::INFO_SIGNATURE).unwrap();
    assert_eq!(info.evidence["error"], "timed out", "{info:#?}");

    assert!(matches!(
        conformance()
            .run("ftp://nowhere", &Options::default())
            .await,
        Err(Error::InvalidUrl { .. })
    ));
}
