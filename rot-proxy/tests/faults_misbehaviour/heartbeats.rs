//! Forged heartbeats: a registered server's captured heartbeat sent again, and heartbeats
//! signed by a fresh key naming another server's URL. Each is refused with a 4xx and the
//! shared error body, and the directory stays as it was.

use std::collections::BTreeMap;
use std::time::Instant;

use reqwest::StatusCode;
use rot_harness::liar::{Liar, heartbeat};
use rot_harness::ring::*;
use rot_harness::{RotServer, eventually};
use rot_proto::message::{Heartbeat, ServerStatus};
use rot_proto::{Identity, PublicKey, Signed};
use serde_json::Value;

/// Sends `signed` as a heartbeat, which must be refused: the status, the error code and
/// message, and how long the answer took.
async fn send(proxy: &Proxy, signed: &Signed<Heartbeat>) -> (StatusCode, String, String, u128) {
    let started = Instant::now();
    let response = proxy
        .http
        .post(format!("{}/v1/heartbeat", proxy.url))
        .json(signed)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let took = started.elapsed().as_millis();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "not the shared error body: {body:#}");
    let code = body["error"]["code"].as_str().unwrap().to_owned();
    assert!(status.is_client_error(), "{status} {body:#}");
    (status, code, message.to_owned(), took)
}

/// What the directory says about every listed server (its URL from the operator view), minus
/// what heartbeats refresh.
async fn directory(proxy: &Proxy) -> BTreeMap<PublicKey, (Value, ServerStatus, u64)> {
    let mut servers = BTreeMap::new();
    for entry in proxy.listed().await {
        let key = entry.server_key;
        let record = proxy.admin(&format!("/v1/admin/servers/{key}")).await;
        let url = record["record"]["url"].clone();
        servers.insert(key, (url, entry.status, entry.warnings + entry.exclusions));
    }
    servers
}

/// `liar` is registered and heartbeating; `honest` is another registered server; `stranger`
/// is a real server not registered (it signs with its own key).
pub async fn replays_and_usurpers_are_refused(
    proxy: &Proxy,
    liar: &Liar,
    honest: &PublicKey,
    stranger: &RotServer,
) {
    let before = directory(proxy).await;
    let seq = |beat: &Signed<Heartbeat>| beat.body()["seq"].as_u64().unwrap();

    // Replayed: a heartbeat captured, then sent again once a newer one went out.
    let captured = eventually("a heartbeat to capture", PATIENCE, || async {
        liar.last_heartbeat()
    })
    .await;
    let newer = eventually("a newer heartbeat", PATIENCE, || async {
        liar.last_heartbeat().filter(|b| seq(b) > seq(&captured))
    })
    .await;
    let (status, replayed, _, replay_ms) = send(proxy, &captured).await;
    assert_eq!(
        (status, replayed.as_str()),
        (StatusCode::CONFLICT, "replayed")
    );
    let record = proxy
        .admin(&format!("/v1/admin/servers/{}", liar.key()))
        .await;
    assert!(
        record["record"]["last_seq"].as_u64().unwrap() >= seq(&newer),
        "{record:#}"
    );

    // A fresh key claiming a live server's URL, then a URL whose server signs with its own.
    let usurper = Identity::from_seed([0x55; 32]);
    let info = liar.info().await.unwrap();
    let honest_url = before[honest].0.as_str().expect("the honest server's URL");
    let claim = heartbeat(&usurper, &info, honest_url, 1).unwrap();
    let (live_status, live, why, live_ms) = send(proxy, &claim).await;
    assert!(
        why.contains(&honest.to_string()),
        "not refused for the holder: {why}"
    );
    let claim = heartbeat(&usurper, &info, &stranger.url, 2).unwrap();
    let (other_status, other, why, other_ms) = send(proxy, &claim).await;
    let signer = key_of(stranger).await.to_string();
    assert!(
        why.contains(&signer),
        "not refused for the key at the URL: {why}"
    );

    let after = directory(proxy).await;
    assert_eq!(after, before, "the directory changed");
    assert!(proxy.entry(&usurper.public_key()).await.is_none());
    eprintln!(
        "faults: heartbeats: replay={}/{replayed} replay_ms={replay_ms} \
         live_url_claim={}/{live}:url_taken live_url_claim_ms={live_ms} \
         other_key_url_claim={}/{other}:key_mismatch other_key_url_claim_ms={other_ms} \
         directory=unchanged",
        status.as_u16(),
        live_status.as_u16(),
        other_status.as_u16(),
    );
}
