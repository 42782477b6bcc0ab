//! A lying server (`rot_harness::liar`, a double in front of a real rot-server that signs
//! correctly and lies on demand: a wrong balance, a forged merkle proof, a wrong tip). The
//! proxy must warn it, exclude it within a bounded number of probe cycles with the evidence
//! in an incident, readmit it only after it passes the suite again, and exclude it for longer
//! when it lies again.

use std::time::{Duration, Instant};

use rot_harness::RotServer;
use rot_harness::eventually;
use rot_harness::liar::{Liar, Lie};
use rot_harness::ring::*;
use rot_proto::message::ServerStatus;
use rot_proto::{Identity, PublicKey, Signed};
use rot_proxy::incidents::IncidentQuery;
use serde_json::{Value, json};

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the operator view says about `key`'s standing.
async fn standing(proxy: &Proxy, key: &PublicKey) -> Value {
    proxy.admin(&format!("/v1/admin/servers/{key}")).await["record"]["standing"].clone()
}

/// Tells `lie` until excluded; returns the exclusion's length in ms (from the incident
/// that excluded it) and the incidents of that exclusion.
async fn lie_until_excluded(
    proxy: &Proxy,
    liar: &Liar,
    lie: Lie,
    exclusions: u64,
    check: &str,
) -> u64 {
    let key = liar.key();
    let seen = proxy.incidents_of(&key).await.len();
    let started = Instant::now();
    liar.lie(lie);
    let what = format!("the liar to be excluded for {check}");
    eventually(&what, PATIENCE, || async {
        let entry = proxy.entry(&key).await;
        entry
            .is_some_and(|e| e.status == ServerStatus::Excluded && e.exclusions == exclusions)
            .then_some(())
    })
    .await;
    // Within a bounded number of probe cycles: two failed suites at most ~1 s apart.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "excluded only after {:?}",
        started.elapsed()
    );
    let incidents = proxy.incidents_of(&key).await;
    let new = &incidents[seen..];
    let lied = new
        .iter()
        .find(|i| i["check"] == check)
        .unwrap_or_else(|| panic!("no {check} incident among {new:#?}"));
    assert!(lied["evidence"].is_object(), "{lied:#}");
    let exclusion = new
        .iter()
        .find(|i| i["consequence"] == "exclusion")
        .expect("an incident that excluded");
    assert!(new.iter().any(|i| i["consequence"] == "warning"));
    let until = standing(proxy, &key).await["excluded_until_ms"]
        .as_u64()
        .unwrap();
    // Wallets are not sent to it while it is excluded.
    for _ in 0..20 {
        let (status, headers, _) = proxy.relay("/blocks/tip/height").await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_ne!(answered_by(&headers), key);
    }
    until - exclusion["time"].as_u64().unwrap() * 1000
}

/// Two honest servers and the double in front of a third, all serving.
struct Scene {
    node: Node,
    proxy: Proxy,
    liar: Liar,
    keys: [PublicKey; 3],
    _servers: [RotServer; 3],
}

async fn scene(settings: &[(&str, &str)]) -> Scene {
    let node = Node::funded().await;
    let mut all = vec![
        ("ROT_PROXY_WARNINGS_TO_EXCLUDE", "2"),
        ("ROT_PROXY_EXCLUSION_BASE_SECS", "2"),
        ("ROT_PROXY_EXCLUSION_MAX_SECS", "60"),
    ];
    all.extend_from_slice(settings);
    let proxy = Proxy::start(&all).await;
    let honest = [
        proxy.server(&node.node).await,
        proxy.server(&node.node).await,
    ];
    let behind = RotServer::start(&node.node).await.unwrap();
    behind.wait_synced(&node.node, PATIENCE).await.unwrap();
    let liar = Liar::start(Identity::from_seed([66; 32]), &behind.url, &proxy.url)
        .await
        .unwrap();
    let keys = [
        key_of(&honest[0]).await,
        key_of(&honest[1]).await,
        liar.key(),
    ];
    proxy
        .wait_serving(&keys, Some(node.node.tip().await.unwrap()))
        .await;
    let [a, b] = honest;
    Scene {
        node,
        proxy,
        liar,
        keys,
        _servers: [a, b, behind],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_server_is_warned_excluded_and_excluded_longer_when_it_lies_again() {
    let Scene {
        node,
        proxy,
        liar,
        keys,
        _servers,
    } = scene(&[("ROT_PROXY_SUITE_INTERVAL_MS", "700")]).await;
    let key = liar.key();

    let first = lie_until_excluded(&proxy, &liar, Lie::WrongBalance, 1, "address-balance").await;
    let entry = proxy.entry(&key).await.unwrap();
    assert!(entry.warnings >= 2, "{entry:?}");
    // The server's own operator sees the evidence, by a query signed with its key.
    let query = Signed::sign(
        liar.identity(),
        &IncidentQuery {
            coin: COIN.into(),
            server_key: key,
            time: now_secs(),
            after: 0,
        },
    )
    .unwrap();
    let own: Value = proxy
        .http
        .post(format!(
            "{}/v1/coins/{COIN}/servers/{key}/incidents",
            proxy.url
        ))
        .json(&query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let evidence = own["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["check"] == "address-balance")
        .map(|i| i["evidence"]["evidence"].clone())
        .unwrap();
    assert!(
        evidence["utxo_sum"] != evidence["expected_sum"],
        "{evidence:#}"
    );
    // Wallets see the status and counts, not the evidence.
    let (_, _, public) = proxy
        .get(
            &format!("{}/v1/coins/{COIN}/incidents?server={key}", proxy.url),
            None,
        )
        .await;
    let public: Value = serde_json::from_str(&public).unwrap();
    assert!(
        public["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["evidence"].is_null())
    );

    // Honest again, it is readmitted once the exclusion ends and the suite passes.
    liar.lie(Lie::Honest);
    proxy.wait_serving(&keys, None).await;
    let entry = proxy.entry(&key).await.unwrap();
    assert_eq!(entry.status, ServerStatus::Admitted, "{entry:?}");
    assert_eq!(entry.exclusions, 1, "the count stays");

    let second = lie_until_excluded(&proxy, &liar, Lie::ForgedProof, 2, "transactions").await;
    assert!(second > first, "{second} ms after {first} ms");
    liar.lie(Lie::Honest);
    proxy.wait_serving(&keys, None).await;

    let third = lie_until_excluded(&proxy, &liar, Lie::WrongTip, 3, "tip").await;
    assert!(third > second, "{third} ms after {second} ms");
    // The honest servers were never warned.
    for honest_key in &keys[..2] {
        let entry = proxy.entry(honest_key).await.unwrap();
        assert_eq!((entry.warnings, entry.exclusions), (0, 0), "{entry:?}");
    }
    drop(node);
    liar.stop();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_contradicting_the_others_loses_cross_checks() {
    // Suites rarely; cross-checks often: only the other servers' answers give this liar away.
    let Scene {
        node,
        proxy,
        liar,
        keys,
        _servers,
    } = scene(&[
        ("ROT_PROXY_SUITE_INTERVAL_MS", "600000"),
        ("ROT_PROXY_CROSS_CHECK_INTERVAL_MS", "300"),
    ])
    .await;
    let key = liar.key();
    lie_until_excluded(&proxy, &liar, Lie::Consistent, 1, "cross-check").await;
    let incidents = proxy.incidents_of(&key).await;
    let lost = incidents
        .iter()
        .find(|i| i["check"] == "cross-check")
        .unwrap();
    let evidence = &lost["evidence"];
    // Every server's answer, the majority's, and the liar's answer when asked again.
    let answers = evidence["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{evidence:#}");
    assert_eq!(evidence["majority_servers"], 2);
    let own = answers.iter().find(|a| a["server"] == json!(key)).unwrap();
    assert_ne!(own["answer"], evidence["majority"]);
    assert_eq!(evidence["asked_again"], own["answer"]);
    for honest_key in &keys[..2] {
        assert!(proxy.incidents_of(honest_key).await.is_empty());
    }
    drop(node);
    liar.stop();
    proxy.stop().await;
}
