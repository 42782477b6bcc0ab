//! `/metrics` of a real running server, registered with a real proxy: the heights, progress
//! and mempool size equal what the node reports, and requests and heartbeats are counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rot_harness::{AddressType, ApiClient, RotProxy, RotServer};
use serde_json::{Value, json};

use crate::common::{SYNC, funded_node};

/// The samples of a Prometheus text exposition, by series (name and labels as written).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            (series.to_owned(), value.parse().expect("sample value"))
        })
        .collect()
}

async fn scrape(api: &ApiClient) -> BTreeMap<String, f64> {
    let reply = api.get_ok("/metrics").await.unwrap();
    assert_eq!(
        reply.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    samples(&reply.text())
}

#[tokio::test]
async fn metrics_report_the_nodes_numbers_requests_and_heartbeats() {
    let (node, wallet, _) = funded_node().await;
    let payee = wallet.new_address(AddressType::Bech32).await.unwrap();
    let txid = wallet.send_to(&payee, 100_000_000).await.unwrap();
    let proxy = RotProxy::start_with(None, &[]).await.unwrap();
    let server = RotServer::registering_with(&node, &proxy.url)
        .await
        .unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();
    let api = server.api();

    // The server's mempool view has caught up with the node's when it lists the payment.
    let started = Instant::now();
    while !api
        .get_json("/mempool/txids")
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .contains(&json!(txid.to_string()))
    {
        assert!(started.elapsed() < SYNC, "the server never saw {txid}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let heartbeat = format!(
        "rot_server_heartbeats_total{{proxy=\"{}\",outcome=\"accepted\"}}",
        proxy.url
    );
    let started = Instant::now();
    while !scrape(&api).await.contains_key(&heartbeat) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no accepted heartbeat counted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for path in [
        "/blocks/tip/height",
        "/blocks/tip/height",
        "/tx/nothex",
        "/nowhere",
    ] {
        api.get(path).await.unwrap();
    }
    let metrics = scrape(&api).await;

    let (height, _) = node.tip().await.unwrap();
    let height = f64::from(height);
    let mempool: Value = node.call("getrawmempool", json!([])).await.unwrap();
    for (series, expected) in [
        ("rot_server_index_height", height),
        ("rot_server_node_height", height),
        ("rot_server_tip_height", height),
        ("rot_server_index_synced", 1.0),
        ("rot_server_index_progress_ratio", 1.0),
        (
            "rot_server_mempool_transactions",
            mempool.as_array().unwrap().len() as f64,
        ),
        (
            "rot_http_requests_total{route=\"/blocks/tip/height\",method=\"GET\",status=\"200\"}",
            2.0,
        ),
        (
            "rot_http_request_duration_seconds_count{route=\"/blocks/tip/height\"}",
            2.0,
        ),
        (
            "rot_http_requests_total{route=\"/tx/{txid}\",method=\"GET\",status=\"400\"}",
            1.0,
        ),
        (
            "rot_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}",
            1.0,
        ),
        (
            "rot_server_info{coin=\"ltc-regtest\",backend=\"native\",version=\"0.1.0\"}",
            1.0,
        ),
    ] {
        assert_eq!(metrics.get(series), Some(&expected), "{series}");
    }
    assert!(metrics["rot_server_mempool_transactions"] >= 1.0);
    assert!(metrics[&heartbeat] >= 1.0);
    let failed = format!(
        "rot_server_heartbeats_total{{proxy=\"{}\",outcome=\"failed\"}}",
        proxy.url
    );
    assert!(!metrics.contains_key(&failed), "no heartbeat should fail");
}
