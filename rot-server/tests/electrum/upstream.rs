//! The upstream Electrum server's life as the electrum backend sees it: it restarts under
//! traffic (the backend reconnects by itself), it speaks TLS, or it serves another coin
//! (refused at start).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rot_harness::{AddressType, Litecoind};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::common::{Relay, WAIT, electrum_server, electrumx, get, node, pair, same_answer};

/// A little chain: spendable coinbase and one payment to a legacy address.
async fn little_chain(node: &Litecoind) -> String {
    let wallet = node.open_wallet("w").await.unwrap();
    let miner = wallet.new_address(AddressType::Bech32).await.unwrap();
    node.mine(101, &miner).await.unwrap();
    let payee = wallet.new_address(AddressType::Legacy).await.unwrap();
    wallet.send_to(&payee, 25_000_000).await.unwrap();
    node.mine(1, &miner).await.unwrap();
    payee
}

#[tokio::test]
async fn the_backend_reconnects_when_the_upstream_restarts_mid_traffic() {
    let (node, _) = node().await;
    let payee = little_chain(&node).await;
    let first = electrumx().start(&node).await.unwrap();
    let relay = Relay::start(first.address()).await;
    let pair = pair(&node, &format!("tcp://{}", relay.address)).await;
    pair.wait_for_node(&node).await;

    // Wallet traffic all along.
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = {
        let (url, statuses, stop) = (pair.electrum.url.clone(), statuses.clone(), stop.clone());
        let path = format!("{url}/address/{payee}/utxo");
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let (status, _) = get(&path).await;
                statuses.lock().unwrap().push(status);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The server goes away; a block arrives meanwhile; a new server comes up at the address.
    relay.point_to(None);
    drop(first);
    let miner = node
        .open_wallet("w")
        .await
        .unwrap()
        .new_address(AddressType::Bech32)
        .await
        .unwrap();
    node.mine(1, &miner).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during: Vec<u16> = statuses.lock().unwrap().clone();
    let second = electrumx().start(&node).await.unwrap();
    relay.point_to(Some(second.address()));

    pair.wait_for_node(&node).await;
    stop.cancel();
    traffic.await.unwrap();
    let all = statuses.lock().unwrap().clone();
    assert!(
        during.contains(&503),
        "no 503 while the server was away: {during:?}"
    );
    assert!(
        all.iter().all(|s| [200, 502, 503].contains(s)),
        "unexpected answers: {all:?}"
    );
    assert_eq!(all.last(), Some(&200), "{all:?}");
    for path in [
        format!("/address/{payee}"),
        format!("/address/{payee}/utxo"),
        format!("/address/{payee}/txs"),
        "/blocks/tip/hash".to_owned(),
    ] {
        assert_eq!(same_answer(&pair, &path).await, 200, "{path}");
    }
}

#[tokio::test]
async fn tls_upstreams_are_verified_against_the_configured_certificate() {
    let (node, _) = node().await;
    let payee = little_chain(&node).await;
    let electrumx = electrumx().start(&node).await.unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("electrumx.pem");
    std::fs::write(&ca_file, certified.cert.pem()).unwrap();
    let tls_port = tls_relay(
        certified.cert.der().clone(),
        PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()).into(),
        electrumx.address().to_owned(),
    )
    .await;
    let url = format!("ssl://localhost:{tls_port}");

    // Untrusted (the system's roots do not know it): refused at once, naming the setting.
    let error = electrum_server(&node, &url).await.unwrap_err().to_string();
    assert!(error.contains("ROT_ELECTRUM_CA_FILE"), "{error}");

    let server = rot_harness::RotServer::start_with(
        &node,
        None,
        &[
            ("ROT_BACKEND", "electrum"),
            ("ROT_ELECTRUM_URL", &url),
            ("ROT_ELECTRUM_CA_FILE", ca_file.to_str().unwrap()),
        ],
    )
    .await
    .unwrap();
    let (height, _) = node.tip().await.unwrap();
    server.wait_for_height(height, WAIT).await.unwrap();
    let (status, body) = get(&format!("{}/address/{payee}/utxo", server.url)).await;
    assert_eq!(status, 200, "{body:?}");
}

#[tokio::test]
async fn an_upstream_of_another_coin_is_refused_at_start() {
    let (node, _) = node().await;
    // An Electrum server of Bitcoin regtest: ElectrumX itself refuses to index litecoind
    // with COIN=Bitcoin (its genesis check), so a stub answers the handshake instead.
    let bitcoin_regtest = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
    let stub = stub_server(json!({
        "genesis_hash": bitcoin_regtest,
        "protocol_min": "1.4",
        "protocol_max": "1.4",
        "hash_function": "sha256",
        "server_version": "stub 1.0",
        "hosts": {},
        "pruning": null,
    }))
    .await;
    let started = std::time::Instant::now();
    let error = electrum_server(&node, &format!("tcp://{stub}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(bitcoin_regtest), "{error}");
    assert!(error.contains("genesis"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused only after retrying"
    );
}

/// A TLS endpoint with `cert` in front of the plain server at `target`; returns its port.
async fn tls_relay(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    target: String,
) -> u16 {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                }
            });
        }
    });
    port
}

/// An Electrum server that knows only the handshake: `server.version` and `server.features`
/// (answered with `features`). Returns its address.
async fn stub_server(features: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let features = features.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let request: Value = serde_json::from_str(&line).unwrap();
                    let result = match request["method"].as_str() {
                        Some("server.version") => json!(["stub 1.0", "1.4"]),
                        Some("server.features") => features.clone(),
                        _ => Value::Null,
                    };
                    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
                    let mut bytes = answer.to_string().into_bytes();
                    bytes.push(b'\n');
                    if write.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}
