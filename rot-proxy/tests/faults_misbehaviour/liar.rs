//! A lying server under wallet traffic (`rot_harness::liar` in front of a real rot-server):
//! how long until it is warned and excluded, the incident's evidence, and that once it is
//! excluded wallets get no answer of it: none carries its key, and the answer it lied about
//! is the honest servers' again. The forged heartbeats run first, in the same ring.

use std::time::{Duration, Instant};

use rot_harness::RotServer;
use rot_harness::liar::{Liar, Lie};
use rot_harness::ring::*;
use rot_proto::Identity;
use rot_proto::message::ServerStatus;
use serde_json::Value;

use crate::{Forwarded, WALLETS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liar_is_excluded_under_traffic_and_forged_heartbeats_are_refused() {
    let node = Node::funded().await;
    // Excluded for the rest of the test once excluded.
    let proxy = Proxy::start(&[
        ("ROT_PROXY_WARNINGS_TO_EXCLUDE", "2"),
        ("ROT_PROXY_EXCLUSION_BASE_SECS", "600"),
        ("ROT_PROXY_SUITE_INTERVAL_MS", "700"),
    ])
    .await;
    let mut honest = Vec::new();
    for _ in 0..3 {
        honest.push(Forwarded::start(&proxy, &node.node).await);
    }
    let behind = RotServer::start(&node.node).await.unwrap();
    behind.wait_synced(&node.node, PATIENCE).await.unwrap();
    let liar = Liar::start(Identity::from_seed([66; 32]), &behind.url, &proxy.url)
        .await
        .unwrap();
    let mut keys: Vec<_> = honest.iter().map(|s| s.key).collect();
    keys.push(liar.key());
    proxy
        .wait_serving(&keys, Some(node.node.tip().await.unwrap()))
        .await;

    crate::heartbeats::replays_and_usurpers_are_refused(&proxy, &liar, &keys[0], &behind).await;

    let paths = node.wallet_questions();
    let traffic = proxy.wallets(&paths, WALLETS).await;
    let before = proxy.requests().await[&liar.key()];
    liar.lie(Lie::WrongBalance);
    let lying = Instant::now();
    let (mut warned, mut excluded) = (None, None);
    while excluded.is_none() && lying.elapsed() < PATIENCE {
        let entry = proxy.entry(&liar.key()).await.expect("listed");
        if entry.warnings > 0 && warned.is_none() {
            warned = Some(lying.elapsed());
        }
        if entry.status == ServerStatus::Excluded {
            excluded = Some(lying.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let excluded = excluded.expect("the liar was not excluded");
    let warned = warned.unwrap_or(excluded);
    let at_exclusion = proxy.requests().await[&liar.key()];

    // Requests in flight at the exclusion may still finish; after that, none goes to it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = proxy.requests().await[&liar.key()];
    assert!(
        traffic.wait_answered(300, PATIENCE).await,
        "traffic stopped"
    );
    let utxo = format!("/address/{}/utxo", node.miner);
    let truth = honest[0].server.api().get_json(&utxo).await.unwrap();
    for _ in 0..20 {
        let (status, headers, body) = proxy.relay(&utxo).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        assert_ne!(
            answered_by(&headers),
            liar.key(),
            "answered by the excluded liar"
        );
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), truth);
    }
    let report = traffic.finish().await;
    report.assert_no_failures("liar");
    assert_eq!(
        proxy.requests().await[&liar.key()],
        settled,
        "requests went to the liar after its exclusion"
    );

    let incidents = proxy.incidents_of(&liar.key()).await;
    let lied = incidents
        .iter()
        .find(|i| i["check"] == "address-balance")
        .unwrap_or_else(|| panic!("no address-balance incident among {incidents:#?}"));
    let evidence = &lied["evidence"]["evidence"];
    assert!(evidence.is_object(), "{lied:#}");
    assert_ne!(
        evidence["utxo_sum"], evidence["expected_sum"],
        "{evidence:#}"
    );
    assert!(
        incidents.iter().any(|i| i["consequence"] == "exclusion"),
        "{incidents:#?}"
    );
    for key in &keys[..3] {
        let entry = proxy.entry(key).await.unwrap();
        let incidents = proxy.incidents_of(key).await;
        assert_eq!(
            (entry.warnings, entry.exclusions),
            (0, 0),
            "an honest server was punished: {entry:?} {incidents:#?}"
        );
    }
    let checks: Vec<&str> = incidents
        .iter()
        .filter_map(|i| i["check"].as_str())
        .collect();
    eprintln!(
        "faults: liar: warned_ms={} excluded_ms={} relayed_to_liar_while_lying={} \
         finishing_after_exclusion={} after_settling=0 answered={} failed=0 incidents={checks:?}",
        warned.as_millis(),
        excluded.as_millis(),
        at_exclusion - before,
        settled - at_exclusion,
        report.answered,
    );
    liar.stop();
    proxy.stop().await;
}
