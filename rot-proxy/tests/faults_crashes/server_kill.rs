//! `kill -9` of a rot-server under steady wallet traffic: no wallet request fails, the relay
//! stops sending to it, and restarted on its data dir (after the chain moved on) it is served
//! again with an index equal to a clean index of the chain.

use std::time::{Duration, Instant};

use rot_harness::{fresh_index, index_dump};

use crate::common::*;
use rot_harness::ring::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_costs_no_request_and_returns_with_a_clean_index() {
    let node = Node::funded().await;
    let proxy = Proxy::start(&[]).await;
    let mut servers = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let server = server_process(&node.node, &proxy.url).await;
        keys.push(key_at(&server.url).await);
        servers.push(server);
    }
    proxy
        .wait_serving(&keys, Some(node.node.tip().await.unwrap()))
        .await;
    let traffic = proxy.wallets(&node.wallet_questions(), WALLETS).await;

    let dead = keys[0];
    let answered_at_kill = traffic.answered();
    let killed = Instant::now();
    servers[0].kill9().unwrap();
    let stopped = time_until(
        "the relay to stop relaying to the killed server",
        || async {
            relay_view_of(&proxy, &dead)
                .await
                .is_none_or(|s| s["healthy"] == false)
        },
    )
    .await;
    // Taken out by its failed relayed requests (ejected for a while) or by a failed probe.
    let stopped_by = match relay_view_of(&proxy, &dead).await {
        Some(s) if !s["ejected_until_ms"].is_null() => "ejection",
        _ => "probe",
    };
    // Requests already on their way to it when it died are counted as they fail.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests_dead = requests_to(&proxy, &dead).await;
    // The chain moves on while it is dead: the others serve the new tip.
    node.pay_and_mine().await;
    let tip = node.node.tip().await.unwrap();
    proxy.wait_serving(&keys[1..], Some(tip)).await;
    assert!(
        traffic.wait_answered(100, PATIENCE).await,
        "traffic stopped"
    );
    assert_eq!(
        requests_to(&proxy, &dead).await,
        requests_dead,
        "requests went to the dead server"
    );
    let answered_while_dead = traffic.answered() - answered_at_kill;

    let restarted = Instant::now();
    servers[0].start(PATIENCE).await.unwrap();
    let up = restarted.elapsed();
    proxy.wait_serving(&keys, Some(tip)).await;
    let served = restarted.elapsed();
    time_until("wallet requests to reach the restarted server", || async {
        requests_to(&proxy, &dead).await > requests_dead
    })
    .await;
    let down = killed.elapsed() - restarted.elapsed();
    let report = traffic.finish().await;
    report.assert_no_failures("server kill");
    // Dying is not misbehaviour.
    let entry = proxy.entry(&dead).await.expect("still listed");
    assert_eq!((entry.warnings, entry.exclusions), (0, 0), "{entry:?}");

    let rss_kib = servers[0].rss_kib().unwrap_or(0);
    servers[0].terminate(PATIENCE).unwrap();
    assert_eq!(
        index_dump(&servers[0].data_dir).unwrap(),
        fresh_index(&node.node, PATIENCE).await.unwrap(),
        "the index after kill -9 and restart differs from a clean one"
    );
    figures(
        "server-kill9",
        &[
            ("failed", report.failures.len().to_string()),
            ("answered", report.answered.to_string()),
            ("answered_while_dead", answered_while_dead.to_string()),
            ("stop_relaying_ms", ms(stopped)),
            ("stopped_by", stopped_by.to_owned()),
            ("down_ms", ms(down)),
            ("restart_to_api_ms", ms(up)),
            ("restart_to_served_ms", ms(served)),
            ("slowest_request_ms", ms(report.slowest)),
            ("server_rss_kib", rss_kib.to_string()),
            ("index", "identical".to_owned()),
        ],
    );
    proxy.stop().await;
}
