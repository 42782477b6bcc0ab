//! Keep-alive connections from the relay to servers.
//!
//! Plain `http://` servers (the usual case: a server next to the proxy, or on a private
//! network) are reached over hyper's HTTP/1.1 client, with a list of idle connections per
//! server that requests take and give back: on the relay's hot path that costs a fraction of
//! a general-purpose client (no URL parsing, no per-request pool bookkeeping or layers).
//! `https://` servers go through reqwest (TLS, HTTP/2).
//!
//! A connection goes back to its server's idle list once its answer has been read to the
//! end; one the server closed meanwhile is dropped when next taken. A request that a kept
//! connection could not even send (the server had just closed it) is sent again on a new
//! connection, so keep-alive races never count against a server. Every answer body carries
//! the attempt's deadline: a server that stops sending mid-body is cut off.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};

use crate::Error;

/// A server's idle plain-HTTP connections.
#[derive(Debug, Default)]
pub struct Idle(Mutex<Vec<SendRequest<Body>>>);

impl Idle {
    fn take(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(connection) = idle.pop() {
            if !connection.is_closed() {
                return Some(connection);
            }
        }
        None
    }

    fn put(&self, connection: SendRequest<Body>, max: usize) {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < max && !connection.is_closed() {
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
    /// answer's head until `deadline`; the body, read later, is bounded by it too.
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
                    self.send_plain(authority, host, prefix, idle, outgoing, deadline)
                        .await
                }
                Target::Tls { base } => self.send_tls(base, outgoing, deadline).await,
            }
        };
        tokio::time::timeout_at(deadline, sending)
            .await
            .unwrap_or_else(|_| Err(Unanswered::timeout()))
    }

    async fn send_plain(
        &self,
        authority: &str,
        host: &HeaderValue,
        prefix: &str,
        idle: &Arc<Idle>,
        outgoing: &Outgoing<'_>,
        deadline: Instant,
    ) -> Result<Response<Body>, Unanswered> {
        let uri: Uri = if prefix.is_empty() {
            outgoing.path_and_query.parse()
        } else {
            format!("{prefix}{}", outgoing.path_and_query).parse()
        }
        .map_err(|e| Unanswered::new(format!("request URI: {e}")))?;
        let mut request = Request::new(
            outgoing
                .body
                .map_or_else(Body::empty, |b| Body::from(b.clone())),
        );
        *request.method_mut() = outgoing.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = outgoing.headers.clone();
        request.headers_mut().insert(header::HOST, host.clone());
        // A kept connection first; if the server had closed it before the request went out,
        // a new one.
        let mut request = Some(request);
        let mut kept = idle.take();
        loop {
            let fresh = kept.is_none();
            let mut connection = match kept.take() {
                Some(connection) => connection,
                None => self.connect(authority).await?,
            };
            let Some(sending) = request.take() else {
                return Err(Unanswered::new("request lost"));
            };
            match connection.try_send_request(sending).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = Returning {
                        body,
                        connection: Some(connection),
                        idle: Arc::clone(idle),
                        max_idle: self.max_idle,
                        deadline,
                        timer: None,
                    };
                    return Ok(Response::from_parts(parts, Body::new(body)));
                }
                Err(mut error) => {
                    request = error.take_message();
                    if fresh || request.is_none() {
                        return Err(Unanswered::new(rot_proto::error_chain(error.error())));
                    }
                }
            }
        }
    }

    /// A new connection to `authority`, its HTTP/1.1 machinery running as a task.
    async fn connect(&self, authority: &str) -> Result<SendRequest<Body>, Unanswered> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(authority),
        )
        .await
        .map_err(|_| Unanswered::new(format!("connecting to {authority} timed out")))?
        .map_err(|e| Unanswered::new(format!("connecting to {authority}: {e}")))?;
        // Small requests and answers go out at once.
        let _ = stream.set_nodelay(true);
        let (connection, machinery) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Unanswered::new(rot_proto::error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = machinery.await {
                tracing::debug!(error = %e, "relay connection ended");
            }
        });
        Ok(connection)
    }

    async fn send_tls(
        &self,
        base: &str,
        outgoing: &Outgoing<'_>,
        deadline: Instant,
    ) -> Result<Response<Body>, Unanswered> {
        let mut request = self
            .tls
            .request(
                outgoing.method.clone(),
                format!("{base}{}", outgoing.path_and_query),
            )
            .headers(outgoing.headers.clone())
            .timeout(deadline.saturating_duration_since(Instant::now()));
        if let Some(body) = outgoing.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.map_err(|e| Unanswered {
            reason: rot_proto::error_chain(&e),
            timed_out: e.is_timeout(),
        })?;
        let (parts, body) = Response::from(response).into_parts();
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

/// An answer body that gives its connection back when read to the end, and fails at the
/// attempt's deadline.
struct Returning {
    body: Incoming,
    connection: Option<SendRequest<Body>>,
    idle: Arc<Idle>,
    max_idle: usize,
    deadline: Instant,
    /// Set only when the body has to be waited for (most arrive with the answer's head).
    timer: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(None) => {
                if let Some(connection) = this.connection.take() {
                    this.idle.put(connection, this.max_idle);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(Into::into))),
            Poll::Pending => match this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(this.deadline)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => {
                    this.connection = None;
                    Poll::Ready(Some(Err(
                        "the server did not finish its answer in time".into()
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
