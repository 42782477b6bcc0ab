//! The rot-server binary as operators start it: `--version`, settings from the environment,
//! JSON logs, `/metrics` on its listener, and a clean exit on SIGTERM.

use std::time::{Duration, Instant};

use rot_harness::{AddressType, ApiClient, Litecoind, ServiceProcess, rot_server_settings};

const BINARY: &str = env!("CARGO_BIN_EXE_rot-server");

#[test]
fn version_names_the_build() {
    assert_eq!(
        ServiceProcess::version(BINARY).unwrap(),
        format!(
            "rot-server {}
",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[tokio::test]
async fn the_binary_logs_json_serves_metrics_and_stops_on_sigterm() {
    let node = Litecoind::start().await.unwrap();
    let wallet = node.create_wallet("w").await.unwrap();
    node.mine(5, &wallet.new_address(AddressType::Bech32).await.unwrap())
        .await
        .unwrap();
    let (height, _) = node.tip().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let settings = rot_server_settings(&node, data.path());
    let envs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let mut server = ServiceProcess::start(BINARY, &envs).unwrap();
    let config = server
        .wait_for_log("effective configuration", Duration::from_secs(30))
        .unwrap();
    assert_eq!(config["level"], "INFO");
    let serving = server
        .wait_for_log(
            "serving the Esplora API and /rot/v1",
            Duration::from_secs(60),
        )
        .unwrap();
    let api = ApiClient::new(&format!(
        "http://{}",
        serving["fields"]["addr"].as_str().unwrap()
    ));
    let indexed = format!("\nrot_server_index_height {height}\n");
    let started = Instant::now();
    while !api.get_text("/metrics").await.unwrap().contains(&indexed) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the index never reached {height}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (exit, logs) = server.terminate(Duration::from_secs(30)).unwrap();
    assert!(exit.success(), "{exit}");
    assert!(
        logs.iter()
            .any(|entry| entry["fields"]["message"] == "shutting down"),
        "{logs:?}"
    );
}
