//! The status page at `/`, for people: which coins the proxy serves and, per coin, each
//! server's status, height, tip agreement, latency, warnings and exclusions, with small charts
//! of the agreed tip height, the relayed request rate and the relay's latency over the last
//! half hour, and the other proxies of the bootstrap list.
//!
//! Why server-rendered: the page must work without a front-end build and show the same truth
//! as the JSON API, so it is rendered here from the same snapshots, and a few lines of
//! JavaScript only fetch the page again and swap its content in every few seconds. Every text
//! a server or peer chose (software names, URLs) is HTML-escaped.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use rot_proto::message::{CoinSummary, DirectoryEntry, PeerEntry, ServerStatus};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::federation::Federation;

/// How often the charts get a point.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Points kept per chart: half an hour at [`SAMPLE_EVERY`].
const SAMPLES_KEPT: usize = 360;

/// Narrowest chart window, in points (five minutes).
const MIN_SLOTS: usize = 60;

/// How often the page fetches itself again, in milliseconds.
const REFRESH_MS: u64 = 5_000;

/// Relayed requests of one coin since start.
#[derive(Debug, Default)]
struct Meter {
    requests: AtomicU64,
    latency_micros: AtomicU64,
}

/// One point of a coin's charts.
#[derive(Debug, Clone, Copy)]
struct Sample {
    tip_height: Option<u64>,
    requests_per_sec: f64,
    latency_ms: Option<f64>,
}

/// The page's sources and the charts' history.
#[derive(Debug)]
pub struct Status {
    directory: Arc<Directory>,
    federation: Arc<Federation>,
    clock: Clock,
    meters: BTreeMap<String, Meter>,
    history: Mutex<BTreeMap<String, VecDeque<Sample>>>,
}

impl Status {
    /// The status of a proxy serving `directory`'s coins.
    pub fn new(directory: Arc<Directory>, federation: Arc<Federation>, clock: Clock) -> Self {
        let meters = directory
            .coin_ids()
            .map(|id| (id.to_owned(), Meter::default()))
            .collect();
        Self {
            directory,
            federation,
            clock,
            meters,
            history: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one relayed request of `coin` that took `elapsed` to answer.
    pub fn record(&self, coin: &str, elapsed: Duration) {
        if let Some(meter) = self.meters.get(coin) {
            meter.requests.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            meter.latency_micros.fetch_add(micros, Ordering::Relaxed);
        }
    }

    /// Adds a chart point every [`SAMPLE_EVERY`] until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut last_at = Instant::now();
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let elapsed = last_at.elapsed().as_secs_f64().max(0.001);
            last_at = Instant::now();
            if let Err(e) = self.sample(&mut last, elapsed) {
                tracing::debug!(error = %e, "status sample skipped");
            }
        }
    }

    fn sample(
        &self,
        last: &mut BTreeMap<String, (u64, u64)>,
        elapsed_secs: f64,
    ) -> Result<(), Error> {
        let tips: BTreeMap<String, Option<u64>> = self
            .directory
            .coin_summaries()?
            .into_iter()
            .map(|coin| (coin.id, coin.tip_height))
            .collect();
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        for (coin, meter) in &self.meters {
            let now = (
                meter.requests.load(Ordering::Relaxed),
                meter.latency_micros.load(Ordering::Relaxed),
            );
            let before = last.insert(coin.clone(), now).unwrap_or(now);
            let requests = now.0.saturating_sub(before.0);
            let micros = now.1.saturating_sub(before.1);
            let points = history.entry(coin.clone()).or_default();
            if points.len() == SAMPLES_KEPT {
                points.pop_front();
            }
            points.push_back(Sample {
                tip_height: tips.get(coin).copied().flatten(),
                requests_per_sec: requests as f64 / elapsed_secs,
                latency_ms: (requests > 0).then(|| micros as f64 / requests as f64 / 1000.0),
            });
        }
        Ok(())
    }

    /// The page.
    pub fn render(&self) -> Result<String, Error> {
        let coins = self.directory.coin_summaries()?;
        let peers = self.federation.peers().peers;
        let history = self
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut page = String::with_capacity(16 * 1024);
        page.push_str(HEAD);
        let serial = self
            .federation
            .held_serial()
            .map_or_else(|| "none".to_owned(), |serial| serial.to_string());
        let _ = write!(
            page,
            "<header><h1>ROT proxy</h1><p>key <code class=\"key\">{}</code> · rot-proxy {} · \
             bootstrap list serial <span id=\"bootstrap-serial\">{serial}</span> · {} peer(s)</p>\
             </header><main id=\"status\">",
            self.federation.public_key(),
            env!("CARGO_PKG_VERSION"),
            peers.len()
        );
        for coin in &coins {
            let servers = self.directory.listed_servers(&coin.id)?;
            let points = history
                .get(&coin.id)
                .map(|p| p.iter().copied().collect::<Vec<_>>());
            render_coin(
                &mut page,
                coin,
                &servers,
                points.as_deref().unwrap_or_default(),
            );
        }
        render_peers(&mut page, &peers);
        let _ = write!(
            page,
            "</main><footer>Rendered at unix time <time id=\"rendered\">{}</time>; \
             refreshes every {} s. JSON: <a href=\"/v1/coins\">/v1/coins</a>, \
             <a href=\"/v1/peers\">/v1/peers</a>, <a href=\"/v1/info\">/v1/info</a>.</footer>\
             <script>{}</script></body></html>",
            self.clock.now_secs(),
            REFRESH_MS / 1000,
            REFRESH_SCRIPT.replace("REFRESH_MS", &REFRESH_MS.to_string())
        );
        Ok(page)
    }
}

/// Counts relayed requests (`/v1/coins/{coin}/esplora/...`) and their time to answer.
pub async fn meter_relay(
    State(status): State<Arc<Status>>,
    request: Request,
    next: Next,
) -> Response {
    let coin = request
        .uri()
        .path()
        .strip_prefix("/v1/coins/")
        .and_then(|rest| rest.split_once("/esplora/"))
        .map(|(coin, _)| coin.to_ascii_lowercase());
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(coin) = coin {
        status.record(&coin, started.elapsed());
    }
    response
}

fn render_coin(
    page: &mut String,
    coin: &CoinSummary,
    servers: &[DirectoryEntry],
    points: &[Sample],
) {
    let tip = match (coin.tip_height, coin.tip_hash) {
        (Some(height), Some(hash)) => format!(
            "agreed tip <b class=\"tip-height\">{height}</b> <code title=\"{hash}\">{}…</code>",
            &hash.to_string()[..12]
        ),
        _ => "no agreed tip (no healthy server)".to_owned(),
    };
    let _ = write!(
        page,
        "<section class=\"coin\" data-coin=\"{id}\"><h2>{ticker} {network} <small>{id}</small></h2>\
         <p class=\"summary\"><b class=\"healthy\">{healthy}</b> healthy server(s) · {tip}</p>\
         <table class=\"servers\"><thead><tr><th>Server</th><th>Status</th><th>Height</th>\
         <th>Tip</th><th>Latency</th><th>Warnings</th><th>Exclusions</th><th>Heartbeat</th>\
         <th>Software</th></tr></thead><tbody>",
        id = escape(&coin.id),
        ticker = escape(&coin.ticker),
        network = coin.network,
        healthy = coin.healthy_servers,
    );
    if servers.is_empty() {
        page.push_str("<tr><td colspan=\"9\">No server listed yet.</td></tr>");
    }
    for server in servers {
        let key = server.server_key.to_string();
        let status = wire_name(&server.status);
        let _ = write!(
            page,
            "<tr class=\"server\" data-server=\"{key}\"><td><code title=\"{key}\">{short}…</code></td>\
             <td class=\"status status-{status}\">{status}</td><td class=\"height\">{height}</td>\
             <td class=\"agreement\">{agreement}</td><td>{latency}</td>\
             <td class=\"warnings\">{warnings}</td><td class=\"exclusions\">{exclusions}</td>\
             <td>{age} s ago</td><td>{software}</td></tr>",
            short = &key[..12],
            height = server.height,
            agreement = agreement(coin, server),
            latency = server
                .latency_ms
                .map_or_else(|| "–".to_owned(), |ms| format!("{ms} ms")),
            warnings = server.warnings,
            exclusions = server.exclusions,
            age = server.last_heartbeat_age_secs,
            software = escape(&server.software),
        );
    }
    page.push_str("</tbody></table><div class=\"charts\">");
    chart(page, "tip-height", "Agreed tip height", "", points, |p| {
        p.tip_height.map(|h| h as f64)
    });
    chart(
        page,
        "request-rate",
        "Relayed requests",
        " /s",
        points,
        |p| Some(p.requests_per_sec),
    );
    chart(page, "latency", "Relay latency", " ms", points, |p| {
        p.latency_ms
    });
    page.push_str("</div></section>");
}

/// How a server's tip compares with the coin's agreed tip.
fn agreement(coin: &CoinSummary, server: &DirectoryEntry) -> String {
    match (coin.tip_height, coin.tip_hash) {
        (Some(height), Some(hash)) if server.height == height && server.tip_hash == hash => {
            "on the agreed tip".to_owned()
        }
        (Some(height), _) if server.height < height => {
            format!("{} block(s) behind", height - server.height)
        }
        (Some(_), _) => "on another tip".to_owned(),
        (None, _) => "–".to_owned(),
    }
}

fn render_peers(page: &mut String, peers: &[PeerEntry]) {
    page.push_str(
        "<section class=\"peers\"><h2>Other proxies of the bootstrap list</h2>\
         <table><thead><tr><th>Proxy</th><th>Team</th><th>Reachable</th><th>Coins</th>\
         <th>List serial</th><th>Last seen</th></tr></thead><tbody>",
    );
    if peers.is_empty() {
        page.push_str("<tr><td colspan=\"6\">No other proxy known.</td></tr>");
    }
    for peer in peers {
        let coins: Vec<String> = peer
            .coins
            .iter()
            .map(|c| format!("{} ({} healthy)", escape(&c.id), c.healthy_servers))
            .collect();
        let reachable = match &peer.error {
            None if peer.reachable => "yes".to_owned(),
            None => "not yet asked".to_owned(),
            Some(error) => format!("no: {}", escape(error)),
        };
        let _ = write!(
            page,
            "<tr class=\"peer\"><td><a href=\"{url}/\">{url}</a></td><td>{team}</td>\
             <td>{reachable}</td><td>{coins}</td><td>{serial}</td><td>{seen}</td></tr>",
            url = escape(&peer.url),
            team = escape(&peer.team),
            coins = coins.join(", "),
            serial = peer
                .bootstrap_serial
                .map_or_else(|| "–".to_owned(), |s| s.to_string()),
            seen = peer
                .last_seen_age_secs
                .map_or_else(|| "never".to_owned(), |s| format!("{s} s ago")),
        );
    }
    page.push_str("</tbody></table></section>");
}

/// A small line chart of `value` over `points` as inline SVG, with its latest value.
fn chart(
    page: &mut String,
    class: &str,
    title: &str,
    unit: &str,
    points: &[Sample],
    value: impl Fn(&Sample) -> Option<f64>,
) {
    const WIDTH: f64 = 300.0;
    const HEIGHT: f64 = 80.0;
    let values: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| value(p).map(|v| (i, v)))
        .collect();
    let latest = values.last().map_or_else(
        || "collecting…".to_owned(),
        |(_, v)| format!("{}{unit}", round(*v)),
    );
    let _ = write!(
        page,
        "<figure class=\"chart {class}\"><figcaption>{title}: <b>{latest}</b></figcaption>\
         <svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" \
         aria-label=\"{title}\"><polyline fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"2\" points=\""
    );
    let low = values.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
    let high = values
        .iter()
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    let span = (high - low).max(1e-9);
    // At least five minutes wide, so a young proxy's few points still read as a line.
    let slots = points.len().clamp(MIN_SLOTS, SAMPLES_KEPT);
    let step = WIDTH / (slots - 1) as f64;
    let offset = slots - points.len();
    for (i, v) in &values {
        let x = (offset + i) as f64 * step;
        let y = if high > low {
            HEIGHT - 4.0 - (v - low) / span * (HEIGHT - 8.0)
        } else {
            HEIGHT / 2.0
        };
        let _ = write!(page, "{x:.1},{y:.1} ");
    }
    page.push_str("\"/></svg></figure>");
}

/// Two decimals for small values, none for large ones.
fn round(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The JSON spelling of an enum value (`admitted`).
fn wire_name(status: &ServerStatus) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_owned(),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>ROT proxy status</title><style>\
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c;background:#f7fafc}\
h1{margin:0 0 .25rem}header p{margin:0;color:#4a5568}code{font-size:.9em}\
section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:1rem;margin:1rem 0}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #edf2f7}\
.status-admitted{color:#276749}.status-warned{color:#b7791f}.status-excluded,.status-banned{color:#c53030}\
.status-stale,.status-pending{color:#718096}.charts{display:flex;flex-wrap:wrap;gap:1rem;margin-top:1rem}\
figure{margin:0}svg{background:#f7fafc;border:1px solid #e2e8f0}footer{color:#718096;font-size:.85em}\
</style></head><body>";

/// Fetches the page again and swaps in its content; keeps the old one when the proxy does not
/// answer.
const REFRESH_SCRIPT: &str = "setInterval(async()=>{try{const r=await fetch(location.pathname,\
{cache:'no-store'});if(!r.ok)return;const d=new DOMParser().parseFromString(await r.text(),\
'text/html');for(const id of ['status','rendered','bootstrap-serial']){const n=d.getElementById(id);\
const o=document.getElementById(id);if(n&&o)o.replaceWith(n);}}catch(e){}},REFRESH_MS);";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_servers_and_peers_choose() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn charts_scale_into_the_box_and_say_when_empty() {
        let mut page = String::new();
        chart(&mut page, "c", "T", " ms", &[], |p| p.latency_ms);
        assert!(page.contains("collecting…"), "{page}");
        let points: Vec<Sample> = (0..10)
            .map(|i| Sample {
                tip_height: Some(100 + i),
                requests_per_sec: 0.0,
                latency_ms: None,
            })
            .collect();
        let mut page = String::new();
        chart(&mut page, "c", "T", "", &points, |p| {
            p.tip_height.map(|h| h as f64)
        });
        assert!(
            page.contains("<b>109.00</b>") || page.contains("<b>109</b>"),
            "{page}"
        );
        let coordinates: Vec<(f64, f64)> = page
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split_whitespace()
            .map(|pair| {
                let (x, y) = pair.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(coordinates.len(), 10);
        assert!(
            coordinates
                .iter()
                .all(|(x, y)| (0.0..=300.0).contains(x) && (0.0..=80.0).contains(y))
        );
        // Higher tips are drawn higher (smaller y), the newest point at the right edge.
        assert!(coordinates[9].1 < coordinates[0].1);
        assert!((coordinates[9].0 - 300.0).abs() < 0.1);
    }
}
