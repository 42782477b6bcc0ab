//! Two faults at once: a rot-server killed with `kill -9` while its coin node is down, both
//! restarted together (the server waiting for its node). Wallets see nothing of it (another
//! server serves), and the server comes back with an index equal to a clean one.

use std::time::Instant;

use rot_harness::{fresh_index, index_dump};

use crate::common::*;
use rot_harness::ring::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_its_node_is_down_returns_with_a_clean_index() {
    let a = Node::funded().await;
    let mut b = Node::follower(&a.node).await;
    let proxy = Proxy::start(&[]).await;
    let on_a = proxy.server(&a.node).await;
    let mut on_b = server_process(&b, &proxy.url).await;
    let (ka, kb) = (key_of(&on_a).await, key_at(&on_b.url).await);
    proxy
        .wait_serving(&[ka, kb], Some(a.node.tip().await.unwrap()))
        .await;
    let traffic = proxy.wallets(&a.wallet_questions(), WALLETS).await;

    b.kill9().unwrap();
    time_until("the server to say its node is gone", || async {
        info_at(&on_b.url)
            .await
            .is_some_and(|info| !info.index.synced)
    })
    .await;
    on_b.kill9().unwrap();
    a.pay_and_mine().await;
    let tip = a.node.tip().await.unwrap();
    proxy.wait_serving(&[ka], Some(tip)).await;
    assert!(
        traffic.wait_answered(100, PATIENCE).await,
        "traffic stopped"
    );

    let restarted = Instant::now();
    let (node_back, server_back) = tokio::join!(
        async {
            b.restart().await.unwrap();
            b.connect_to(&a.node).await.unwrap();
            b.sync_with(&a.node).await.unwrap();
            restarted.elapsed()
        },
        async {
            on_b.start(PATIENCE).await.unwrap();
            restarted.elapsed()
        }
    );
    proxy.wait_serving(&[ka, kb], Some(tip)).await;
    let served = restarted.elapsed();
    let report = traffic.finish().await;
    report.assert_no_failures("server kill while its node is down");
    on_b.terminate(PATIENCE).unwrap();
    assert_eq!(
        index_dump(&on_b.data_dir).unwrap(),
        fresh_index(&a.node, PATIENCE).await.unwrap(),
        "the index after kill -9 and restart differs from a clean one"
    );
    figures(
        "server-kill9-node-down",
        &[
            ("failed", report.failures.len().to_string()),
            ("answered", report.answered.to_string()),
            ("restart_to_node_synced_ms", ms(node_back)),
            ("restart_to_api_ms", ms(server_back)),
            ("restart_to_served_ms", ms(served)),
            ("slowest_request_ms", ms(report.slowest)),
            ("index", "identical".to_owned()),
        ],
    );
    on_a.stop().await;
    proxy.stop().await;
}
