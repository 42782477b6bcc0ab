//! The `rot` command line end to end, run as the real binary against REAL rot-servers over a
//! REAL regtest litecoind: `check` on an honest server, a lying one and an unreachable one;
//! `balance` and `utxo` against the node's own view, cross-checked; `proxies` from a signed,
//! cached bootstrap list; `servers` from a proxy's directory found through that list (a
//! stand-in proxy); `balance` through the relay of a REAL rot-proxy found in the list, which
//! must prove it holds the key the list names.
#![cfg(feature = "cli")]

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use rot_bootstrap::demo::{DemoSpec, create_demo_ring};
use rot_bootstrap::{ProxyEntry, unix_now};
use rot_harness::{AddressType, ChainView, Litecoind, RotProxy, RotServer};
use rot_proto::conformance::{Report, Verdict, check};
use rot_proto::message::{BackendKind, DirectoryEntry, ServerStatus};
use rot_proto::{Address, Coins, Hash256, Identity, Network};
use serde_json::{Value, json};

const SYNC: Duration = Duration::from_secs(60);

/// Runs `rot` with `args` in a clean environment: (exit code, stdout, stderr).
async fn rot(args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_rot"))
        .args(args)
        .env_clear()
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Serves `app` on loopback; returns its base URL.
async fn serve(listener: tokio::net::TcpListener, app: Router) -> String {
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A proxy in front of `upstream` that adds 1 LTC to the funded total of every
/// `/address/:a`.
async fn liar(upstream: &str) -> String {
    let (http, upstream) = (reqwest::Client::new(), upstream.to_owned());
    let app = Router::new().fallback(move |uri: Uri| {
        let (http, upstream) = (http.clone(), upstream.clone());
        async move {
            let reply = http.get(format!("{upstream}{uri}")).send().await.unwrap();
            let status = StatusCode::from_u16(reply.status().as_u16()).unwrap();
            let mut body = reply.bytes().await.unwrap().to_vec();
            let segments: Vec<&str> = uri.path().split('/').collect();
            if status == StatusCode::OK && segments.len() == 3 && segments[1] == "address" {
                let mut stats: Value = serde_json::from_slice(&body).unwrap();
                let funded = stats["chain_stats"]["funded_txo_sum"].as_u64().unwrap();
                stats["chain_stats"]["funded_txo_sum"] = json!(funded + 100_000_000);
                body = serde_json::to_vec(&stats).unwrap();
            }
            (status, body)
        }
    });
    serve(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        app,
    )
    .await
}

/// A loopback URL where nothing listens.
fn closed() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A node with mature coins, some payments in its last block, and a server following it.
async fn node_and_server() -> (Litecoind, rot_harness::Wallet, String, RotServer) {
    let node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("cli").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();
    for kind in [AddressType::Legacy, AddressType::P2shSegwit] {
        let address = wallet.new_address(kind).await.unwrap();
        wallet.send_to(&address, 120_000_000).await.unwrap();
    }
    node.mine(1, &miner).await.unwrap();
    let server = RotServer::start(&node).await.unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();
    (node, wallet, miner, server)
}

#[tokio::test]
async fn check_exits_by_verdict() {
    let (_node, _wallet, _miner, server) = node_and_server().await;
    let regtest = ["--coin", "LTC", "--network", "regtest", "--seed", "5"];

    let (code, out, err) = rot(&[&["check", server.url.as_str()][..], &regtest].concat()).await;
    assert_eq!(code, 0, "{out}{err}");
    for name in check::ALL {
        assert!(out.contains(&format!("PASS  {name}")), "{name}: {out}");
    }
    assert!(out.contains("verdict: conforms"), "{out}");
    assert!(out.contains("seed 5"), "{out}");

    let (code, out, _) = rot(&["check", &server.url, "--coin", "ltc-regtest", "--json"]).await;
    assert_eq!(code, 0);
    let report: Report = serde_json::from_str(&out).unwrap();
    assert_eq!(report.verdict(), Verdict::Pass);

    let lying = liar(&server.url).await;
    let (code, out, err) = rot(&[&["check", lying.as_str()][..], &regtest].concat()).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL  address-balance"), "{out}");
    assert!(out.contains("evidence: {"), "{out}");
    assert!(out.contains("PASS  transactions"), "{out}");

    let down = closed();
    let (code, out, _) = rot(&[&["check", down.as_str()][..], &regtest].concat()).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("DOWN  info-signature"), "{out}");
    assert!(!out.contains("FAIL "), "{out}");

    let (code, _, err) = rot(&["check", &server.url, "--coin", "nocoin"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("unknown coin"), "{err}");
}

/// `sat` as `rot` prints amounts.
fn coins(sat: u64) -> String {
    format!("{}.{:08}", sat / 100_000_000, sat % 100_000_000)
}

#[tokio::test]
async fn balance_and_utxo_match_the_node_and_cross_checks_catch_a_liar() {
    let (node, wallet, miner, a) = node_and_server().await;
    let b = RotServer::start(&node).await.unwrap();
    // An address outside the wallet: two confirmed outputs and one in the mempool.
    let profile = Coins::builtin()
        .get("LTC", Network::Regtest)
        .unwrap()
        .clone();
    let script = [&[0x76, 0xa9, 0x14][..], &[0x44; 20], &[0x88, 0xac]].concat();
    let address = Address::from_script(&profile, &script).unwrap().to_string();
    for (amount, mine) in [(40_000_000, true), (30_000_000, true), (25_000_000, false)] {
        wallet.send_to(&address, amount).await.unwrap();
        if mine {
            node.mine(1, &miner).await.unwrap();
        }
    }
    a.wait_synced(&node, SYNC).await.unwrap();
    b.wait_synced(&node, SYNC).await.unwrap();
    let view = ChainView::load(&node).await.unwrap();
    let script_hex: String = script.iter().map(|b| format!("{b:02x}")).collect();
    let (chain, mempool) = (
        view.stats(&script_hex, true),
        view.stats(&script_hex, false),
    );
    let confirmed = chain.funded_txo_sum - chain.spent_txo_sum;
    let unconfirmed = mempool.funded_txo_sum - mempool.spent_txo_sum;

    let regtest = ["--coin", "ltc-regtest"];
    let (code, out, err) = rot(&[
        &["balance", address.as_str(), "--server", a.url.as_str()][..],
        &regtest,
    ]
    .concat())
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("confirmed     {} LTC", coins(confirmed))),
        "{out}"
    );
    assert!(
        out.contains(&format!("unconfirmed  +{} LTC", coins(unconfirmed))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "total         {} LTC",
            coins(confirmed + unconfirmed)
        )),
        "{out}"
    );

    let (code, out, err) = rot(&[
        &["utxo", address.as_str(), "--server", a.url.as_str()][..],
        &regtest,
    ]
    .concat())
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let mut listed = 0;
    for tx in &view.txs {
        for (vout, output) in tx.outputs.iter().enumerate() {
            if let Some((s, value)) = output
                && *s == script_hex
            {
                let place = tx
                    .block
                    .map_or_else(|| "unconfirmed".to_owned(), |(h, _)| format!("height {h}"));
                let line = format!("{}:{vout}  {}  {place}", tx.txid, coins(*value));
                assert!(out.contains(&line), "{line} in {out}");
                listed += 1;
            }
        }
    }
    assert_eq!(listed, 3);
    assert!(out.starts_with("3 unspent output(s)"), "{out}");

    // Two servers agree, and each confirmed output is proven against the other's headers.
    let both = ["--server", a.url.as_str(), "--server", b.url.as_str()];
    let (code, out, err) = rot(&[
        &["utxo", address.as_str(), "--cross-check", "2"][..],
        &both,
        &regtest,
    ]
    .concat())
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("proven against").count(), 2, "{out}");
    let (code, out, _) = rot(&[
        &["balance", address.as_str(), "--cross-check", "2"][..],
        &both,
        &regtest,
    ]
    .concat())
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("proven        2 of 2 confirmed output(s)"),
        "{out}"
    );

    // A liar among them is caught.
    let lying = liar(&a.url).await;
    let (code, out, _) = rot(&[
        &["balance", address.as_str(), "--cross-check", "2"][..],
        &["--server", lying.as_str(), "--server", b.url.as_str()],
        &regtest,
    ]
    .concat())
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DISAGREEMENT about totals of"), "{out}");

    // Asking for more servers than given, and a wrong address, are usage errors.
    let (code, _, err) = rot(&[
        &["balance", address.as_str(), "--cross-check", "3"][..],
        &both,
        &regtest,
    ]
    .concat())
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("needs 3"), "{err}");
    let (code, _, err) = rot(&["balance", &address, "--server", &a.url]).await;
    assert_eq!(code, 2);
    assert!(err.contains("does not belong to ltc"), "{err}");
}

#[tokio::test]
async fn proxies_come_from_the_verified_cached_list_and_servers_from_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let proxy_key = Identity::from_seed([5; 32]).public_key();
    let ring = create_demo_ring(
        dir.path(),
        &DemoSpec {
            maintainers: 3,
            threshold: 2,
            proxies: vec![(
                "ltc-regtest".to_owned(),
                ProxyEntry {
                    url: proxy_url.clone(),
                    key: proxy_key,
                    team: "CLI Team".to_owned(),
                    contact: "cli@example.org".to_owned(),
                },
            )],
            valid_secs: 86_400,
        },
        unix_now(),
    )
    .unwrap();
    // The stand-in proxy serves the list and a directory of one server.
    let server_key = Identity::from_seed([6; 32]).public_key();
    let entry = DirectoryEntry {
        server_key,
        status: ServerStatus::Admitted,
        height: 321,
        tip_hash: Hash256([7; 32]),
        last_heartbeat_age_secs: 4,
        latency_ms: Some(12),
        software: "rot-server/9.9.9".to_owned(),
        backend: BackendKind::Electrum,
        warnings: 1,
        exclusions: 0,
        url: Some("http://127.0.0.1:9".to_owned()),
    };
    let list = ring.list.to_json();
    let servers = json!({"coin": "ltc-regtest", "servers": [entry]});
    let app = Router::new()
        .route("/v1/bootstrap", get(move || async move { list }))
        .route(
            "/v1/coins/ltc-regtest/servers",
            get(move || async move { axum::Json(servers) }),
        );
    serve(listener, app).await;

    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let pins = path(&ring.pins_path);
    let cache = path(&dir.path().join("cache").join("list.json"));
    let mirror = format!("{proxy_url}/v1/bootstrap");
    let list_args = ["--pins", pins.as_str(), "--cache", cache.as_str()];

    let (code, out, err) = rot(&[
        &["proxies", "ltc-regtest", "--mirror", mirror.as_str()][..],
        &list_args,
    ]
    .concat())
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&proxy_url), "{out}");
    assert!(out.contains(&proxy_key.to_string()), "{out}");
    assert!(out.contains("CLI Team"), "{out}");
    assert!(Path::new(&cache).exists());

    // Offline, the cached list answers; no proxies for another coin.
    let (code, out, _) =
        rot(&[&["proxies", "ltc-regtest", "--offline"][..], &list_args].concat()).await;
    assert_eq!(code, 0);
    assert!(out.contains(&proxy_url), "{out}");
    let (code, out, _) = rot(&[&["proxies", "btc", "--offline"][..], &list_args].concat()).await;
    assert_eq!(code, 0);
    assert!(out.contains("0 proxy(ies) for btc"), "{out}");

    // The directory of the proxy the list names.
    let (code, out, err) =
        rot(&[&["servers", "ltc-regtest", "--offline"][..], &list_args].concat()).await;
    assert_eq!(code, 0, "{out}{err}");
    for expected in [
        server_key.to_string(),
        "height 321".to_owned(),
        "rot-server/9.9.9 (electrum backend)".to_owned(),
        "status admitted".to_owned(),
        "latency 12 ms".to_owned(),
    ] {
        assert!(out.contains(&expected), "{expected} in {out}");
    }

    // A list signed by other maintainers than the pinned ones is refused.
    let other = tempfile::tempdir().unwrap();
    let stranger = create_demo_ring(
        other.path(),
        &DemoSpec {
            maintainers: 1,
            threshold: 1,
            proxies: Vec::new(),
            valid_secs: 86_400,
        },
        unix_now(),
    )
    .unwrap();
    let stranger_pins = path(&stranger.pins_path);
    let fresh_cache = path(&other.path().join("cache.json"));
    let (code, _, err) = rot(&[
        "proxies",
        "ltc-regtest",
        "--mirror",
        &mirror,
        "--pins",
        &stranger_pins,
        "--cache",
        &fresh_cache,
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("warning: mirror"), "{err}");

    // Without pins there is nothing to trust.
    let (code, _, err) = rot(&["proxies", "ltc-regtest", "--mirror", &mirror]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--pins"), "{err}");
}

#[tokio::test]
async fn balance_through_the_relay_of_the_proxy_the_list_names() {
    let (node, wallet, miner, _direct) = node_and_server().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("proxy.key");
    let proxy_key = Identity::load_or_generate(&key_file).unwrap().public_key();
    let proxy = RotProxy::start_with(
        None,
        &[
            ("ROT_PROXY_KEY_FILE", key_file.to_str().unwrap()),
            ("ROT_PROXY_PROBE_INTERVAL_MS", "200"),
        ],
    )
    .await
    .unwrap();
    let server = RotServer::registering_with(&node, &proxy.url)
        .await
        .unwrap();
    let address = wallet.new_address(AddressType::Bech32).await.unwrap();
    wallet.send_to(&address, 77_000_000).await.unwrap();
    node.mine(1, &miner).await.unwrap();
    server.wait_synced(&node, SYNC).await.unwrap();

    // The list names the proxy under its real key; a second list names it under another.
    let ring = |name: &str, key| {
        create_demo_ring(
            &dir.path().join(name),
            &DemoSpec {
                maintainers: 3,
                threshold: 2,
                proxies: vec![(
                    "ltc-regtest".to_owned(),
                    ProxyEntry {
                        url: proxy.url.clone(),
                        key,
                        team: "CLI Team".to_owned(),
                        contact: "cli@example.org".to_owned(),
                    },
                )],
                valid_secs: 86_400,
            },
            unix_now(),
        )
        .unwrap()
    };
    let honest = ring("honest", proxy_key);
    let wrong_key = ring("wrong-key", Identity::generate().unwrap().public_key());
    let balance = |ring: &rot_bootstrap::demo::DemoRing| {
        let list = ring.list_path.to_str().unwrap().to_owned();
        let pins = ring.pins_path.to_str().unwrap().to_owned();
        let cache = dir
            .path()
            .join(format!("{}.cache", ring.list.serial_hint()));
        let address = address.clone();
        let serve_list = list.clone();
        async move {
            // The list reaches the wallet from a plain mirror; the proxy is found in it.
            let text = std::fs::read_to_string(&serve_list).unwrap();
            let mirror = serve(
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                Router::new().route("/list.json", get(move || async move { text })),
            )
            .await;
            rot(&[
                "balance",
                &address,
                "--coin",
                "ltc-regtest",
                "--pins",
                &pins,
                "--mirror",
                &format!("{mirror}/list.json"),
                "--cache",
                cache.to_str().unwrap(),
            ])
            .await
        }
    };

    let started = std::time::Instant::now();
    let out = loop {
        let (code, out, err) = balance(&honest).await;
        if code == 0 {
            break out;
        }
        assert!(
            started.elapsed() < SYNC,
            "the relay never answered: {out}{err}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(out.contains("confirmed     0.77000000 LTC"), "{out}");
    assert!(out.contains(&proxy.url), "the source is named: {out}");

    let (code, out, err) = balance(&wrong_key).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("but the bootstrap list names"), "{err}");
    server.stop().await;
    proxy.stop().await;
}
