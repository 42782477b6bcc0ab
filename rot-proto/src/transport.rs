//! HTTP GET for the conformance checks and the wallet client (feature `client`): one
//! request with a timeout and a cap on the body, and the one place that decides what an
//! answer means. "No answer" (refused, timed out, busy, 5xx) is kept apart from "a wrong
//! answer", because only the latter says anything about the server's honesty.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::message::ErrorBody;
use crate::{Error, PublicKey};

/// The header in which a proxy names the server that answered a relayed request.
pub const SERVER_HEADER: &str = "x-rot-server";

/// Longest excerpt of a body quoted in errors and evidence.
const EXCERPT_CHARS: usize = 300;

/// An HTTP client with the limits every request gets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    timeout: Duration,
    max_body_bytes: u64,
}

impl Transport {
    /// Whole-request timeout unless set otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Largest body read unless set otherwise: above any Esplora answer of a sane address.
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

    /// Requests through `http` with the default limits.
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            timeout: Self::DEFAULT_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Gives up on a request after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Refuses bodies longer than `max_body_bytes`.
    pub fn with_max_body_bytes(mut self, max_body_bytes: u64) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// `GET url`: the answer whatever its status, or [`Error::Unreachable`] when none came
    /// (or it was cut short, or over the size limit).
    pub async fn get(&self, url: &str) -> Result<Answer, Error> {
        let unreachable = |reason: String| Error::Unreachable {
            url: url.to_owned(),
            reason,
        };
        let mut response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| unreachable(describe(&e)))?;
        let too_large = |size: u64| {
            unreachable(format!(
                "answer of {size} bytes is over the limit of {} bytes",
                self.max_body_bytes
            ))
        };
        if let Some(announced) = response
            .content_length()
            .filter(|&len| len > self.max_body_bytes)
        {
            return Err(too_large(announced));
        }
        let status = response.status().as_u16();
        let server = response
            .headers()
            .get(SERVER_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(describe(&e)))?
        {
            let size = (body.len() + chunk.len()) as u64;
            if size > self.max_body_bytes {
                return Err(too_large(size));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            url: url.to_owned(),
            status,
            server,
            body,
        })
    }
}

impl Default for Transport {
    fn default() -> Self {
        Self::new(reqwest::Client::new())
    }
}

impl From<reqwest::Client> for Transport {
    fn from(http: reqwest::Client) -> Self {
        Self::new(http)
    }
}

/// One HTTP answer, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The URL asked.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The `X-Rot-Server` header as sent, when a proxy relayed the request.
    pub server: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The answer if its status is 2xx. Otherwise [`Error::Unreachable`] for statuses that
    /// mean "cannot answer now" (429, 500, 502, 503, 504), else [`Error::HttpStatus`] with the
    /// error body's code and message.
    pub fn success(self) -> Result<Self, Error> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let (code, message) = match self.error_body() {
            Some(body) => (Some(body.error.code), body.error.message),
            None => (None, self.excerpt()),
        };
        if matches!(self.status, 429 | 500 | 502 | 503 | 504) {
            return Err(Error::Unreachable {
                url: self.url,
                reason: format!("HTTP {}: {message}", self.status),
            });
        }
        Err(Error::HttpStatus {
            url: self.url,
            status: self.status,
            code,
            message,
        })
    }

    /// The shared error body, if the body is one.
    pub fn error_body(&self) -> Option<ErrorBody> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as UTF-8 text without surrounding whitespace.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map(str::trim)
            .map_err(|_| self.bad("the body is not UTF-8 text"))
    }

    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            self.bad(&format!(
                "not the expected JSON ({e}): {:?}",
                self.excerpt()
            ))
        })
    }

    /// The body's text, parsed with `FromStr` (a height, a hash).
    pub fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, Error> {
        let text = self.text()?;
        text.parse()
            .map_err(|_| self.bad(&format!("expected {what}, got {:?}", self.excerpt())))
    }

    /// The server a proxy says answered, when it said so with a valid key.
    pub fn server_key(&self) -> Option<PublicKey> {
        self.server.as_deref()?.parse().ok()
    }

    /// The start of the body as text, for errors and evidence.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
        if text.chars().count() > EXCERPT_CHARS {
            excerpt.push('…');
        }
        excerpt
    }

    /// [`Error::BadAnswer`] about this answer.
    pub fn bad(&self, reason: &str) -> Error {
        Error::BadAnswer {
            url: self.url.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// reqwest's error with its causes, which hold the useful part ("connection refused").
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    crate::error_chain(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            url: "http://127.0.0.1:1/x".to_owned(),
            status,
            server: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_are_classified() {
        assert!(answer(200, "1").success().is_ok());
        for busy in [429, 500, 502, 503, 504] {
            assert!(matches!(
                answer(busy, "").success(),
                Err(Error::Unreachable { .. })
            ));
        }
        let err = answer(
            404,
            r#"{"error":{"code":"not_found","message":"no such tx"}}"#,
        )
        .success()
        .unwrap_err();
        match err {
            Error::HttpStatus {
                status,
                code,
                message,
                ..
            } => {
                assert_eq!(status, 404);
                assert_eq!(code.as_deref(), Some("not_found"));
                assert_eq!(message, "no such tx");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            answer(501, "plain").success(),
            Err(Error::HttpStatus {
                status: 501,
                code: None,
                ..
            })
        ));
    }

    #[test]
    fn bodies_parse_or_say_why_not() {
        assert_eq!(answer(200, " 42\n").parse::<u32>("a height").unwrap(), 42);
        let err = answer(200, "x".repeat(1000).as_str())
            .parse::<u32>("a height")
            .unwrap_err();
        assert!(matches!(err, Error::BadAnswer { .. }));
        assert!(err.to_string().len() < 500, "{err}");
        assert!(answer(200, "[1").json::<Vec<u8>>().is_err());
    }
}
