//! A plain HTTP client of a rot-server's API for tests: every answer comes back with its
//! status and body whatever the status, so tests can assert error answers as closely as
//! successful ones.

use reqwest::Method;
use serde_json::Value;

use crate::Error;

/// One answer of the API.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Api {
            what: "decoding a JSON answer".to_owned(),
            reason: format!("{e}: {}", self.text()),
        })
    }
}

/// Client of one server's API at a base URL such as `http://127.0.0.1:40125`.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    bearer: Option<String>,
}

impl ApiClient {
    /// A client of the API at `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a default reqwest client builds"),
            base: base_url.trim_end_matches('/').to_owned(),
            bearer: None,
        }
    }

    /// The same client, sending `Authorization: Bearer <token>` (a proxy's operator view).
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends `method` to `path` (starting with `/`) with an optional body; any status is
    /// returned as a [`Reply`].
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.body(body);
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let failed = |e: reqwest::Error| Error::Api {
            what: format!("{method} {url}"),
            reason: e.to_string(),
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(failed)?.to_vec();
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    /// `GET path`, any status.
    pub async fn get(&self, path: &str) -> Result<Reply, Error> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with `body`, any status.
    pub async fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> Result<Reply, Error> {
        self.request(Method::POST, path, Some(body.into())).await
    }

    /// `GET path`, which must answer 200; the body as JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, Error> {
        self.get_ok(path).await?.json()
    }

    /// `GET path`, which must answer 200; the body as text.
    pub async fn get_text(&self, path: &str) -> Result<String, Error> {
        Ok(self.get_ok(path).await?.text())
    }

    /// `GET path`, which must answer 200.
    pub async fn get_ok(&self, path: &str) -> Result<Reply, Error> {
        let reply = self.get(path).await?;
        if reply.status != 200 {
            return Err(Error::Api {
                what: format!("GET {}{path}", self.base),
                reason: format!("HTTP {}: {}", reply.status, reply.text()),
            });
        }
        Ok(reply)
    }
}
