//! The rot-proxy binary as operators start it: `--version`, settings from the environment,
//! JSON logs, and a clean exit on SIGTERM.

use std::time::Duration;

use rot_harness::{ApiClient, ServiceProcess};

const BINARY: &str = env!("CARGO_BIN_EXE_rot-proxy");

#[test]
fn version_names_the_build() {
    assert_eq!(
        ServiceProcess::version(BINARY).unwrap(),
        format!(
            "rot-proxy {}
",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[tokio::test]
async fn the_binary_logs_json_serves_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let mut proxy = ServiceProcess::start(
        BINARY,
        &[
            ("ROT_PROXY_COINS", "LTC:regtest"),
            ("ROT_PROXY_LISTEN_ADDR", "127.0.0.1:0"),
            ("ROT_PROXY_DATA_DIR", &data_dir),
        ],
    )
    .unwrap();
    let serving = proxy
        .wait_for_log("serving the proxy API", Duration::from_secs(30))
        .unwrap();
    assert_eq!(serving["level"], "INFO");
    let api = ApiClient::new(&format!(
        "http://{}",
        serving["fields"]["addr"].as_str().unwrap()
    ));
    let coins = api.get_json("/v1/coins").await.unwrap();
    assert_eq!(coins["coins"][0]["id"], "ltc-regtest");

    let (exit, logs) = proxy.terminate(Duration::from_secs(30)).unwrap();
    assert!(exit.success(), "{exit}");
    assert!(
        logs.iter()
            .any(|entry| entry["fields"]["message"] == "shutting down"),
        "{logs:?}"
    );
}
