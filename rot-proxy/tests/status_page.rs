//! The status page as people see it: a real regtest litecoind, two real rot-servers
//! registered with a real rot-proxy, wallet traffic through its relay, and the page rendered
//! by headless Chromium (Debian's `chromium`), whose DOM is checked after the page has
//! refreshed itself once. The screenshot is kept in `target/test-artifacts/status-page.png`.
//! The same ring's `/metrics` must count what happened: the relayed requests, probes, the
//! healthy servers and the agreed tip.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rot_harness::{
    ADMIN_TOKEN, AddressType, ApiClient, Litecoind, RotProxy, RotServer, eventually,
};
use rot_proxy::status::SAMPLE_EVERY;

const COIN: &str = "ltc-regtest";

/// Runs headless Chromium on `url` with `args` (a fresh profile, no network but loopback);
/// returns its stdout.
async fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1100",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("chromium runs (Debian package `chromium`; .ci/run installs it)");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Waits until the relay serves from `count` healthy servers on the agreed tip (what the page
/// shows), as the operator view says.
async fn wait_on_tip(proxy: &ApiClient, count: usize) {
    let operator = proxy.clone().with_bearer(ADMIN_TOKEN);
    let path = format!("/v1/admin/coins/{COIN}/relay");
    eventually(
        &format!("{count} servers on the agreed tip"),
        Duration::from_secs(60),
        || async {
            let view = operator.get_json(&path).await.ok()?;
            let on_tip = view["servers"]
                .as_array()?
                .iter()
                .filter(|s| s["healthy"] == true && s["on_agreed_tip"] == true)
                .count();
            (on_tip >= count).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_status_page_and_metrics_show_the_ring() {
    let node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("w").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();
    let proxy = RotProxy::start_with(None, &[("ROT_PROXY_PROBE_INTERVAL_MS", "200")])
        .await
        .unwrap();
    let mut servers = Vec::new();
    for _ in 0..2 {
        servers.push(
            RotServer::registering_with(&node, &proxy.url)
                .await
                .unwrap(),
        );
    }
    let api = ApiClient::new(&proxy.url);
    wait_on_tip(&api, 2).await;

    // Wallet traffic through the relay across two chart samples.
    let relay = format!("/v1/coins/{COIN}/esplora/address/{miner}/utxo");
    let until = Instant::now() + SAMPLE_EVERY * 2 + Duration::from_secs(1);
    let mut relayed = 0;
    while Instant::now() < until {
        if api.get(&relay).await.unwrap().status == 200 {
            relayed += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(relayed > 20, "only {relayed} relayed requests succeeded");

    wait_on_tip(&api, 2).await;
    // The DOM after the page has loaded and refreshed itself once (virtual time).
    let url = format!("{}/", proxy.url);
    let dom = chromium(&url, &["--virtual-time-budget=7000", "--dump-dom"]).await;
    assert!(dom.contains(&format!("data-coin=\"{COIN}\"")), "{dom}");
    assert!(
        dom.contains("<b class=\"healthy\">2</b> healthy server(s)"),
        "{dom}"
    );
    for server in &servers {
        let key = server.api().get_json("/rot/v1/info").await.unwrap()["body"]["server_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let row_start = dom
            .find(&format!("data-server=\"{key}\""))
            .unwrap_or_else(|| panic!("no row for {key}: {dom}"));
        let row = &dom[row_start..dom[row_start..].find("</tr>").unwrap() + row_start];
        assert!(row.contains("status-admitted\">admitted"), "{row}");
        assert!(row.contains("on the agreed tip"), "{row}");
        assert!(row.contains("class=\"height\">101<"), "{row}");
        assert!(row.contains("rot-server/"), "{row}");
    }
    assert!(
        dom.contains("agreed tip <b class=\"tip-height\">101</b>"),
        "{dom}"
    );
    // The request-rate chart has points and a non-zero latest value.
    let chart_start = dom.find("chart request-rate").expect("request chart");
    let chart = &dom[chart_start..chart_start + dom[chart_start..].find("</figure>").unwrap()];
    assert!(!chart.contains("collecting"), "{chart}");
    assert!(
        chart.contains("points=\"") && chart.contains(','),
        "{chart}"
    );
    assert!(!chart.contains("<b>0.00 /s</b>"), "{chart}");
    assert!(dom.contains("No other proxy known."), "{dom}");

    // A screenshot for people to look at.
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &url,
        &[
            "--virtual-time-budget=2000",
            &format!("--screenshot={}", shot.display()),
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    // Prometheus metrics of the same ring.
    let metrics = api.get_text("/metrics").await.unwrap();
    let value = |prefix: &str, labels: &[&str]| -> f64 {
        metrics
            .lines()
            .find(|line| line.starts_with(prefix) && labels.iter().all(|l| line.contains(l)))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} {labels:?} in:\n{metrics}"))
    };
    let coin = format!("coin=\"{COIN}\"");
    assert_eq!(
        value(
            "rot_proxy_relay_duration_seconds_count{",
            &[&coin, "class=\"2xx\""]
        ),
        f64::from(relayed)
    );
    assert_eq!(value("rot_proxy_healthy_servers{", &[&coin]), 2.0);
    assert_eq!(value("rot_proxy_agreed_tip_height{", &[&coin]), 101.0);
    assert_eq!(
        value("rot_proxy_servers{", &[&coin, "status=\"admitted\""]),
        2.0
    );
    assert!(value("rot_proxy_probes_total{", &[&coin, "outcome=\"reachable\""]) >= 2.0);
    assert!(
        value(
            "rot_http_requests_total{",
            &["route=\"/\"", "status=\"200\""]
        ) >= 2.0
    );

    for server in servers {
        server.stop().await;
    }
    proxy.stop().await;
}
