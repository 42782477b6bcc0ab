//! Benchmark of the rot-proxy relay (not a test; run by `bench/proxy_relay.sh`).
//!
//! One regtest litecoind, one rot-server (release binary, its own process) indexing it, and
//! three ways to ask it `GET /address/:a/utxo` for an address with `utxos` unspent outputs:
//!
//! - **direct**: the rot-server itself;
//! - **nginx**: nginx (Debian package) as a plain reverse proxy on loopback, keep-alive to
//!   the server (`upstream { keepalive }`), access log off;
//! - **rot-proxy**: the relay (release binary, its own process, default settings but per-IP
//!   limits raised), which the rot-server registers with by heartbeats and which admits it
//!   through its full conformance suite before relaying.
//!
//! For each, `rounds` times: latency of `sequential` requests one after another on one
//! keep-alive connection (p50, p99), then `clients` connections each sending one request at a
//! time for `seconds` (throughput, p50, p99, and the CPU the proxy process used per request).
//! The load generator writes raw HTTP/1.1 so it leaves the CPU to what is measured. Medians
//! over rounds are reported.
//!
//! Usage: `bench_relay [clients=64] [seconds=8] [sequential=2000] [rounds=3] [utxos=10]
//! [only=direct,nginx,rot-proxy]` (`nginx=/usr/sbin/nginx` to name the binary; without nginx
//! its row is skipped).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rot_harness::{AddressType, HttpConnection, Litecoind};

struct Settings {
    clients: usize,
    seconds: u64,
    sequential: usize,
    rounds: usize,
    utxos: usize,
    nginx: PathBuf,
    /// Which targets run (all by default).
    only: Option<Vec<String>>,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        clients: 64,
        seconds: 8,
        sequential: 2000,
        rounds: 3,
        utxos: 10,
        nginx: PathBuf::from("/usr/sbin/nginx"),
        only: None,
    };
    for arg in std::env::args().skip(1) {
        let (name, value) = arg
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("expected name=value, got {arg:?}"))?;
        match name {
            "clients" => settings.clients = value.parse()?,
            "seconds" => settings.seconds = value.parse()?,
            "sequential" => settings.sequential = value.parse()?,
            "rounds" => settings.rounds = value.parse()?,
            "utxos" => settings.utxos = value.parse()?,
            "nginx" => settings.nginx = value.into(),
            "only" => settings.only = Some(value.split(',').map(str::to_owned).collect()),
            other => anyhow::bail!("unknown setting {other:?}"),
        }
    }
    Ok(settings)
}

/// One way to reach the server: a name for the report, where to connect, the request bytes,
/// and the processes whose CPU time counts against it.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    pids: Vec<u32>,
}

/// A child process killed when dropped.
struct Process {
    child: Child,
    name: &'static str,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The release binary `name` next to this example (`target/release/examples/..` → `..`).
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("no target directory above {}", exe.display()))?;
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} not built (cargo build --release -p {name})",
        path.display()
    );
    Ok(path)
}

/// Starts `binary` with `env`, its output in `log`.
fn spawn(
    name: &'static str,
    binary: &Path,
    args: &[&str],
    env: &BTreeMap<String, String>,
    log: &Path,
) -> anyhow::Result<Process> {
    let out = std::fs::File::create(log)?;
    let child = Command::new(binary)
        .args(args)
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    Ok(Process { child, name })
}

/// One keep-alive connection sending a request one at a time.
struct Connection(HttpConnection);

impl Connection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self(HttpConnection::open(addr).await?))
    }

    /// Sends `request`, reads the answer; returns the time taken.
    async fn ask(&mut self, request: &[u8]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let (status, body) = self.0.exchange(request).await?;
        anyhow::ensure!(
            status == 200,
            "HTTP {status}: {}",
            String::from_utf8_lossy(body)
        );
        Ok(started.elapsed())
    }
}

/// What one target measured in one round.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    alone_p50: Duration,
    alone_p99: Duration,
    rps: f64,
    loaded_p50: Duration,
    loaded_p99: Duration,
    /// CPU time of the proxy process (nginx, rot-proxy) per request under load.
    cpu_per_request: Option<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Measures `request` at `addr`: sequential latency, then `clients` connections for `seconds`;
/// `pids` are the processes whose CPU time is counted.
async fn measure(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    s: &Settings,
    pids: &[u32],
) -> anyhow::Result<Measured> {
    let mut one = Connection::open(addr).await?;
    let mut alone = Vec::with_capacity(s.sequential);
    for _ in 0..s.sequential {
        alone.push(one.ask(&request).await?);
    }
    alone.sort();
    drop(one);

    let stop = Arc::new(AtomicBool::new(false));
    let mut connections = Vec::with_capacity(s.clients);
    for _ in 0..s.clients {
        connections.push(Connection::open(addr).await?);
    }
    // A short warm-up of every connection, then the timed run.
    for connection in &mut connections {
        connection.ask(&request).await?;
    }
    let cpu_before: Duration = pids.iter().map(|&pid| cpu_time(pid)).sum();
    let started = Instant::now();
    let workers: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let (stop, request) = (stop.clone(), request.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 14);
                while !stop.load(Ordering::Relaxed) {
                    latencies.push(connection.ask(&request).await?);
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(s.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut loaded = Vec::new();
    for worker in workers {
        loaded.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    let cpu_after: Duration = pids.iter().map(|&pid| cpu_time(pid)).sum();
    loaded.sort();
    let count = loaded.len();
    Ok(Measured {
        alone_p50: percentile(&alone, 0.5),
        alone_p99: percentile(&alone, 0.99),
        rps: count as f64 / elapsed.as_secs_f64(),
        loaded_p50: percentile(&loaded, 0.5),
        loaded_p99: percentile(&loaded, 0.99),
        cpu_per_request: (!pids.is_empty() && count > 0)
            .then(|| cpu_after.saturating_sub(cpu_before) / count as u32),
    })
}

/// CPU time (user + system) of process `pid` so far; resolution 10 ms.
fn cpu_time(pid: u32) -> Duration {
    const TICKS_PER_SEC: u64 = 100; // USER_HZ on Linux
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 1000 / TICKS_PER_SEC)
}

/// The pids of `parent`'s children (nginx's workers).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Waits until `GET url` answers 200 with a body `accept` likes.
async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    accept: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
            && accept(&response.text().await.unwrap_or_default())
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn nginx_config(dir: &Path, listen: u16, upstream: u16) -> String {
    let dir = dir.display();
    format!(
        "worker_processes auto;\n\
         daemon off;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {dir}/body;\n\
           proxy_temp_path {dir}/proxy;\n\
           fastcgi_temp_path {dir}/fastcgi;\n\
           uwsgi_temp_path {dir}/uwsgi;\n\
           scgi_temp_path {dir}/scgi;\n\
           keepalive_requests 10000000;\n\
           keepalive_timeout 300s;\n\
           upstream rot {{\n\
             server 127.0.0.1:{upstream};\n\
             keepalive 128;\n\
             keepalive_requests 10000000;\n\
           }}\n\
           server {{\n\
             listen 127.0.0.1:{listen};\n\
             location / {{\n\
               proxy_pass http://rot;\n\
               proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n\
             }}\n\
           }}\n\
         }}\n"
    )
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let s = settings()?;
    let work = tempfile::tempdir()?;
    let http = reqwest::Client::builder().no_proxy().build()?;

    // The chain: mature coins, then `utxos` payments to one address, confirmed.
    let node = Litecoind::start().await?;
    let wallet = node.create_wallet("bench").await?;
    let miner = wallet.new_address(AddressType::Bech32).await?;
    node.mine(110, &miner).await?;
    let address = wallet.new_address(AddressType::Bech32).await?;
    for i in 0..s.utxos {
        wallet.send_to(&address, 1_000_000 + i as u64).await?;
    }
    node.mine(1, &miner).await?;
    let (height, _) = node.tip().await?;

    // rot-proxy, then the rot-server registering with it.
    let (proxy_port, server_port, nginx_port) = (free_port()?, free_port()?, free_port()?);
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let proxy_env: BTreeMap<String, String> = [
        ("ROT_PROXY_COINS", "LTC:regtest".to_owned()),
        ("ROT_PROXY_LISTEN_ADDR", format!("127.0.0.1:{proxy_port}")),
        (
            "ROT_PROXY_DATA_DIR",
            work.path().join("proxy").display().to_string(),
        ),
        ("ROT_PROXY_RELAY_RATE_PER_SEC", "1000000".to_owned()),
        ("ROT_PROXY_RELAY_BURST", "1000000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let proxy = spawn(
        "rot-proxy",
        &sibling_binary("rot-proxy")?,
        &[],
        &proxy_env,
        &work.path().join("proxy.log"),
    )?;
    let mut server_env = rot_harness::rot_server_settings(&node, &work.path().join("server"));
    server_env.insert("ROT_LISTEN_ADDR".into(), format!("127.0.0.1:{server_port}"));
    server_env.insert("ROT_PROXIES".into(), proxy_url.clone());
    server_env.insert("ROT_HEARTBEAT_SECS".into(), "2".into());
    let server = spawn(
        "rot-server",
        &sibling_binary("rot-server")?,
        &[],
        &server_env,
        &work.path().join("server.log"),
    )?;
    let server_url = format!("http://127.0.0.1:{server_port}");
    wait_for(
        &http,
        &format!("{server_url}/blocks/tip/height"),
        "the server's index",
        |t| t.trim() == height.to_string(),
    )
    .await?;
    let relay = format!("{proxy_url}/v1/coins/ltc-regtest/esplora");
    wait_for(
        &http,
        &format!("{proxy_url}/v1/coins/ltc-regtest/servers"),
        "the proxy to admit the server and pass its checks",
        |body| body.contains("\"status\":\"admitted\""),
    )
    .await?;
    wait_for(
        &http,
        &format!("{relay}/blocks/tip/height"),
        "the relay",
        |t| t.trim() == height.to_string(),
    )
    .await?;

    // nginx, if installed.
    let nginx = if s.nginx.exists() {
        let dir = work.path().join("nginx");
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_config(&dir, nginx_port, server_port))?;
        let conf_arg = conf.display().to_string();
        let dir_arg = dir.display().to_string();
        let process = spawn(
            "nginx",
            &s.nginx,
            &["-p", &dir_arg, "-c", &conf_arg],
            &BTreeMap::new(),
            &work.path().join("nginx.log"),
        )?;
        wait_for(
            &http,
            &format!("http://127.0.0.1:{nginx_port}/blocks/tip/height"),
            "nginx",
            |t| t.trim() == height.to_string(),
        )
        .await?;
        Some(process)
    } else {
        eprintln!("{} not found: the nginx row is skipped", s.nginx.display());
        None
    };

    let path = format!("/address/{address}/utxo");
    let body = http
        .get(format!("{server_url}{path}"))
        .send()
        .await?
        .bytes()
        .await?;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "rot-proxy relay benchmark: GET /address/:a/utxo ({} outputs, {} bytes), {} clients x {} s, {} sequential, {} rounds, {} cores",
        s.utxos,
        body.len(),
        s.clients,
        s.seconds,
        s.sequential,
        s.rounds,
        cores
    );

    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let mut targets = vec![Target {
        name: "direct",
        addr: loopback(server_port),
        request: Arc::new(HttpConnection::get_request(&path)),
        pids: Vec::new(),
    }];
    if let Some(nginx) = &nginx {
        let mut pids = vec![nginx.pid()];
        pids.extend(children(nginx.pid()));
        targets.push(Target {
            name: "nginx",
            addr: loopback(nginx_port),
            request: Arc::new(HttpConnection::get_request(&path)),
            pids,
        });
    }
    targets.push(Target {
        name: "rot-proxy",
        addr: loopback(proxy_port),
        request: Arc::new(HttpConnection::get_request(&format!(
            "/v1/coins/ltc-regtest/esplora{path}"
        ))),
        pids: vec![proxy.pid()],
    });
    if let Some(only) = &s.only {
        targets.retain(|t| only.iter().any(|o| o == t.name));
    }
    let mut results: BTreeMap<&str, Vec<Measured>> = BTreeMap::new();
    for round in 1..=s.rounds {
        for Target {
            name,
            addr,
            request,
            pids,
        } in &targets
        {
            let measured = measure(*addr, request.clone(), &s, pids).await?;
            eprintln!("round {round} {name}: {measured:?}");
            results.entry(name).or_default().push(measured);
        }
    }

    let summary = |name: &str| {
        let runs = &results[name];
        Measured {
            alone_p50: median(runs.iter().map(|m| m.alone_p50).collect()),
            alone_p99: median(runs.iter().map(|m| m.alone_p99).collect()),
            rps: median(runs.iter().map(|m| m.rps).collect()),
            loaded_p50: median(runs.iter().map(|m| m.loaded_p50).collect()),
            loaded_p99: median(runs.iter().map(|m| m.loaded_p99).collect()),
            cpu_per_request: runs[0]
                .cpu_per_request
                .map(|_| median(runs.iter().filter_map(|m| m.cpu_per_request).collect())),
        }
    };
    let direct = results.contains_key("direct").then(|| summary("direct"));
    let nginx_rps = results.contains_key("nginx").then(|| summary("nginx").rps);
    println!();
    println!(
        "| path | p50 alone (ms) | p99 alone (ms) | added p50 (ms) | req/s at {} clients | ÷ direct | ÷ nginx | p50 loaded (ms) | p99 loaded (ms) | proxy CPU per request (µs) |",
        s.clients
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let ratio =
        |rps: f64, of: Option<f64>| of.map_or("—".to_owned(), |of| format!("{:.2}", rps / of));
    for Target { name, .. } in &targets {
        let m = summary(name);
        let added = match &direct {
            Some(direct) if *name != "direct" => format!(
                "{:+.3}",
                (m.alone_p50.as_secs_f64() - direct.alone_p50.as_secs_f64()) * 1000.0
            ),
            _ => "—".to_owned(),
        };
        println!(
            "| {name} | {} | {} | {added} | {:.0} | {} | {} | {} | {} | {} |",
            ms(m.alone_p50),
            ms(m.alone_p99),
            m.rps,
            ratio(m.rps, direct.as_ref().map(|d| d.rps)),
            ratio(m.rps, nginx_rps),
            ms(m.loaded_p50),
            ms(m.loaded_p99),
            m.cpu_per_request.map_or("—".to_owned(), |d| format!(
                "{:.0}",
                d.as_secs_f64() * 1e6
            )),
        );
    }
    for process in [Some(proxy), Some(server), nginx].into_iter().flatten() {
        eprintln!("stopping {}", process.name);
    }
    Ok(())
}
