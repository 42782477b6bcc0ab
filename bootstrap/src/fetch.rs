//! Fetching the list from mirrors over HTTP (feature `http`). A client asks all its mirrors at
//! once (static hosts, and every proxy at `GET /v1/bootstrap`), judges each answer with its
//! [`TrustStore`], and takes the newest valid list; among equally new ones the first to
//! arrive wins. No mirror is trusted: a down, stale, oversized or forged answer is only
//! reported. Each request has a timeout and each body a size cap.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::task::JoinSet;

use crate::BootstrapError;
use crate::list::{ListFile, MAX_LIST_BYTES};
use crate::trust::{Accepted, TrustStore};
use crate::verified::VerifiedList;

/// Limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// Whole-request timeout per mirror.
    pub timeout: Duration,
    /// Largest body read from a mirror.
    pub max_bytes: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_bytes: MAX_LIST_BYTES,
        }
    }
}

/// What one mirror answered.
#[derive(Debug)]
pub struct MirrorOutcome {
    /// The mirror URL.
    pub url: String,
    /// The serial of the valid list it served, or why its answer was ignored.
    pub result: Result<u64, BootstrapError>,
}

/// What a refresh did.
#[derive(Debug)]
pub struct FetchReport {
    /// Every mirror's outcome, in order of arrival.
    pub mirrors: Vec<MirrorOutcome>,
    /// The mirror whose list was taken, if any mirror served a valid list.
    pub source: Option<String>,
    /// What accepting it did.
    pub accepted: Option<Accepted>,
}

/// An HTTP client with `options.timeout` per request.
pub fn http_client(options: &FetchOptions) -> Result<reqwest::Client, BootstrapError> {
    reqwest::Client::builder()
        .timeout(options.timeout)
        .build()
        .map_err(|e| BootstrapError::Fetch {
            url: String::new(),
            reason: format!("cannot build HTTP client: {e}"),
        })
}

/// Downloads and parses the list at `url`, reading at most `max_bytes`. Does not verify it.
pub async fn fetch_list(
    client: &reqwest::Client,
    url: &str,
    max_bytes: u64,
) -> Result<ListFile, BootstrapError> {
    let failed = |reason: String| BootstrapError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| failed(describe(&e)))?;
    if response.status() != StatusCode::OK {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let too_large = |size| BootstrapError::TooLarge {
        size,
        limit: max_bytes,
    };
    if let Some(announced) = response.content_length().filter(|&len| len > max_bytes) {
        return Err(too_large(announced));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(describe(&e)))? {
        let size = (body.len() + chunk.len()) as u64;
        if size > max_bytes {
            return Err(too_large(size));
        }
        body.extend_from_slice(&chunk);
    }
    ListFile::from_slice(&body)
}

/// Fetches the list from every mirror concurrently and accepts the newest valid one into
/// `store` (in memory; persist with [`TrustStore::save_cache`]). `now` is the client's clock.
pub async fn refresh(
    store: &mut TrustStore,
    client: &reqwest::Client,
    mirrors: &[String],
    now: u64,
    options: &FetchOptions,
) -> FetchReport {
    let mut pending = JoinSet::new();
    for url in mirrors {
        let (client, url, max_bytes) = (client.clone(), url.clone(), options.max_bytes);
        pending.spawn(async move {
            let fetched = fetch_list(&client, &url, max_bytes).await;
            (url, fetched)
        });
    }
    let mut outcomes = Vec::with_capacity(mirrors.len());
    let mut best: Option<(String, VerifiedList)> = None;
    while let Some(joined) = pending.join_next().await {
        let (url, fetched) = match joined {
            Ok(answer) => answer,
            Err(error) => (
                String::new(),
                Err(BootstrapError::Fetch {
                    url: String::new(),
                    reason: format!("fetch task failed: {error}"),
                }),
            ),
        };
        let result = fetched.and_then(|file| store.check(&file, now));
        let result = result.map(|list| {
            let serial = list.serial();
            if best.as_ref().is_none_or(|(_, kept)| serial > kept.serial()) {
                best = Some((url.clone(), list));
            }
            serial
        });
        outcomes.push(MirrorOutcome { url, result });
    }
    let (source, accepted) = match best {
        Some((url, list)) => match store.accept(list.file(), now) {
            Ok(accepted) => (Some(url), Some(accepted)),
            Err(error) => {
                outcomes.push(MirrorOutcome {
                    url,
                    result: Err(error),
                });
                (None, None)
            }
        },
        None => (None, None),
    };
    FetchReport {
        mirrors: outcomes,
        source,
        accepted,
    }
}

/// reqwest's error with its causes, which hold the useful part ("connection refused").
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    rot_proto::error_chain(error)
}
