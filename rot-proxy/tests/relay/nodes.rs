//! Servers whose node lags behind, or follows a branch of its own after a reorganisation, are
//! not served from and not punished; they are used again once their node is back on the
//! chain the others follow.

use reqwest::StatusCode;
use rot_harness::AddressType;
use rot_proto::message::ServerStatus;
use rot_proto::{Hash256, PublicKey};

use rot_harness::eventually;
use rot_harness::ring::*;

/// Asks the relay `n` times; every answer must come from a server other than `skipped`, at
/// the tip `(height, hash)`.
async fn never_from(proxy: &Proxy, skipped: &PublicKey, tip: (u32, Hash256), n: usize) {
    for _ in 0..n {
        let (status, headers, body) = proxy.relay("/blocks/tip/hash").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_ne!(
            answered_by(&headers),
            *skipped,
            "served by the lagging server"
        );
        assert_eq!(
            headers["x-rot-tip"],
            format!("{}:{}", tip.0, tip.1).as_str()
        );
        assert_eq!(body, tip.1.to_string());
    }
}

/// `key` is listed, unwarned, with no incident.
async fn unpunished(proxy: &Proxy, key: &PublicKey) {
    let incidents = proxy.incidents_of(key).await;
    assert!(incidents.is_empty(), "{incidents:#?}");
    let entry = proxy.entry(key).await.expect("still listed");
    assert_eq!(entry.status, ServerStatus::Admitted, "{entry:?}");
    assert_eq!((entry.warnings, entry.exclusions), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_and_forked_servers_are_skipped_unpunished_and_used_again() {
    let a = Node::funded().await;
    let b = Node::follower(&a.node).await;
    let proxy = Proxy::start(&[]).await;
    let on_a = [proxy.server(&a.node).await, proxy.server(&a.node).await];
    let on_b = proxy.server(&b).await;
    let (k1, k2, k3) = (
        key_of(&on_a[0]).await,
        key_of(&on_a[1]).await,
        key_of(&on_b).await,
    );
    let all = [k1, k2, k3];
    proxy
        .wait_serving(&all, Some(a.node.tip().await.unwrap()))
        .await;

    // B's node falls behind: its server is skipped.
    let lagging = b.tip().await.unwrap();
    b.disconnect(&a.node).await.unwrap();
    a.node.mine(2, &a.miner).await.unwrap();
    let tip = a.node.tip().await.unwrap();
    proxy.wait_serving(&[k1, k2], Some(tip)).await;
    never_from(&proxy, &k3, tip, 40).await;
    // Pinned, it still answers, with its own tip.
    let url = format!(
        "{}/v1/coins/{COIN}/servers/{k3}/esplora/blocks/tip/height",
        proxy.url
    );
    let (status, headers, body) = proxy.get(&url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, lagging.0.to_string());
    assert_eq!(
        headers["x-rot-tip"],
        format!("{}:{}", lagging.0, lagging.1).as_str()
    );
    unpunished(&proxy, &k3).await;

    // B's node reorganises onto a branch of its own, as high as A's chain.
    b.invalidate_block(&lagging.1).await.unwrap();
    // Mined to another address than A's blocks, so the branch's blocks are new ones.
    let own = b.create_wallet("b").await.unwrap();
    let own = own.new_address(AddressType::Legacy).await.unwrap();
    b.mine(3, &own).await.unwrap();
    let forked = b.tip().await.unwrap();
    assert_eq!(forked.0, tip.0);
    assert_ne!(forked.1, tip.1);
    on_b.wait_for_height(forked.0, PATIENCE).await.unwrap();
    eventually("the forked server's tip to be seen", PATIENCE, || async {
        let view = proxy.relay_view().await;
        let seen = view["servers"].as_array().unwrap().iter().any(|s| {
            s["server_key"] == serde_json::json!(k3)
                && s["probe"]["tip"]["hash"] == serde_json::json!(forked.1)
        });
        seen.then_some(())
    })
    .await;
    proxy.wait_serving(&[k1, k2], Some(tip)).await;
    never_from(&proxy, &k3, tip, 40).await;
    // A few cross-check rounds later, still nothing against it.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    unpunished(&proxy, &k3).await;

    // Linked again, B's node reorganises back onto the longer chain: its server is used again.
    b.reconsider_block(&lagging.1).await.unwrap();
    b.connect_to(&a.node).await.unwrap();
    a.node.mine(2, &a.miner).await.unwrap();
    b.sync_with(&a.node).await.unwrap();
    let tip = a.node.tip().await.unwrap();
    proxy.wait_serving(&all, Some(tip)).await;
    let mut used = false;
    for _ in 0..100 {
        let (_, headers, _) = proxy.relay("/blocks/tip/height").await;
        if answered_by(&headers) == k3 {
            used = true;
            break;
        }
    }
    assert!(used, "the caught-up server is not used again");
    unpunished(&proxy, &k3).await;
    proxy.stop().await;
}
