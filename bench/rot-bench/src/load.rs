//! The load generator: N concurrent clients, each with its own keep-alive connection and one
//! request in flight, asking for the unspent outputs of addresses from a fixed sample for a
//! fixed time. rot-server is asked over HTTP (`GET /address/:a/utxo`), ElectrumX over its
//! TCP protocol (`blockchain.scripthash.listunspent`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rot_harness::{ElectrumClient, HttpConnection};
use serde_json::{Value, json};

/// Bound on requests per client, on top of the time bound.
const MAX_REQUESTS_PER_CLIENT: usize = 10_000_000;
/// Bound on one HTTP request and its answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One address of the sample, in both servers' spellings.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address, for rot-server's `/address/:a/utxo`.
    pub address: String,
    /// Its Electrum script hash (byte-reversed hex), for ElectrumX.
    pub electrum_script_hash: String,
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum Server {
    /// rot-server's Esplora API at this base URL.
    RotServer(String),
    /// An Electrum server at this `host:port`.
    Electrum(String),
}

/// What one stretch of load measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadSample {
    /// Latency of every successful request.
    pub latencies: Vec<Duration>,
    /// Failed requests (errors or non-200 answers).
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// CPU seconds the server used meanwhile.
    pub server_cpu_secs: f64,
    /// CPU seconds the load generator (this process) used meanwhile.
    pub client_cpu_secs: f64,
}

/// What one load level measured, over one or more stretches.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests (errors or non-200 answers).
    pub errors: u64,
    /// Wall time of the level.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// CPU cores the server kept busy on average.
    pub server_cores: f64,
    /// CPU cores the load generator kept busy on average.
    pub client_cores: f64,
}

impl LoadResult {
    /// Combines the stretches of one level.
    pub fn from_samples(clients: usize, samples: Vec<LoadSample>) -> Self {
        let elapsed: Duration = samples.iter().map(|s| s.elapsed).sum();
        let server_cpu_secs: f64 = samples.iter().map(|s| s.server_cpu_secs).sum();
        let client_cpu_secs: f64 = samples.iter().map(|s| s.client_cpu_secs).sum();
        let errors = samples.iter().map(|s| s.errors).sum();
        let mut latencies: Vec<Duration> = samples.into_iter().flat_map(|s| s.latencies).collect();
        latencies.sort_unstable();
        let percentile = |p: usize| {
            latencies
                .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Self {
            clients,
            requests: latencies.len() as u64,
            errors,
            elapsed,
            p50: percentile(50),
            p99: percentile(99),
            server_cores: server_cpu_secs / elapsed.as_secs_f64().max(f64::EPSILON),
            client_cores: client_cpu_secs / elapsed.as_secs_f64().max(f64::EPSILON),
        }
    }

    /// Server CPU time per successful request.
    pub fn server_cpu_per_request(&self) -> Duration {
        let cpu = self.server_cores * self.elapsed.as_secs_f64();
        Duration::from_secs_f64(cpu / self.requests.max(1) as f64)
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `clients` clients against `server` for `duration`, cycling through `targets` (each
/// client starting at a different place). The server's CPU time is left for the caller.
///
/// The clients share one thread with a runtime of its own: on the two cores here, clients
/// spread over a multi-threaded runtime woke its other thread for nearly every answer,
/// which took CPU from the server under test and added a thread hop to every exchange; at one
/// client that cost weighed most on the faster server.
pub async fn run_load(
    server: &Server,
    targets: Arc<Vec<Target>>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<LoadSample> {
    ensure!(!targets.is_empty(), "no addresses to ask for");
    let server = server.clone();
    let load = std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(load_on_this_thread(server, targets, clients, duration))
        })?;
    tokio::task::spawn_blocking(move || load.join())
        .await?
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?
}

async fn load_on_this_thread(
    server: Server,
    targets: Arc<Vec<Target>>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<LoadSample> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(clients);
    for client in 0..clients {
        let server = server.clone();
        let targets = targets.clone();
        workers.push(tokio::spawn(async move {
            client_loop(
                &server,
                &targets,
                client * targets.len() / clients,
                deadline,
            )
            .await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut own, own_errors) = worker.await.context("load client panicked")??;
        latencies.append(&mut own);
        errors += own_errors;
    }
    Ok(LoadSample {
        latencies,
        errors,
        elapsed: started.elapsed(),
        server_cpu_secs: 0.0,
        client_cpu_secs: 0.0,
    })
}

/// One client: requests one at a time until the deadline; returns its latencies and error
/// count.
async fn client_loop(
    server: &Server,
    targets: &[Target],
    first: usize,
    deadline: Instant,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let mut connection = Connection::open(server).await?;
    let mut latencies = Vec::new();
    let mut errors = 0;
    for (count, target) in targets.iter().cycle().skip(first).enumerate() {
        if count >= MAX_REQUESTS_PER_CLIENT || Instant::now() >= deadline {
            break;
        }
        let sent = Instant::now();
        match connection.ask_utxos(target).await {
            Ok(_) => latencies.push(sent.elapsed()),
            Err(_) => errors += 1,
        }
    }
    Ok((latencies, errors))
}

/// A client's connection to one of the servers.
pub enum Connection {
    /// A keep-alive HTTP/1.1 connection read and written by the client's own task, as the
    /// Electrum connection is (see [`HttpConnection`]).
    Http(HttpConnection),
    /// An Electrum protocol connection.
    Electrum(ElectrumClient),
}

impl Connection {
    /// Opens a connection to `server`.
    pub async fn open(server: &Server) -> anyhow::Result<Self> {
        Ok(match server {
            Server::RotServer(base) => {
                let addr = base
                    .strip_prefix("http://")
                    .and_then(|host| host.trim_end_matches('/').parse().ok())
                    .with_context(|| format!("not an http://ip:port base URL: {base}"))?;
                Self::Http(HttpConnection::open(addr).await?)
            }
            Server::Electrum(address) => Self::Electrum(ElectrumClient::connect(address).await?),
        })
    }

    /// Asks for the unspent outputs of `target` and checks only that an answer came: the
    /// load generator's own cost per request stays small next to the server's. Returns the
    /// answer's length.
    pub async fn ask_utxos(&mut self, target: &Target) -> anyhow::Result<usize> {
        match self {
            Self::Http(http) => Ok(get(http, &utxo_path(target)).await?.len()),
            Self::Electrum(client) => {
                let line = client
                    .call_raw(
                        "blockchain.scripthash.listunspent",
                        json!([target.electrum_script_hash]),
                    )
                    .await?;
                ensure!(line.contains("\"result\""), "error answer: {line}");
                Ok(line.len())
            }
        }
    }

    /// The unspent outputs of `target` as the server answers them (JSON).
    pub async fn utxos(&mut self, target: &Target) -> anyhow::Result<Value> {
        match self {
            Self::Http(http) => Ok(serde_json::from_slice(
                get(http, &utxo_path(target)).await?,
            )?),
            Self::Electrum(client) => Ok(client
                .call(
                    "blockchain.scripthash.listunspent",
                    json!([target.electrum_script_hash]),
                )
                .await?),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(_) => f.write_str("Http"),
            Self::Electrum(client) => f.debug_tuple("Electrum").field(client).finish(),
        }
    }
}

fn utxo_path(target: &Target) -> String {
    format!("/address/{}/utxo", target.address)
}

/// `GET path` on `http`: the body of a `200` answer, within [`HTTP_TIMEOUT`].
async fn get<'a>(http: &'a mut HttpConnection, path: &str) -> anyhow::Result<&'a [u8]> {
    let request = HttpConnection::get_request(path);
    let (status, body) = tokio::time::timeout(HTTP_TIMEOUT, http.exchange(&request))
        .await
        .with_context(|| format!("no answer to GET {path} within {HTTP_TIMEOUT:?}"))??;
    ensure!(status == 200, "GET {path}: HTTP {status}");
    Ok(body)
}
