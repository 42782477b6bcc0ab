//! A slow server and a flapping one, each a real rot-server behind a forwarder it registers
//! the URL of. The slow one loses its share of the traffic within about a request's delay;
//! the flapping one is ejected on each outage, for longer each time, and never warned.
//! Wallets see no failed request either way.

use std::time::{Duration, Instant};

use rot_harness::eventually;
use rot_harness::ring::*;
use rot_proto::PublicKey;
use rot_proto::message::ServerStatus;

use crate::{Forwarded, WALLETS, share};

/// The slow server's added delay per request.
const DELAY: Duration = Duration::from_millis(300);
/// Ejections of the flapping server to see.
const EJECTIONS: usize = 3;
/// Most outages tried for them: an outage the probe notices before relayed requests fail
/// ejects nothing.
const MAX_OUTAGES: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_flapping_servers_cost_wallets_nothing() {
    let node = Node::funded().await;
    // Probes once a second, so that relayed requests, not probes, find most outages.
    let proxy = Proxy::start(&[
        ("ROT_PROXY_PROBE_INTERVAL_MS", "1000"),
        ("ROT_PROXY_EJECT_CONSECUTIVE_FAILURES", "2"),
        ("ROT_PROXY_EJECT_BASE_SECS", "1"),
        ("ROT_PROXY_EJECT_MAX_SECS", "8"),
    ])
    .await;
    // All four behind forwarders, so the extra hop costs each the same.
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(Forwarded::start(&proxy, &node.node).await);
    }
    let keys: Vec<PublicKey> = servers.iter().map(|s| s.key).collect();
    let (slow, flapping) = (&servers[2], &servers[3]);
    proxy
        .wait_serving(&keys, Some(node.node.tip().await.unwrap()))
        .await;
    let paths = node.wallet_questions();
    let traffic = proxy.wallets(&paths, WALLETS).await;

    // Slow: its share falls from about a quarter (less when the picks' latency samples are
    // unlucky on a loaded machine) to almost nothing.
    let (before, counted) = share(&proxy, &slow.key, Duration::from_secs(3)).await;
    assert!(before >= 0.05, "{before} of {counted} before the delay");
    slow.forwarder.set_delay(DELAY);
    let slowed = Instant::now();
    let mut shifted = None;
    for _ in 0..40 {
        let (now, counted) = share(&proxy, &slow.key, Duration::from_millis(250)).await;
        if now < 0.05 && counted >= 10 {
            shifted = Some(slowed.elapsed());
            break;
        }
    }
    let (after, counted) = share(&proxy, &slow.key, Duration::from_secs(3)).await;
    let view = proxy.relay_view().await;
    let latency_ms = view["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server_key"] == serde_json::json!(slow.key))
        .map(|s| s["latency_us"].as_u64().unwrap() / 1000);
    slow.forwarder.set_delay(Duration::ZERO);
    let report = traffic.finish().await;
    eprintln!(
        "faults: slow: delay_ms={} share_before={before:.3} share_after={after:.3} \
         shifted_ms={} its_latency_ms={} answered={} failed={} slowest_ms={}",
        DELAY.as_millis(),
        shifted.map_or("none".to_owned(), |d| d.as_millis().to_string()),
        latency_ms.map_or("none".to_owned(), |ms| ms.to_string()),
        report.answered,
        report.failures.len(),
        report.slowest.as_millis()
    );
    assert!(
        shifted.is_some(),
        "the relay did not shift load away within 10 s"
    );
    assert!(
        after < 0.05 && after <= before / 4.0,
        "{after} of {counted} while slow, {before} before"
    );
    report.assert_no_failures("slow");
    // One delayed answer moves the average a quarter of the way.
    let sampled = DELAY.as_millis() as u64 / 4;
    assert!(latency_ms >= Some(sampled), "its delay was never seen");

    // Flapping: each outage ejects it, for longer each time; unreachable is not misbehaviour.
    let traffic = proxy.wallets(&paths, WALLETS).await;
    let mut ejections = Vec::new();
    let mut to_eject = Vec::new();
    let mut back = Vec::new();
    let mut outages = 0;
    while ejections.len() < EJECTIONS && outages < MAX_OUTAGES {
        proxy.wait_serving(&keys, None).await;
        // It gets traffic again before it goes away.
        let used = proxy.requests().await[&flapping.key];
        eventually("the flapping server to be used", PATIENCE, || async {
            (proxy.requests().await[&flapping.key] >= used + 5).then_some(())
        })
        .await;
        let seen = proxy.incidents_of(&flapping.key).await.len();
        flapping.forwarder.set_on(false);
        outages += 1;
        let off = Instant::now();
        while off.elapsed() < Duration::from_secs(3) {
            if let Some(ejection) = proxy.incidents_of(&flapping.key).await.get(seen) {
                to_eject.push(off.elapsed().as_millis());
                assert_eq!(ejection["check"], "relay-failures", "{ejection:#}");
                assert_eq!(ejection["consequence"], "ejection", "{ejection:#}");
                ejections.push(ejection["evidence"]["ejected_for_secs"].as_u64().unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        flapping.forwarder.set_on(true);
        let on = Instant::now();
        proxy.wait_serving(&keys, None).await;
        back.push(on.elapsed().as_millis());
    }
    assert_eq!(ejections.len(), EJECTIONS, "{outages} outages");
    let report = traffic.finish().await;
    report.assert_no_failures("flapping");
    assert!(
        ejections.windows(2).all(|pair| pair[1] > pair[0]),
        "ejections did not grow: {ejections:?} s"
    );
    let entry = proxy.entry(&flapping.key).await.expect("still listed");
    assert_eq!(entry.status, ServerStatus::Admitted, "{entry:?}");
    assert_eq!((entry.warnings, entry.exclusions), (0, 0), "{entry:?}");
    let incidents = proxy.incidents_of(&flapping.key).await;
    assert!(
        incidents.iter().all(|i| i["consequence"] == "ejection"),
        "{incidents:#?}"
    );
    eprintln!(
        "faults: flapping: outages={outages} ejected_for_secs={ejections:?} \
         off_to_ejection_ms={to_eject:?} on_to_serving_ms={back:?} answered={} failed=0 \
         slowest_ms={} warnings=0",
        report.answered,
        report.slowest.as_millis()
    );
    proxy.stop().await;
}
