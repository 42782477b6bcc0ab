//! Serving a service's router on its TCP listener, with the bounds `axum::serve` lacks: a
//! client that opens connections and then sends nothing, or its headers a byte at a time
//! (slowloris), would hold them — and the file descriptors and memory behind them — forever.
//!
//! - A connection with no request in flight (a request counts until its answer is nearly all
//!   sent) is closed after the header timeout: whether it never sends a request, sends its
//!   headers too slowly, or sits idle between keep-alive requests; this also covers the
//!   protocol sniffing before HTTP/1 or HTTP/2 is known, and idle HTTP/2 connections. Why
//!   not hyper's HTTP/1 header read timeout: it arms a new timer for every request, where
//!   this watch costs a request two atomic counts and a clock read, and wakes the
//!   connection once per timeout period.
//! - At most `max_connections` are open at once. Beyond the cap the accept loop waits for a
//!   slot: new connections queue in the kernel's listen backlog instead of being reset, so an
//!   honest client is delayed (by a header timeout per cap's worth of connections ahead of
//!   it, as held connections are closed) rather than refused, and connections already open
//!   keep being served. [`bind`] gives that queue room: [`BACKLOG`], where the standard
//!   library's 128 overflows under a burst and the connections beyond it wait for SYN
//!   retransmissions (1 s, 3 s, 7 s…).
//! - Each connection's requests carry [`ConnectInfo<SocketAddr>`] (as with axum's
//!   `into_make_service_with_connect_info`), for per-client limits.
//! - TCP_NODELAY: small answers (acks, errors) go out at once, also when pipelined.
//! - At shutdown the listener closes, requests in flight are answered and every connection
//!   is closed; whatever still runs after the grace period is cut off.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long connections get to finish at shutdown by default: less than the 10 s `docker
/// stop` and systemd give before SIGKILL, so the service still flushes its state.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(8);

/// Room in the listen queue for connections not yet accepted (the kernel caps it at
/// `net.core.somaxconn`, 4096 by default since Linux 5.4).
pub const BACKLOG: u32 = 1024;

/// Pause after an accept error other than a connection's own (out of file descriptors):
/// retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// The bounds of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest a connection may go without a request in flight: to send its first request's
    /// headers, or the next one's after an answer.
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long a closing connection may finish its requests in flight, at shutdown or once
    /// idle, before it is cut off.
    pub grace: Duration,
}

impl Limits {
    /// Limits with the [`DEFAULT_GRACE`].
    pub fn new(header_timeout: Duration, max_connections: usize) -> Self {
        Self {
            header_timeout,
            max_connections,
            grace: DEFAULT_GRACE,
        }
    }
}

/// A listener on `addr` with a [`BACKLOG`]-long queue (address reuse as the standard
/// library sets it, so a restarted service rebinds at once). Call within a Tokio runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled, then returns
/// once every connection has closed (at most the grace period later).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    // Every connection holds a slot until its task ends, so taking them all back at the end
    // is waiting for every connection.
    let most = Semaphore::MAX_PERMITS.min(u32::MAX as usize);
    let slots_total = limits.max_connections.clamp(1, most);
    let slots = Arc::new(Semaphore::new(slots_total));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            peer,
            limits,
            shutdown: shutdown.clone(),
            _slot: slot,
        };
        tokio::spawn(connection.run(tcp));
    }
    drop(listener);
    let _ = slots.acquire_many(slots_total as u32).await;
}

/// Errors of one connection that was gone before it was accepted: nothing to wait for.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// One accepted connection and what it needs to be served.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    peer: SocketAddr,
    limits: Limits,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, tcp: TcpStream) {
        let activity = Arc::new(Activity::new());
        let service = PeerService {
            router: self.router,
            peer: self.peer,
            activity: activity.clone(),
        };
        let mut served = pin!(self.builder.serve_connection(TokioIo::new(tcp), service));
        let mut idle_check = pin!(tokio::time::sleep(self.limits.header_timeout));
        let mut cut_off = pin!(tokio::time::sleep(Duration::ZERO));
        let mut closing = false;
        loop {
            tokio::select! {
                // The connection first: a request that has arrived counts before the idle
                // check looks.
                biased;
                ended = served.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended");
                    }
                    return;
                }
                () = &mut idle_check, if !closing => {
                    match activity.idle_until(self.limits.header_timeout) {
                        Some(next_check) => {
                            idle_check.as_mut().reset(next_check);
                            continue;
                        }
                        // Nothing in flight to finish (a request still arriving is the
                        // client's delay): closed at once.
                        None => {
                            tracing::debug!(peer = %self.peer, "closing an idle connection");
                            return;
                        }
                    }
                }
                () = self.shutdown.cancelled(), if !closing => {}
                () = &mut cut_off, if closing => return,
            }
            // Shutting down: answer what is in flight, then close; a peer that holds the
            // close up (an HTTP/2 client not acknowledging) is cut off after the grace.
            served.as_mut().graceful_shutdown();
            cut_off.as_mut().reset(Instant::now() + self.limits.grace);
            closing = true;
        }
    }
}

/// A connection's requests in flight and when it last had none, shared by its service and
/// its idle check.
struct Activity {
    in_flight: AtomicUsize,
    /// When the count last fell to zero (or the connection opened), in milliseconds since
    /// `opened`.
    idle_since_ms: AtomicU64,
    opened: Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let ms = self.opened.elapsed().as_millis() as u64;
            self.idle_since_ms.store(ms, Ordering::Release);
        }
    }

    /// When to look again, or `None` once no request has been in flight for `limit`.
    fn idle_until(&self, limit: Duration) -> Option<Instant> {
        let now = Instant::now();
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Some(now + limit);
        }
        let since = self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        let until = since + limit;
        (until > now).then_some(until)
    }
}

/// The router as one connection's service: tags each request with the peer's address and
/// counts the requests in flight, each until its answer's body is sent (so a slow download
/// is not taken for an idle connection).
#[derive(Clone)]
struct PeerService {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for PeerService {
    type Response = Response<Counted>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Counted>, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let busy = Busy::start(self.activity.clone());
        let router = self.router.clone();
        Box::pin(async move {
            let answer = router.oneshot(request.map(Body::new)).await?;
            Ok(answer.map(|body| Counted {
                body,
                held: None,
                _busy: busy,
            }))
        })
    }
}

/// Largest piece of an answer's body handed to hyper at once.
const FRAME_BYTES: usize = 64 * 1024;

/// An answer's body, keeping its request counted in flight until hyper drops it (sent, or
/// abandoned with the connection). It is handed over in pieces of at most [`FRAME_BYTES`]:
/// hyper takes the next piece only as the client reads, so the body is dropped when little
/// is left to send — a whole large body would be taken (and dropped) at once.
struct Counted {
    body: Body,
    /// The rest of a data frame larger than a piece.
    held: Option<Bytes>,
    _busy: Busy,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut data = match self.held.take() {
            Some(data) => data,
            None => match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            },
        };
        if data.len() > FRAME_BYTES {
            self.held = Some(data.split_off(FRAME_BYTES));
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.body.size_hint();
        let held = self.held.as_ref().map_or(0, |data| data.len() as u64);
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint.set_lower(inner.lower() + held);
        hint
    }
}

/// One request in flight, counted until dropped (answered, or abandoned with its
/// connection).
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.request_started();
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `router` within `limits` on a loopback port.
    async fn start_router(
        router: Router,
        limits: Limits,
    ) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router, limits, shutdown.clone()));
        (addr, shutdown, task)
    }

    /// A served router with `/` (answers `ok`), `/peer` (the peer address seen), `/slow`
    /// (answers after 300 ms) and `/hang` (never answers).
    async fn start(limits: Limits) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let router = Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            )
            .route("/hang", get(std::future::pending::<&'static str>));
        start_router(router, limits).await
    }

    /// Sends `GET path` on `tcp` (keep-alive) and reads the answer's body.
    async fn get_on(tcp: &mut TcpStream, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0_u8; 1024];
        loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed mid-answer: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body.to_owned();
                }
            }
        }
    }

    /// Reads until the server closes `tcp`, for at most `limit`; how long that took.
    async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Duration {
        let started = Instant::now();
        let mut sink = [0_u8; 1024];
        tokio::time::timeout(limit, async {
            while let Ok(n) = tcp.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await
        .expect("the server did not close the connection");
        started.elapsed()
    }

    fn limits(header_timeout_ms: u64, max_connections: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(header_timeout_ms),
            max_connections,
            grace: Duration::from_millis(300),
        }
    }

    #[tokio::test]
    async fn slow_silent_and_idle_connections_are_closed_after_the_header_timeout() {
        let timeout = Duration::from_millis(400);
        let (addr, shutdown, task) = start(limits(400, 64)).await;
        let opened = Instant::now();
        // Nothing at all: not even enough to tell HTTP/1 from HTTP/2.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // One byte of the headers every 100 ms: never done within the timeout.
        let mut dribbling = TcpStream::connect(addr).await.unwrap();
        let dribble = tokio::spawn(async move {
            for byte in b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: yes" {
                if dribbling.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            dribbling
        });
        // The start of the HTTP/2 preface, then silence.
        let mut sniffed = TcpStream::connect(addr).await.unwrap();
        sniffed.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        // An HTTP/2 connection (preface, empty settings) that never opens a stream.
        let mut h2 = TcpStream::connect(addr).await.unwrap();
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        // A keep-alive connection, idle after one answer.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert_eq!(get_on(&mut idle, "/").await, "ok");

        let patience = Duration::from_secs(3);
        closed_within(&mut silent, patience).await;
        let first = opened.elapsed();
        assert!(first >= timeout - Duration::from_millis(50), "{first:?}");
        for tcp in [&mut sniffed, &mut h2, &mut idle] {
            closed_within(tcp, patience).await;
        }
        // Writing fails once the server has closed, long before the 4 s the headers take.
        let mut dribbling = dribble.await.unwrap();
        closed_within(&mut dribbling, patience).await;
        let all = opened.elapsed();
        assert!(all < timeout * 3 + Duration::from_millis(300), "{all:?}");

        // A connection kept busy outlives the timeout.
        let mut busy = TcpStream::connect(addr).await.unwrap();
        for _ in 0..6 {
            assert_eq!(get_on(&mut busy, "/").await, "ok");
            tokio::time::sleep(timeout / 4).await;
        }
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_slot() {
        let (addr, shutdown, task) = start(limits(10_000, 2)).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        assert_eq!(get_on(&mut first, "/").await, "ok");
        assert_eq!(get_on(&mut second, "/").await, "ok");
        // The third is in the backlog, not served, while both slots are held…
        let mut third = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(500), get_on(&mut third, "/"));
        assert!(waiting.await.is_err(), "a third connection was served");
        // …and is served once one closes (its request was already sent).
        drop(first);
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), async {
            while !String::from_utf8_lossy(&answer).ends_with("ok") {
                let mut chunk = [0_u8; 256];
                let n = third.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                answer.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("the waiting connection was not served once a slot freed");
        assert_eq!(get_on(&mut second, "/").await, "ok");
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_backlog() {
        // Nobody accepts: every connection stays in the listen queue. 400 overflow the
        // standard library's 128 (given net.core.somaxconn >= 400, Linux's default).
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..400 {
            burst.spawn(tokio::time::timeout(
                Duration::from_millis(800),
                TcpStream::connect(addr),
            ));
        }
        let connected = burst.join_all().await;
        let waiting = connected.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
        assert_eq!(waiting, 400);
    }

    #[tokio::test]
    async fn a_download_the_client_pauses_is_not_an_idle_connection() {
        // 16 MiB, far more than the socket buffers hold: while the client pauses, the answer
        // is still being sent, long after the header timeout and the grace.
        let length = 16 << 20;
        let router = Router::new().route("/big", get(move || async move { vec![b'x'; length] }));
        let (addr, shutdown, task) = start_router(router, limits(300, 8)).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut chunk = vec![0_u8; 64 * 1024];
        let mut received = tcp.read(&mut chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        while received < length {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "cut off after {received} bytes");
            received += n;
        }
        drop(tcp);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn requests_carry_the_peer_address() {
        let (addr, shutdown, task) = start(limits(10_000, 8)).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        assert_eq!(get_on(&mut tcp, "/peer").await, local.to_string());
        drop(tcp);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_answers_requests_in_flight_and_cuts_off_after_the_grace() {
        let (addr, shutdown, task) = start(limits(10_000, 8)).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let mut hung = TcpStream::connect(addr).await.unwrap();
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert_eq!(get_on(&mut idle, "/").await, "ok");
        hung.write_all(b"GET /hang HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let answer = tokio::spawn(async move { get_on(&mut slow, "/slow").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        shutdown.cancel();
        // The request in flight is answered in full.
        assert_eq!(answer.await.unwrap(), "done");
        // The idle connection is closed at once, the hung one after the grace (300 ms).
        assert!(
            closed_within(&mut idle, Duration::from_secs(2)).await < Duration::from_millis(250)
        );
        closed_within(&mut hung, Duration::from_secs(2)).await;
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("serve did not return within the grace")
            .unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        // The listener is closed.
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
