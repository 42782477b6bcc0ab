//! Stand-ins in front of real servers: a lying proxy that rewrites one kind of answer of an
//! honest server, and a proxy relay (standing in for rot-proxy's, which is not written yet)
//! that spreads requests over several servers and names the answering one in `X-Rot-Server`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rot_proto::message::{ErrorBody, ErrorCode, ServerInfo, capability};
use rot_proto::transport::SERVER_HEADER;
use rot_proto::{Hash256, Identity, PublicKey, Signed};
use serde_json::{Value, json};

/// What a lying proxy changes in the server's answers.
#[derive(Debug, Clone)]
pub enum Lie {
    /// Adds to the funded total of every `/address/:a`.
    Balance,
    /// Replaces the first sibling of every merkle proof (adds one to an empty branch).
    MerkleProof,
    /// Names the tip's parent at `/blocks/tip/hash`.
    TipHash,
    /// Re-signs the server info with another key, leaving the server's key in the body.
    InfoKey,
    /// Poses as a server with an Electrum backend: 501 for block txid lists, spent-by and the
    /// mempool list, and an info without those capabilities, re-signed with the server's own
    /// key.
    ElectrumLike(Box<Identity>),
}

#[derive(Debug)]
struct Upstream {
    url: String,
    key: Option<PublicKey>,
}

#[derive(Debug)]
struct Fake {
    http: reqwest::Client,
    upstreams: Vec<Upstream>,
    next: AtomicUsize,
    lie: Option<Lie>,
    /// Path prefix of the relayed API.
    prefix: String,
    /// The answers of `/v1/coins` and `/v1/coins/:coin/servers`, for a proxy.
    directory: Option<(String, Value, Value)>,
}

/// A lying proxy in front of the server at `upstream`; returns its base URL.
pub async fn liar(upstream: &str, lie: Lie) -> String {
    serve(Fake {
        http: reqwest::Client::new(),
        upstreams: vec![Upstream {
            url: upstream.to_owned(),
            key: None,
        }],
        next: AtomicUsize::new(0),
        lie: Some(lie),
        prefix: String::new(),
        directory: None,
    })
    .await
}

/// A proxy for `coin_id` relaying to `servers` (base URL, key) in turn and listing them in
/// its directory; returns its base URL.
pub async fn proxy(coin_id: &str, coin: Value, servers: &[(String, PublicKey)]) -> String {
    let entries: Vec<Value> = servers
        .iter()
        .map(|(url, key)| {
            json!({"server_key": key, "status": "admitted", "height": 0,
                   "tip_hash": Hash256::default(), "last_heartbeat_age_secs": 1,
                   "latency_ms": 1, "software": "rot-server", "backend": "native",
                   "warnings": 0, "exclusions": 0, "url": url})
        })
        .collect();
    serve(Fake {
        http: reqwest::Client::new(),
        upstreams: servers
            .iter()
            .map(|(url, key)| Upstream {
                url: url.clone(),
                key: Some(*key),
            })
            .collect(),
        next: AtomicUsize::new(0),
        lie: None,
        prefix: format!("/v1/coins/{coin_id}/esplora"),
        directory: Some((
            coin_id.to_owned(),
            json!({"coins": [coin]}),
            json!({"coin": coin_id, "servers": entries}),
        )),
    })
    .await
}

async fn serve(fake: Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(handle).with_state(Arc::new(fake));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn handle(State(fake): State<Arc<Fake>>, uri: Uri) -> Response {
    let path = uri.path();
    if let Some((coin, coins, servers)) = &fake.directory {
        if path == "/v1/coins" {
            return axum::Json(coins.clone()).into_response();
        }
        if path == format!("/v1/coins/{coin}/servers") {
            return axum::Json(servers.clone()).into_response();
        }
    }
    let Some(rest) = path.strip_prefix(fake.prefix.as_str()) else {
        return error(StatusCode::NOT_FOUND, ErrorCode::NotFound);
    };
    if let Some(Lie::ElectrumLike(_)) = &fake.lie
        && ((rest.starts_with("/block/") && rest.ends_with("/txids"))
            || rest.contains("/outspend")
            || rest == "/mempool/txids")
    {
        return error(StatusCode::NOT_IMPLEMENTED, ErrorCode::NotImplemented);
    }
    let upstream = &fake.upstreams[fake.next.fetch_add(1, Ordering::SeqCst) % fake.upstreams.len()];
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let answer = fake
        .http
        .get(format!("{}{rest}{query}", upstream.url))
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|v| HeaderValue::from_bytes(v.as_bytes()).unwrap());
    let mut body = answer.bytes().await.unwrap().to_vec();
    if let (Some(lie), StatusCode::OK) = (&fake.lie, status) {
        body = rewrite(lie, rest, body, &fake.http, &upstream.url).await;
    }
    let mut response = Response::builder().status(status);
    if let Some(content_type) = content_type {
        response = response.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(key) = upstream.key {
        response = response.header(SERVER_HEADER, key.to_string());
    }
    response.body(Body::from(body)).unwrap()
}

fn error(status: StatusCode, code: ErrorCode) -> Response {
    (
        status,
        axum::Json(ErrorBody::new(code, "refused by the stand-in")),
    )
        .into_response()
}

async fn rewrite(
    lie: &Lie,
    path: &str,
    body: Vec<u8>,
    http: &reqwest::Client,
    upstream: &str,
) -> Vec<u8> {
    let json = || serde_json::from_slice::<Value>(&body).unwrap();
    let segments: Vec<&str> = path.split('/').collect();
    match lie {
        Lie::Balance if segments.len() == 3 && segments[1] == "address" => {
            let mut stats = json();
            let funded = stats["chain_stats"]["funded_txo_sum"].as_u64().unwrap();
            stats["chain_stats"]["funded_txo_sum"] = json!(funded + 100_000);
            serde_json::to_vec(&stats).unwrap()
        }
        Lie::MerkleProof if path.ends_with("/merkle-proof") => {
            let mut proof = json();
            let forged = json!(Hash256([0x42; 32]));
            let branch = proof["merkle"].as_array_mut().unwrap();
            match branch.first_mut() {
                Some(first) => *first = forged,
                None => branch.push(forged),
            }
            serde_json::to_vec(&proof).unwrap()
        }
        Lie::TipHash if path == "/blocks/tip/hash" => {
            let get = |path: String| async move {
                http.get(format!("{upstream}{path}"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            };
            let height: u32 = get("/blocks/tip/height".to_owned()).await.parse().unwrap();
            get(format!("/block-height/{}", height - 1))
                .await
                .into_bytes()
        }
        Lie::InfoKey if path == "/rot/v1/info" => {
            let info = serde_json::from_slice::<Signed<ServerInfo>>(&body)
                .unwrap()
                .verify()
                .unwrap();
            let forged = Signed::sign(&Identity::from_seed([9; 32]), &info).unwrap();
            serde_json::to_vec(&forged).unwrap()
        }
        Lie::ElectrumLike(identity) if path == "/rot/v1/info" => {
            let mut info = serde_json::from_slice::<Signed<ServerInfo>>(&body)
                .unwrap()
                .verify()
                .unwrap();
            info.capabilities
                .retain(|c| c != capability::SPENT_BY && c != capability::MEMPOOL);
            serde_json::to_vec(&Signed::sign(identity, &info).unwrap()).unwrap()
        }
        _ => body,
    }
}
