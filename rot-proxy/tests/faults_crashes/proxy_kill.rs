//! `kill -9` of one of a ring's two proxies (a process) while servers heartbeat to both:
//! wallets using the other proxy see no failed request; restarted on its data dir and port,
//! the killed one has the same directory (servers, keys, URLs, standings, sequence numbers)
//! and relays wallet traffic again without a failed request once it serves.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rot_harness::{ADMIN_TOKEN, ApiClient, RingProcess, RotServer, Traffic, ring_proxy_settings};
use rot_proto::PublicKey;
use rot_proxy::directory::AdminServers;
use rot_proxy::store::FLUSH_EVERY_MS;
use serde_json::{Value, json};

use crate::common::*;
use rot_harness::ring::*;

/// The directory as a restart must keep it: each server's identity, URL and standing, as the
/// operator and wallets see them (heartbeat ages, counters and latencies move on).
async fn directory(operator: &ApiClient) -> (Vec<Value>, Vec<Value>, Vec<(PublicKey, u64)>) {
    let admin = operator
        .get_json(&format!("/v1/admin/coins/{COIN}/servers"))
        .await
        .unwrap();
    let admin: AdminServers = serde_json::from_value(admin).unwrap();
    let kept = admin
        .servers
        .iter()
        .map(|s| {
            let r = &s.record;
            json!({
                "key": r.server_key, "status": s.status, "ban": s.ban, "url": r.url,
                "addr": r.addr, "admitted_at": r.admitted_at, "warnings": r.warnings,
                "exclusions": r.exclusions, "standing": r.standing, "software": r.software,
                "backend": r.backend, "capabilities": r.capabilities, "height": r.height,
                "tip_hash": r.tip_hash,
            })
        })
        .collect();
    let seqs = admin
        .servers
        .iter()
        .map(|s| (s.record.server_key, s.record.last_seq))
        .collect();
    let listed = operator
        .get_json(&format!("/v1/coins/{COIN}/servers"))
        .await
        .unwrap();
    let listed = listed["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let mut entry = entry.clone();
            let fields = entry.as_object_mut().unwrap();
            fields.remove("last_heartbeat_age_secs");
            fields.remove("latency_ms");
            entry
        })
        .collect();
    (kept, listed, seqs)
}

/// Whether the relay serves from every one of `keys` on the agreed tip.
async fn serving(operator: &ApiClient, keys: &[PublicKey]) -> bool {
    let Ok(view) = operator
        .get_json(&format!("/v1/admin/coins/{COIN}/relay"))
        .await
    else {
        return false;
    };
    keys.iter().all(|key| {
        view["servers"].as_array().is_some_and(|servers| {
            servers.iter().any(|s| {
                s["server_key"] == json!(key) && s["healthy"] == true && s["on_agreed_tip"] == true
            })
        })
    })
}

/// Steady traffic through `esplora` until `more` requests are answered; every one must be.
async fn clean_traffic(http: &reqwest::Client, esplora: &str, node: &Node, more: u64) -> u64 {
    let traffic = Traffic::start(http, esplora, &node.wallet_questions(), WALLETS, PATIENCE);
    assert!(
        traffic.wait_answered(more, PATIENCE).await,
        "traffic stalled"
    );
    let report = traffic.finish().await;
    report.assert_no_failures("proxy kill");
    report.answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_proxy_restarts_with_its_directory_and_relays_again() {
    let node = Node::funded().await;
    let mut settings = ring_proxy_settings(ADMIN_TOKEN);
    // As in production, a server's heartbeat back-off after a failed heartbeat (5 s) is well
    // within the staleness limit, so a proxy restart does not make servers stale.
    settings.insert("ROT_PROXY_STALE_SECS".to_owned(), "15".to_owned());
    let binary = Path::new(env!("CARGO_BIN_EXE_rot-proxy"));
    let mut proxy = RingProcess::proxy(binary, &settings, PATIENCE)
        .await
        .unwrap();
    let operator = ApiClient::new(&proxy.url).with_bearer(ADMIN_TOKEN);
    // A second proxy of the ring, which wallets keep using while the first is down.
    let other = Proxy::start(&[]).await;
    let both = format!("{},{}", proxy.url, other.url);
    let registering = [("ROT_PROXIES", both.as_str()), ("ROT_HEARTBEAT_SECS", "1")];
    let mut servers = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..2 {
        let server = RotServer::start_with(&node.node, None, &registering)
            .await
            .unwrap();
        keys.push(key_at(&server.url).await);
        servers.push(server);
    }
    time_until("the relay to serve from both servers", || {
        serving(&operator, &keys)
    })
    .await;
    other.wait_serving(&keys, None).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let esplora = format!("{}/v1/coins/{COIN}/esplora", proxy.url);
    let answered_before = clean_traffic(&http, &esplora, &node, 200).await;
    // The proxy makes writes durable within its flush interval: what a crash must keep is
    // what it held longer than that before the kill — a directory that stood still, and the
    // sequence numbers of heartbeats accepted before that wait (later ones may be lost, and
    // the server's next heartbeat goes past them anyway).
    let (kept, listed, seqs) =
        rot_harness::eventually("the directory to stand still", PATIENCE, || async {
            let before = directory(&operator).await;
            tokio::time::sleep(Duration::from_millis(4 * FLUSH_EVERY_MS)).await;
            let after = directory(&operator).await;
            (before.0 == after.0 && before.1 == after.1).then_some((after.0, after.1, before.2))
        })
        .await;
    assert_eq!(kept.len(), 2, "{kept:#?}");

    let rss_kib = proxy.rss_kib().unwrap_or(0);
    let through_other = other.wallets(&node.wallet_questions(), WALLETS).await;
    proxy.kill9().unwrap();
    let restarted = Instant::now();
    proxy.start(PATIENCE).await.unwrap();
    let up = restarted.elapsed();
    let (kept_after, listed_after, seqs_after) = directory(&operator).await;
    assert_eq!(kept_after, kept, "the directory changed over kill -9");
    assert_eq!(listed_after, listed, "the wallets' directory changed");
    for ((key, before), (same, after)) in seqs.iter().zip(&seqs_after) {
        assert_eq!(key, same);
        assert!(
            after >= before,
            "{key}: sequence {before} forgotten: {after}"
        );
    }
    let first_answer = time_until("the relay to answer again", || async {
        let answer = http
            .get(format!("{esplora}/blocks/tip/height"))
            .send()
            .await;
        answer.is_ok_and(|a| a.status() == StatusCode::OK)
    })
    .await;
    let all_served = time_until("the relay to serve from both servers again", || {
        serving(&operator, &keys)
    })
    .await;
    let answered_after = clean_traffic(&http, &esplora, &node, 200).await;
    let other_report = through_other.finish().await;
    other_report.assert_no_failures("the other proxy while the first was down");
    // Heartbeats go on being accepted: the servers stand admitted at the restarted proxy.
    let (kept_later, _, _) = directory(&operator).await;
    assert_eq!(kept_later, kept, "the directory moved after the restart");
    figures(
        "proxy-kill9",
        &[
            ("failed", "0".to_owned()),
            ("answered_before", answered_before.to_string()),
            ("answered_after", answered_after.to_string()),
            (
                "other_proxy_answered_meanwhile",
                other_report.answered.to_string(),
            ),
            ("restart_to_api_ms", ms(up)),
            ("restart_to_first_answer_ms", ms(up + first_answer)),
            (
                "restart_to_all_served_ms",
                ms(up + first_answer + all_served),
            ),
            ("directory", "intact".to_owned()),
            ("servers", kept.len().to_string()),
            ("proxy_rss_kib", rss_kib.to_string()),
        ],
    );
    for server in servers {
        server.stop().await;
    }
    other.stop().await;
}
