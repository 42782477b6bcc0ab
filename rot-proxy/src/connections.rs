//! Keep-alive connections from the relay to servers.
//!
//! Plain `http://` servers (the usual case: a server next to the proxy, or on a private
//! network) are spoken to by a small HTTP/1.1 client made for the relay's hot path: the task
//! relaying a wallet's request writes it to a kept connection and reads the answer itself.
//! A general-purpose client (hyper's, behind reqwest) runs each connection as a task of its
//! own and passes requests, answers and body chunks to it and back through channels; here a
//! typical request costs one write and one read, and no task switch. `https://` servers go
//! through reqwest (TLS, HTTP/2).
//!
//! - Answers of a known length up to [`BUFFER_BYTES`] are read whole before [`Connections::send`]
//!   returns, so a server that fails mid-body fails the attempt (which the relay retries
//!   elsewhere). Longer answers, chunked ones and ones that end with the connection stream,
//!   bounded by the attempt's deadline.
//! - A connection goes back to its server's idle list once its answer has been read to the
//!   end, unless the server asked to close it or sent more than the answer.
//! - A request that a kept connection got no byte of answer to (the server had closed it
//!   while idle, a keep-alive race) is sent again on a new connection, so such races never
//!   count against a server. Only then: the relay sends a request at most once per attempt
//!   otherwise.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use bytes::{Buf, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

use crate::Error;

/// Answers of a known length up to this are read whole before they are passed on (and so
/// can be retried if the server fails mid-body).
pub const BUFFER_BYTES: usize = 64 * 1024;
/// Longest answer head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in an answer head.
const MAX_HEADERS: usize = 100;
/// Room made in a connection's buffer before each read.
const READ_BYTES: usize = 16 * 1024;
/// Longest chunk-size or trailer line of a chunked answer.
const MAX_LINE_BYTES: usize = 4 * 1024;

/// One open connection to a server, with what it read beyond the answer so far.
#[derive(Debug)]
struct Kept {
    stream: TcpStream,
    buffer: BytesMut,
}

impl Kept {
    /// Makes room for `room` more bytes in the buffer and reads into it; `Ok(0)` when the
    /// server closed the connection.
    fn poll_read_more(&mut self, cx: &mut Context<'_>, room: usize) -> Poll<io::Result<usize>> {
        self.buffer.reserve(room);
        poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buffer)
    }

    async fn read_more(&mut self, room: usize) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read_more(cx, room)).await
    }
}

/// A server's idle plain-HTTP connections.
#[derive(Debug, Default)]
pub struct Idle(Mutex<Vec<Kept>>);

impl Idle {
    fn take(&self) -> Option<Kept> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    fn put(&self, connection: Kept, max: usize) {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < max {
            idle.push(connection);
        }
    }
}

/// How a server is reached, from its base URL.
#[derive(Debug, Clone)]
pub enum Target {
    /// `http://authority/prefix`: kept connections.
    Plain {
        /// `host:port`, connected to.
        authority: Arc<str>,
        /// The `Host` header.
        host: HeaderValue,
        /// The base URL's path, put before every request path.
        prefix: Arc<str>,
    },
    /// `https://…`: through reqwest.
    Tls {
        /// The base URL.
        base: Arc<str>,
    },
}

impl Target {
    /// The target of a (normalised) base URL.
    pub fn of(base: &str) -> Self {
        let plain = base.strip_prefix("http://").and_then(|rest| {
            let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = if authority.contains(':') {
                authority.to_owned()
            } else {
                format!("{authority}:80")
            };
            let host = HeaderValue::from_str(rest.split('/').next()?).ok()?;
            Some(Self::Plain {
                authority: Arc::from(authority),
                host,
                prefix: Arc::from(prefix),
            })
        });
        plain.unwrap_or_else(|| Self::Tls {
            base: Arc::from(base),
        })
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswered {
    /// What happened.
    pub reason: String,
    /// Whether the deadline passed.
    pub timed_out: bool,
}

impl Unanswered {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            timed_out: false,
        }
    }

    fn timeout() -> Self {
        Self {
            reason: "timed out".into(),
            timed_out: true,
        }
    }
}

/// One request as the relay sends it.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// The method.
    pub method: &'a Method,
    /// Path and query, from `/`.
    pub path_and_query: &'a str,
    /// Headers to send.
    pub headers: &'a HeaderMap,
    /// The body, if any.
    pub body: Option<&'a Bytes>,
}

/// The relay's client of servers.
#[derive(Debug)]
pub struct Connections {
    tls: reqwest::Client,
    connect_timeout: Duration,
    max_idle: usize,
}

impl Connections {
    /// Connections with `connect_timeout`, keeping at most `max_idle` idle ones per server.
    pub fn new(connect_timeout: Duration, max_idle: usize) -> Result<Self, Error> {
        let tls = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(max_idle)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("rot-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("relay HTTP client: {e}")))?;
        Ok(Self {
            tls,
            connect_timeout,
            max_idle,
        })
    }

    /// Sends `outgoing` to `target` (whose idle connections are `idle`) and waits for the
    /// answer until `deadline`: its head, and its body when that is small; a body that
    /// streams is bounded by the deadline too.
    pub async fn send(
        &self,
        target: &Target,
        idle: &Arc<Idle>,
        outgoing: &Outgoing<'_>,
        deadline: Instant,
    ) -> Result<Response<Body>, Unanswered> {
        let sending = async {
            match target {
                Target::Plain {
                    authority,
                    host,
                    prefix,
                } => {
                    let request = request_bytes(host, prefix, outgoing);
                    self.send_plain(authority, idle, &request, outgoing.method, deadline)
                        .await
                }
                Target::Tls { base } => self.send_tls(base, outgoing).await,
            }
        };
        tokio::time::timeout_at(deadline, sending)
            .await
            .unwrap_or_else(|_| Err(Unanswered::timeout()))
    }

    async fn send_plain(
        &self,
        authority: &str,
        idle: &Arc<Idle>,
        request: &[u8],
        method: &Method,
        deadline: Instant,
    ) -> Result<Response<Body>, Unanswered> {
        let mut kept = idle.take();
        loop {
            let reused = kept.is_some();
            let mut connection = match kept.take() {
                Some(connection) => connection,
                None => self.connect(authority).await?,
            };
            let head = match exchange(&mut connection, request, method).await {
                Ok(head) => head,
                // The server closed the kept connection before it got the request.
                Err(Exchange::NoAnswer(_)) if reused => continue,
                Err(Exchange::NoAnswer(reason) | Exchange::Failed(reason)) => {
                    return Err(Unanswered::new(reason));
                }
            };
            let mut body = Streaming {
                connection: Some(connection),
                framing: head.framing,
                reusable: head.keep_alive,
                idle: Arc::clone(idle),
                max_idle: self.max_idle,
                deadline,
                timer: None,
            };
            let body = match body.framing {
                Framing::Length(length) if length <= BUFFER_BYTES as u64 => body
                    .read_whole(length as usize)
                    .await
                    .map(Body::from)
                    .map_err(|e| Unanswered::new(format!("reading the answer: {e}")))?,
                _ => Body::new(body),
            };
            let mut response = Response::new(body);
            *response.status_mut() = head.status;
            *response.headers_mut() = head.headers;
            return Ok(response);
        }
    }

    /// A new connection to `authority`.
    async fn connect(&self, authority: &str) -> Result<Kept, Unanswered> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority))
            .await
            .map_err(|_| Unanswered::new(format!("connecting to {authority} timed out")))?
            .map_err(|e| Unanswered::new(format!("connecting to {authority}: {e}")))?;
        // Small requests go out at once.
        let _ = stream.set_nodelay(true);
        Ok(Kept {
            stream,
            buffer: BytesMut::with_capacity(READ_BYTES),
        })
    }

    async fn send_tls(
        &self,
        base: &str,
        outgoing: &Outgoing<'_>,
    ) -> Result<Response<Body>, Unanswered> {
        let mut request = self
            .tls
            .request(
                outgoing.method.clone(),
                format!("{base}{}", outgoing.path_and_query),
            )
            .headers(outgoing.headers.clone());
        if let Some(body) = outgoing.body {
            request = request.body(body.clone());
        }
        let failed = |e: reqwest::Error| Unanswered {
            reason: rot_proto::error_chain(&e),
            timed_out: e.is_timeout(),
        };
        let response = request.send().await.map_err(failed)?;
        let small = response
            .content_length()
            .is_some_and(|length| length <= BUFFER_BYTES as u64);
        let (parts, body) = Response::from(response).into_parts();
        let body = if small {
            let whole = axum::body::to_bytes(Body::new(body), BUFFER_BYTES)
                .await
                .map_err(|e| Unanswered::new(format!("reading the answer: {e}")))?;
            Body::from(whole)
        } else {
            Body::new(body)
        };
        Ok(Response::from_parts(parts, body))
    }
}

/// The request line, headers and body of `outgoing`, as sent.
fn request_bytes(host: &HeaderValue, prefix: &str, outgoing: &Outgoing<'_>) -> Vec<u8> {
    let body = outgoing.body.map_or(&[][..], |b| &b[..]);
    let mut out = Vec::with_capacity(128 + outgoing.path_and_query.len() + body.len());
    out.extend_from_slice(outgoing.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(outgoing.path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in outgoing.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if outgoing.body.is_some() {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// How an exchange on a connection failed.
#[derive(Debug)]
enum Exchange {
    /// Not a byte of answer came: on a kept connection, the server had closed it.
    NoAnswer(String),
    /// Anything else.
    Failed(String),
}

/// An answer's head, as read.
#[derive(Debug)]
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    /// Whether the connection may carry another request after this answer.
    keep_alive: bool,
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// After this many more bytes.
    Length(u64),
    /// Chunked, at the given step.
    Chunked(Chunked),
    /// When the server closes the connection.
    ToClose,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk, with this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// In the trailer, after the last chunk.
    Trailer,
}

/// Writes `request` on `connection` and reads the answer's head (skipping interim 1xx
/// answers).
async fn exchange(
    connection: &mut Kept,
    request: &[u8],
    method: &Method,
) -> Result<Head, Exchange> {
    if let Err(e) = connection.stream.write_all(request).await {
        return Err(Exchange::NoAnswer(format!("sending the request: {e}")));
    }
    let mut received = false;
    loop {
        if !connection.buffer.is_empty() {
            if let Some(head) = parse_head(&mut connection.buffer, method)? {
                return Ok(head);
            }
            if connection.buffer.len() > MAX_HEAD_BYTES {
                return Err(Exchange::Failed(format!(
                    "the answer's head is longer than {MAX_HEAD_BYTES} bytes"
                )));
            }
        }
        match (connection.read_more(READ_BYTES).await, received) {
            (Ok(0), false) => {
                return Err(Exchange::NoAnswer(
                    "the server closed the connection without answering".into(),
                ));
            }
            (Err(e), false) => {
                return Err(Exchange::NoAnswer(format!("reading the answer: {e}")));
            }
            (Ok(0), true) => {
                return Err(Exchange::Failed(
                    "the server closed the connection within the answer's head".into(),
                ));
            }
            (Err(e), true) => {
                return Err(Exchange::Failed(format!("reading the answer: {e}")));
            }
            (Ok(_), _) => received = true,
        }
    }
}

/// The answer head at the start of `buffer`, taken off it; `None` while it is incomplete,
/// and for an interim (1xx) answer, which is dropped.
fn parse_head(buffer: &mut BytesMut, method: &Method) -> Result<Option<Head>, Exchange> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let length = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Exchange::Failed(format!("malformed answer head: {e}"))),
    };
    let malformed = |what: &str| Exchange::Failed(format!("malformed answer head: {what}"));
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| malformed("status"))?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Exchange::Failed(
                "the server switched protocols unasked".into(),
            ));
        }
        buffer.advance(length);
        return parse_head(buffer, method);
    }
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    let mut keep_alive = parsed.version == Some(1);
    let mut content_length: Option<u64> = None;
    let mut chunked = None;
    for field in parsed.headers.iter() {
        let name =
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| malformed("header name"))?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| malformed("header value"))?;
        if name == axum::http::header::CONNECTION {
            keep_alive &= !has_token(field.value, "close");
        } else if name == axum::http::header::CONTENT_LENGTH {
            let length = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| malformed("content-length"))?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(malformed("conflicting content-length"));
            }
            content_length = Some(length);
        } else if name == axum::http::header::TRANSFER_ENCODING {
            // The last coding decides: chunked ends the body, anything else reads to close.
            chunked = Some(last_token_is(field.value, "chunked"));
        }
        headers.append(name, value);
    }
    buffer.advance(length);
    let no_body = method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (no_body, chunked, content_length) {
        (true, _, _) => Framing::Length(0),
        (false, Some(true), _) => Framing::Chunked(Chunked::Size),
        (false, Some(false), _) | (false, None, None) => Framing::ToClose,
        (false, None, Some(length)) => Framing::Length(length),
    };
    keep_alive &= framing != Framing::ToClose;
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether the last item of a comma-separated header value is `token` (case-insensitive).
fn last_token_is(value: &[u8], token: &str) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// An answer's body read from its connection, which goes back to the idle list once the
/// body is read to its end (and dropped otherwise); fails at the attempt's deadline.
struct Streaming {
    connection: Option<Kept>,
    framing: Framing,
    reusable: bool,
    idle: Arc<Idle>,
    max_idle: usize,
    deadline: Instant,
    /// Set only when the body has to be waited for.
    timer: Option<Pin<Box<Sleep>>>,
}

/// What the bytes at hand of a body give.
enum Decoded {
    /// Body data.
    Data(Bytes),
    /// The body ended.
    End,
    /// More bytes are needed.
    More,
}

impl Streaming {
    /// Reads a body of `length` bytes whole.
    async fn read_whole(&mut self, length: usize) -> io::Result<Bytes> {
        let connection = self.connection.as_mut().ok_or_else(gone)?;
        while connection.buffer.len() < length {
            let missing = length - connection.buffer.len();
            if connection.read_more(missing).await? == 0 {
                return Err(closed_early());
            }
        }
        let whole = connection.buffer.split_to(length).freeze();
        self.framing = Framing::Length(0);
        self.finish();
        Ok(whole)
    }

    /// The body ended: the connection goes back to idle if it may be used again.
    fn finish(&mut self) {
        if let Some(connection) = self.connection.take()
            && self.reusable
            && connection.buffer.is_empty()
        {
            self.idle.put(connection, self.max_idle);
        }
    }

    /// Decodes what the connection's buffer holds of the body.
    fn decode(&mut self) -> io::Result<Decoded> {
        let connection = self.connection.as_mut().ok_or_else(gone)?;
        let buffer = &mut connection.buffer;
        loop {
            match self.framing {
                Framing::Length(0) => return Ok(Decoded::End),
                Framing::Length(left) | Framing::Chunked(Chunked::Data(left)) => {
                    if buffer.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let take = left.min(buffer.len() as u64);
                    let data = buffer.split_to(take as usize).freeze();
                    self.framing = match self.framing {
                        Framing::Length(_) => Framing::Length(left - take),
                        _ if take == left => Framing::Chunked(Chunked::DataEnd),
                        _ => Framing::Chunked(Chunked::Data(left - take)),
                    };
                    return Ok(Decoded::Data(data));
                }
                Framing::ToClose => {
                    if buffer.is_empty() {
                        return Ok(Decoded::More);
                    }
                    return Ok(Decoded::Data(buffer.split().freeze()));
                }
                Framing::Chunked(step) => {
                    let Some(line) = take_line(buffer)? else {
                        return Ok(Decoded::More);
                    };
                    self.framing = Framing::Chunked(match step {
                        Chunked::Size => match chunk_size(&line)? {
                            0 => Chunked::Trailer,
                            size => Chunked::Data(size),
                        },
                        Chunked::DataEnd if line.is_empty() => Chunked::Size,
                        Chunked::DataEnd => return Err(invalid("chunk data overran its size")),
                        Chunked::Trailer if line.is_empty() => return Ok(Decoded::End),
                        Chunked::Trailer | Chunked::Data(_) => Chunked::Trailer,
                    });
                }
            }
        }
    }
}

/// Takes a CRLF-ended line (without the CRLF) off `buffer`; `None` while it is incomplete.
fn take_line(buffer: &mut BytesMut) -> io::Result<Option<BytesMut>> {
    match buffer.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let line = buffer.split_to(end);
            buffer.advance(2);
            Ok(Some(line))
        }
        None if buffer.len() > MAX_LINE_BYTES => Err(invalid("chunk line too long")),
        None => Ok(None),
    }
}

/// The size of a chunk from its size line (hex digits, then maybe extensions).
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.len() <= 16)
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        .ok_or_else(|| invalid("malformed chunk size"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn closed_early() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection within the answer",
    )
}

fn gone() -> io::Error {
    io::Error::other("the answer's connection is gone")
}

impl http_body::Body for Streaming {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.connection.is_none() {
            return Poll::Ready(None);
        }
        loop {
            match this.decode() {
                Ok(Decoded::Data(data)) => {
                    if this.framing == Framing::Length(0) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::More) => {}
                Err(e) => {
                    this.connection = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match connection.poll_read_more(cx, READ_BYTES) {
                Poll::Ready(Ok(0)) if this.framing == Framing::ToClose => {
                    this.connection = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    this.connection = None;
                    return Poll::Ready(Some(Err(closed_early().into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.connection = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Pending => {
                    let deadline = this.deadline;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    ready!(timer.as_mut().poll(cx));
                    this.connection = None;
                    return Poll::Ready(Some(Err(
                        "the server did not finish its answer in time".into()
                    )));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.connection.is_none() || self.framing == Framing::Length(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    #[test]
    fn plain_targets_keep_authority_host_and_prefix() {
        match Target::of("http://127.0.0.1:3002") {
            Target::Plain {
                authority,
                host,
                prefix,
            } => {
                assert_eq!(&*authority, "127.0.0.1:3002");
                assert_eq!(host, "127.0.0.1:3002");
                assert_eq!(&*prefix, "");
            }
            other => panic!("{other:?}"),
        }
        match Target::of("http://ltc.example.org/rot") {
            Target::Plain {
                authority,
                host,
                prefix,
            } => {
                assert_eq!(&*authority, "ltc.example.org:80");
                assert_eq!(host, "ltc.example.org");
                assert_eq!(&*prefix, "/rot");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Target::of("https://ltc.example.org"),
            Target::Tls { .. }
        ));
    }

    /// What a scripted server answers to its `n`th request (counted over all connections):
    /// the bytes, and whether it closes the connection after them.
    type Script = fn(usize) -> (Vec<u8>, bool);

    /// A server on loopback answering by `script`; returns its base URL, the requests it
    /// got (head and body as text) and its count of accepted connections.
    async fn scripted(script: Script) -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/base", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen, accepted) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.parse::<usize>().unwrap());
                        while buffer.len() < end + 4 + length {
                            let mut chunk = [0u8; 4096];
                            let n = stream.read(&mut chunk).await.unwrap();
                            buffer.extend_from_slice(&chunk[..n]);
                        }
                        let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]);
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(format!("{head}\r\n\r\n{body}"));
                            seen.len() - 1
                        };
                        buffer.drain(..end + 4 + length);
                        let (answer, close) = script(n);
                        if stream.write_all(&answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (base, requests, connections)
    }

    /// A client of one scripted server.
    struct Asker {
        connections: Connections,
        target: Target,
        idle: Arc<Idle>,
    }

    /// An answer as a test reads it: status, headers, and the whole body or why not.
    type Answer = (StatusCode, HeaderMap, Result<Bytes, String>);

    impl Asker {
        fn of(base: &str) -> Self {
            Self {
                connections: Connections::new(Duration::from_secs(1), 8).unwrap(),
                target: Target::of(base),
                idle: Arc::default(),
            }
        }

        /// Sends `method path` (with an `accept` header) and reads the whole answer.
        async fn ask(
            &self,
            method: Method,
            path: &str,
            body: Option<Bytes>,
        ) -> Result<Answer, Unanswered> {
            let mut headers = HeaderMap::new();
            headers.insert(
                axum::http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
            let outgoing = Outgoing {
                method: &method,
                path_and_query: path,
                headers: &headers,
                body: body.as_ref(),
            };
            let deadline = Instant::now() + Duration::from_secs(2);
            let response = self
                .connections
                .send(&self.target, &self.idle, &outgoing, deadline)
                .await?;
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .map_err(|e| rot_proto::error_chain(&e));
            Ok((parts.status, parts.headers, body))
        }

        /// `GET path`, which must be answered.
        async fn get(&self, path: &str) -> Answer {
            self.ask(Method::GET, path, None).await.unwrap()
        }
    }

    #[tokio::test]
    async fn requests_reuse_a_kept_connection_and_carry_prefix_host_and_headers() {
        let (base, requests, accepted) = scripted(|n| {
            let body = format!("answer {n}");
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            ([head.into_bytes(), body.into_bytes()].concat(), false)
        })
        .await;
        let asker = Asker::of(&base);
        for n in 0..3 {
            let (status, headers, body) = asker.get("/tx?a=1").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["content-type"], "text/plain");
            assert_eq!(body.unwrap(), format!("answer {n}"));
        }
        let posted = Bytes::from_static(b"0200");
        let (status, _, body) = asker.ask(Method::POST, "/tx", Some(posted)).await.unwrap();
        assert_eq!((status, body.unwrap()), (StatusCode::OK, "answer 3".into()));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let requests = requests.lock().unwrap();
        let host = base.trim_start_matches("http://").trim_end_matches("/base");
        assert_eq!(
            requests[0],
            format!(
                "GET /base/tx?a=1 HTTP/1.1\r\nhost: {host}\r\naccept: application/json\r\n\r\n"
            )
        );
        assert_eq!(
            requests[3],
            format!(
                "POST /base/tx HTTP/1.1\r\nhost: {host}\r\naccept: application/json\r\n\
                 content-length: 4\r\n\r\n0200"
            )
        );
    }

    #[tokio::test]
    async fn chunked_answers_are_decoded_and_the_connection_kept() {
        let (base, _, accepted) = scripted(|_| {
            let answer = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                          5;ext=1\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n";
            (answer.as_bytes().to_vec(), false)
        })
        .await;
        let asker = Asker::of(&base);
        for _ in 0..2 {
            let (status, _, body) = asker.get("/blocks").await;
            assert_eq!(
                (status, body.unwrap()),
                (StatusCode::OK, "hello, world".into())
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn answers_ending_with_the_connection_are_read_to_its_close() {
        let (base, _, accepted) = scripted(|n| {
            let answer = format!("HTTP/1.1 200 OK\r\n\r\nuntil close {n}");
            (answer.into_bytes(), true)
        })
        .await;
        let asker = Asker::of(&base);
        for n in 0..2 {
            let (_, _, body) = asker.get("/x").await;
            assert_eq!(body.unwrap(), format!("until close {n}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_replaced_unnoticed() {
        // Every answer says keep-alive, but the server closes after it.
        let (base, requests, accepted) = scripted(|_| {
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            (answer.as_bytes().to_vec(), true)
        })
        .await;
        let asker = Asker::of(&base);
        for _ in 0..3 {
            let (status, _, body) = asker.get("/x").await;
            assert_eq!((status, body.unwrap()), (StatusCode::OK, "ok".into()));
            // Let the close reach this side.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(requests.lock().unwrap().len(), 3);
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_head_and_close_are_honoured() {
        let (base, _, accepted) = scripted(|n| match n {
            0 => (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                false,
            ),
            // An answer to HEAD has no body whatever its length says.
            1 => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n".to_vec(),
                false,
            ),
            2 => (
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nz".to_vec(),
                false,
            ),
            _ => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\ny".to_vec(),
                false,
            ),
        })
        .await;
        let asker = Asker::of(&base);
        let (status, _, body) = asker.get("/a").await;
        assert_eq!(
            (status, body.unwrap()),
            (StatusCode::NO_CONTENT, Bytes::new())
        );
        let (status, headers, body) = asker.ask(Method::HEAD, "/b", None).await.unwrap();
        assert_eq!((status, body.unwrap()), (StatusCode::OK, Bytes::new()));
        assert_eq!(headers["content-length"], "99");
        let (_, _, body) = asker.get("/c").await;
        assert_eq!(body.unwrap(), "z");
        let (_, _, body) = asker.get("/d").await;
        assert_eq!(body.unwrap(), "y");
        // One connection for the first three, a new one after the server's `close`.
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_long_answer_streams_and_a_cut_one_fails() {
        let (base, _, _) = scripted(|n| {
            let length = BUFFER_BYTES + 10_000;
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n");
            // The second answer stops half way.
            let sent = if n == 0 { length } else { length / 2 };
            ([head.into_bytes(), vec![b'a'; sent]].concat(), n > 0)
        })
        .await;
        let asker = Asker::of(&base);
        let (_, _, body) = asker.get("/raw").await;
        assert_eq!(body.unwrap().len(), BUFFER_BYTES + 10_000);
        let (_, _, body) = asker.get("/raw").await;
        assert!(body.unwrap_err().contains("closed the connection"));
    }

    #[tokio::test]
    async fn a_small_answer_cut_short_or_malformed_is_no_answer() {
        let (base, _, _) = scripted(|n| match n {
            0 => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec(),
                true,
            ),
            1 => (b"HTTP/1.1 2000 Wrong\r\n\r\n".to_vec(), true),
            _ => (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec(),
                true,
            ),
        })
        .await;
        let asker = Asker::of(&base);
        let cut = asker.ask(Method::GET, "/a", None).await;
        assert!(cut.unwrap_err().reason.contains("closed the connection"));
        let malformed = asker.ask(Method::GET, "/b", None).await;
        assert!(
            malformed
                .unwrap_err()
                .reason
                .contains("malformed answer head")
        );
        let (_, _, body) = asker.get("/c").await;
        assert!(body.unwrap_err().contains("malformed chunk size"));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let unanswered = Asker::of(&base)
            .ask(Method::GET, "/x", None)
            .await
            .unwrap_err();
        assert!(unanswered.timed_out);
    }
}
