//! Benchmark of one rot-proxy's directory (not a test; run by `bench/proxy_directory.sh`).
//!
//! Measures, on loopback with the proxy in this process:
//! 1. registration of `keys` servers through the real admission path (heartbeat, challenge
//!    and info callbacks): one in-process app answers for every key at
//!    `http://127.0.0.1:PORT/k/{i}`, signing with key `i`, so no test-only shortcut is used;
//! 2. signed heartbeats accepted per second from those registered keys: `rounds` heartbeats
//!    per key, signed and serialized before timing, sent over `connections` keep-alive
//!    connections with up to `depth` requests pipelined on each (a raw HTTP/1.1 writer, so
//!    the load generator leaves the CPU to the proxy); each heartbeat is parsed, verified,
//!    checked and persisted to sled before its 200;
//! 3. latency of `GET /v1/coins/ltc-regtest/servers` with every key listed (whole answer
//!    read): `requests` back-to-back with no other load, then one every 20 ms for 5 s while
//!    heartbeats arrive at a steady `paced` per second (10,000 servers heartbeating every
//!    30 s send 333/s; the default 1000/s is three times that).
//!
//! Usage: `bench_directory [keys=10000] [rounds=10] [connections=16] [depth=8] [requests=500]
//! [paced=1000]`

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use rot_proto::coin::{CoinProfile, Coins};
use rot_proto::message::{
    BackendKind, ChallengeAnswer, ChallengeRequest, Heartbeat, IndexProgress, ServerInfo,
};
use rot_proto::{Hash256, Identity, Network, Signed};
use rot_proxy::config::Config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

struct Settings {
    keys: usize,
    rounds: u64,
    connections: usize,
    depth: usize,
    requests: usize,
    paced: u64,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        keys: 10_000,
        rounds: 10,
        connections: 16,
        depth: 8,
        requests: 500,
        paced: 1000,
    };
    for arg in std::env::args().skip(1) {
        let (name, value) = arg
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("expected name=value, got {arg:?}"))?;
        match name {
            "keys" => settings.keys = value.parse()?,
            "rounds" => settings.rounds = value.parse()?,
            "connections" => settings.connections = value.parse()?,
            "depth" => settings.depth = value.parse()?,
            "requests" => settings.requests = value.parse()?,
            "paced" => settings.paced = value.parse()?,
            other => anyhow::bail!("unknown setting {other:?}"),
        }
    }
    Ok(settings)
}

/// Key `i` of the benchmark.
fn identity(i: usize) -> Identity {
    let mut seed = [0x42u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Identity::from_seed(seed)
}

fn unix_now() -> u64 {
    rot_proxy::clock::Clock::system().now_secs()
}

/// The answering app: every key's challenge and info, under `/k/{i}`.
struct Answerer {
    identities: Vec<Identity>,
    profile: CoinProfile,
}

async fn challenge(
    State(a): State<Arc<Answerer>>,
    Path(i): Path<usize>,
    Query(request): Query<ChallengeRequest>,
) -> Json<Signed<ChallengeAnswer>> {
    let answer = ChallengeAnswer {
        nonce: request.nonce,
        time: unix_now(),
    };
    Json(Signed::sign(&a.identities[i], &answer).expect("sign"))
}

async fn info(State(a): State<Arc<Answerer>>, Path(i): Path<usize>) -> Json<Signed<ServerInfo>> {
    let identity = &a.identities[i];
    let info = ServerInfo {
        coin: a.profile.ticker.clone(),
        network: a.profile.network,
        genesis_hash: a.profile.genesis_hash,
        server_key: identity.public_key(),
        software: "bench/1".into(),
        protocol_version: 1,
        backend: BackendKind::Native,
        height: 1,
        tip_hash: Hash256([1; 32]),
        capabilities: vec![],
        public_url: None,
        time: unix_now(),
        index: IndexProgress::default(),
        proxies: vec![],
    };
    Json(Signed::sign(identity, &info).expect("sign"))
}

fn heartbeat(
    identity: &Identity,
    profile: &CoinProfile,
    url: &str,
    seq: u64,
    now: u64,
) -> anyhow::Result<Vec<u8>> {
    let beat = Heartbeat {
        coin: profile.ticker.clone(),
        network: profile.network,
        genesis_hash: profile.genesis_hash,
        url: url.to_owned(),
        seq,
        timestamp: now,
        height: 1000 + seq,
        tip_hash: Hash256([seq as u8; 32]),
        software: "rot-server/0.1.0".into(),
        backend: BackendKind::Native,
        capabilities: vec!["esplora".into(), "broadcast".into()],
        synced: true,
    };
    Ok(serde_json::to_vec(&Signed::sign(identity, &beat)?)?)
}

/// `POST /v1/heartbeat` with `body`, as raw HTTP/1.1 bytes (built before timing).
fn post_request(body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /v1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Reads one HTTP/1.1 response (status line, headers, Content-Length body); returns its
/// status and body.
async fn read_response(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("bad status line {line:?}"))?
        .parse()?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok((status, body))
}

/// Sends every request in `requests` to `addr` over `connections` keep-alive connections,
/// pipelining up to `depth` requests on each (a load generator light enough to leave the CPU
/// to the proxy); returns (accepted, refused, elapsed).
async fn send_all(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
    depth: usize,
) -> anyhow::Result<(usize, usize, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (requests, next) = (requests.clone(), next.clone());
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                let (mut ok, mut refused) = (0, 0);
                loop {
                    let first = next.fetch_add(depth, Ordering::Relaxed);
                    let batch = requests.get(first..(first + depth).min(requests.len()));
                    let Some(batch) = batch.filter(|b| !b.is_empty()) else {
                        break;
                    };
                    write.write_all(&batch.concat()).await?;
                    for _ in batch {
                        let (status, body) = read_response(&mut reader).await?;
                        if status == 200 {
                            ok += 1;
                        } else {
                            if refused < 3 {
                                eprintln!("refused: {status} {}", String::from_utf8_lossy(&body));
                            }
                            refused += 1;
                        }
                    }
                }
                anyhow::Ok((ok, refused))
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for worker in workers {
        let (o, r) = worker.await??;
        ok += o;
        refused += r;
    }
    Ok((ok, refused, started.elapsed()))
}

/// Sends `requests` at a steady `per_sec` over `connections` connections, one request at a
/// time on each; returns (accepted, refused).
async fn send_paced(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    per_sec: u64,
    connections: usize,
) -> anyhow::Result<(usize, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = tokio::time::Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (requests, next) = (requests.clone(), next.clone());
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                let (mut ok, mut refused) = (0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        break;
                    };
                    let due = Duration::from_micros(i as u64 * 1_000_000 / per_sec.max(1));
                    tokio::time::sleep_until(start + due).await;
                    write.write_all(request).await?;
                    if read_response(&mut reader).await?.0 == 200 {
                        ok += 1;
                    } else {
                        refused += 1;
                    }
                }
                anyhow::Ok((ok, refused))
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for worker in workers {
        let (o, r) = worker.await??;
        ok += o;
        refused += r;
    }
    Ok((ok, refused))
}

/// Latencies of `requests` sequential GETs of `url` (whole body read), sorted; and the size.
async fn directory_latencies(
    http: &reqwest::Client,
    url: &str,
    requests: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut latencies = Vec::with_capacity(requests);
    let mut size = 0;
    for _ in 0..requests {
        let started = Instant::now();
        let response = http.get(url).send().await?.error_for_status()?;
        size = response.bytes().await?.len();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    Ok((latencies, size))
}

/// CPU time (user + system) used so far by this process (`/proc/self/stat`) or this thread
/// (`/proc/thread-self/stat`), so costs can be stated per CPU-second when other work shares
/// the machine. Resolution 10 ms.
fn cpu_time(stat: &str) -> Duration {
    const TICKS_PER_SEC: u64 = 100; // USER_HZ on Linux
    let ticks = std::fs::read_to_string(stat)
        .ok()
        .and_then(|stat| {
            // utime and stime are fields 14 and 15; the command name (field 2) may hold spaces.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 1000 / TICKS_PER_SEC)
}

/// CPU time of one heartbeat's parse + `Signed::verify` on this thread, averaged.
fn verify_cost(body: &[u8], runs: u32) -> anyhow::Result<Duration> {
    let before = cpu_time("/proc/thread-self/stat");
    for _ in 0..runs {
        let signed: Signed<Heartbeat> = serde_json::from_slice(body)?;
        std::hint::black_box(signed.verify()?);
    }
    Ok(cpu_time("/proc/thread-self/stat").saturating_sub(before) / runs)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = settings()?;
    // Errors only unless asked, e.g. RUST_LOG=rot_proxy::directory=debug shows answer rebuilds.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let profile = Coins::builtin()
        .get("LTC", Network::Regtest)
        .ok_or_else(|| anyhow::anyhow!("no LTC regtest profile"))?
        .clone();
    let shutdown = CancellationToken::new();

    // The answering app for every key.
    let identities: Vec<Identity> = (0..s.keys).map(identity).collect();
    let answerer = Arc::new(Answerer {
        identities: identities.clone(),
        profile: profile.clone(),
    });
    let app = axum::Router::new()
        .route("/k/{i}/rot/v1/challenge", get(challenge))
        .route("/k/{i}/rot/v1/info", get(info))
        .with_state(answerer);
    let servers = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let servers_url = format!("http://{}", servers.local_addr()?);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(servers, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });

    // The proxy, with caps raised so 10,000 keys on one loopback address fit.
    let data = tempfile::tempdir()?;
    let cap = (s.keys + 1).to_string();
    let map: BTreeMap<String, String> = [
        ("ROT_PROXY_COINS", "LTC:regtest"),
        ("ROT_PROXY_DATA_DIR", &data.path().display().to_string()),
        ("ROT_PROXY_MAX_SERVERS_PER_COIN", &cap),
        ("ROT_PROXY_MAX_SERVERS_PER_ADDR", &cap),
        ("ROT_PROXY_REGISTER_BURST", &cap),
        ("ROT_PROXY_MAX_ADMISSIONS", "64"),
        ("ROT_PROXY_ADMISSION_TIMEOUT_SECS", "30"),
        ("ROT_PROXY_STALE_SECS", "3600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = Config::from_map(&map)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let running = rot_proxy::server::start(config, listener, shutdown.clone()).await?;
    let proxy = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "rot-proxy directory benchmark: {} keys, {} rounds, {} connections x {} pipelined, {} cores",
        s.keys, s.rounds, s.connections, s.depth, cores
    );

    // 1. Registration through admission.
    let now = unix_now();
    let urls: Vec<String> = (0..s.keys)
        .map(|i| format!("{servers_url}/k/{i}"))
        .collect();
    let first: Vec<Vec<u8>> = identities
        .iter()
        .zip(&urls)
        .map(|(id, url)| heartbeat(id, &profile, url, 1, now).map(|b| post_request(&b)))
        .collect::<anyhow::Result<_>>()?;
    let (ok, refused, elapsed) =
        send_all(running.addr, Arc::new(first), s.connections, s.depth).await?;
    println!(
        "registration (heartbeat + challenge + info callbacks): {ok} admitted, {refused} refused in {:.2} s = {:.0} admissions/s",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64()
    );
    anyhow::ensure!(ok == s.keys, "not every key was admitted");

    // The CPU cost of rebuilding the wallet answers (forced by a directory change, here a
    // ban and unban of an unknown key), measured on this thread.
    let directory = running.state.directory().clone();
    let outsider = identity(s.keys + 1).public_key();
    let rebuilds = 20;
    let cpu_before = cpu_time("/proc/thread-self/stat");
    for _ in 0..rebuilds {
        directory.ban(outsider, "bench")?;
        directory.unban(&outsider)?;
        std::hint::black_box(directory.servers_answer("ltc-regtest")?);
    }
    let rebuild = cpu_time("/proc/thread-self/stat").saturating_sub(cpu_before) / rebuilds;
    println!(
        "rebuilding the answers for {} servers (entries unchanged): {} of CPU",
        s.keys,
        ms(rebuild)
    );

    // 2. Heartbeats from registered keys, pre-signed.
    let signing = Instant::now();
    let now = unix_now();
    let mut bodies = Vec::with_capacity(s.keys * s.rounds as usize);
    for round in 0..s.rounds {
        for (id, url) in identities.iter().zip(&urls) {
            bodies.push(heartbeat(id, &profile, url, 2 + round, now)?);
        }
    }
    let body_bytes = bodies.first().map_or(0, Vec::len);
    println!(
        "pre-signed {} heartbeats ({} bytes each) in {:.2} s (not timed)",
        bodies.len(),
        body_bytes,
        signing.elapsed().as_secs_f64()
    );
    let verify = verify_cost(&bodies[0], 10_000)?;
    let bodies: Vec<Vec<u8>> = bodies.iter().map(|b| post_request(b)).collect();
    println!(
        "parse + verify of one heartbeat: {:.1} us of CPU",
        verify.as_secs_f64() * 1e6
    );
    let bodies = Arc::new(bodies);
    let total = bodies.len();
    let cpu_before = cpu_time("/proc/self/stat");
    let (ok, refused, elapsed) = send_all(running.addr, bodies, s.connections, s.depth).await?;
    let cpu = cpu_time("/proc/self/stat").saturating_sub(cpu_before);
    println!(
        "heartbeats: {ok} accepted, {refused} refused of {total} in {:.2} s = {:.0} heartbeats/s; \
         process CPU {:.2} s ({:.2} cores busy) = {:.0} heartbeats per CPU-second (proxy + client)",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() / elapsed.as_secs_f64(),
        ok as f64 / cpu.as_secs_f64().max(1e-9),
    );

    // 3. Directory answers: idle, then under a steady heartbeat load.
    let directory_url = format!("{proxy}/v1/coins/ltc-regtest/servers");
    let (idle, size) = directory_latencies(&http, &directory_url, s.requests).await?;
    let now = unix_now();
    let paced_count = (s.paced as usize * 5).min(s.keys);
    let paced: Vec<Vec<u8>> = identities
        .iter()
        .zip(&urls)
        .take(paced_count)
        .map(|(id, url)| heartbeat(id, &profile, url, 2 + s.rounds, now).map(|b| post_request(&b)))
        .collect::<anyhow::Result<_>>()?;
    let load = tokio::spawn(send_paced(
        running.addr,
        Arc::new(paced),
        s.paced,
        s.connections,
    ));
    let mut busy = Vec::new();
    while !load.is_finished() {
        busy.extend(directory_latencies(&http, &directory_url, 1).await?.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    busy.sort();
    let (paced_ok, paced_refused) = load.await??;
    println!(
        "GET /v1/coins/ltc-regtest/servers, {} servers listed, {size} bytes: idle p50 {} p99 {} max {} ({} requests); \
         with {} heartbeats/s arriving ({paced_ok} accepted, {paced_refused} refused) p50 {} p99 {} max {} ({} requests)",
        s.keys,
        ms(percentile(&idle, 0.50)),
        ms(percentile(&idle, 0.99)),
        ms(idle.last().copied().unwrap_or_default()),
        idle.len(),
        s.paced,
        ms(percentile(&busy, 0.50)),
        ms(percentile(&busy, 0.99)),
        ms(busy.last().copied().unwrap_or_default()),
        busy.len(),
    );

    shutdown.cancel();
    running.join().await;
    Ok(())
}
