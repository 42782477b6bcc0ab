//! A minimal Electrum protocol client (newline-delimited JSON-RPC over TCP): enough to wait for
//! an ElectrumX server to be ready and to drive it from tests and benchmarks. One request at a
//! time per connection; notifications that arrive in between are skipped.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::Error;

/// The protocol range this client speaks; ElectrumX 2.0 serves 1.4 to 1.7.
const PROTOCOL_VERSION: &str = "1.4";
/// Bound on one request-response round trip; a healthy server answers in milliseconds.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one answer line, so a broken server cannot exhaust memory.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// One TCP connection to an Electrum server.
#[derive(Debug)]
pub struct ElectrumClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    line: String,
}

impl ElectrumClient {
    /// Connects to `address` (`host:port`) and negotiates the protocol version with
    /// `server.version`, which the server requires before any other request.
    pub async fn connect(address: &str) -> Result<Self, Error> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|source| Error::Io {
                what: format!("connecting to the Electrum server at {address}"),
                source,
            })?;
        stream.set_nodelay(true).map_err(|source| Error::Io {
            what: "setting TCP_NODELAY".to_owned(),
            source,
        })?;
        let (read, write) = stream.into_split();
        let mut client = Self {
            reader: BufReader::new(read),
            writer: write,
            next_id: 0,
            line: String::new(),
        };
        let _: Value = client
            .call("server.version", json!(["rot-harness", PROTOCOL_VERSION]))
            .await?;
        Ok(client)
    }

    /// Sends one request and waits for its answer's `result`.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        tokio::time::timeout(CALL_TIMEOUT, self.round_trip(method, params))
            .await
            .map_err(|_| timeout(method))?
    }

    /// Sends one request and returns the next line the server sends, unparsed: the answer,
    /// on a connection without subscriptions. For load generators, whose cost per request
    /// should be the server's, not JSON decoding's.
    pub async fn call_raw(&mut self, method: &str, params: Value) -> Result<&str, Error> {
        let exchange = async {
            self.send(method, params).await?;
            self.read_line(method).await
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| timeout(method))??;
        Ok(&self.line)
    }

    async fn send(&mut self, method: &str, params: Value) -> Result<u64, Error> {
        self.next_id += 1;
        let id = self.next_id;
        let mut request =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        request.push('\n');
        self.writer
            .write_all(request.as_bytes())
            .await
            .map_err(|source| Error::Io {
                what: format!("sending {method} to the Electrum server"),
                source,
            })?;
        Ok(id)
    }

    async fn round_trip(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.send(method, params).await?;
        loop {
            let mut answer = self.read_message(method).await?;
            // Subscriptions push notifications (no id) at any time; they are not the answer.
            if answer.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
                return Err(Error::Electrum {
                    method: method.to_owned(),
                    detail: error.to_string(),
                });
            }
            return Ok(answer
                .get_mut("result")
                .map(Value::take)
                .unwrap_or(Value::Null));
        }
    }

    async fn read_message(&mut self, method: &str) -> Result<Value, Error> {
        self.read_line(method).await?;
        serde_json::from_str(&self.line).map_err(|e| Error::Electrum {
            method: method.to_owned(),
            detail: format!("answer is not JSON ({e})"),
        })
    }

    /// Reads one newline-terminated message into `self.line`.
    async fn read_line(&mut self, method: &str) -> Result<(), Error> {
        self.line.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES as u64)
            .read_line(&mut self.line)
            .await
            .map_err(|source| Error::Io {
                what: format!("reading the answer to {method}"),
                source,
            })?;
        if read == 0 || !self.line.ends_with('\n') {
            return Err(Error::Electrum {
                method: method.to_owned(),
                detail: format!("connection closed or line over {MAX_LINE_BYTES} bytes"),
            });
        }
        Ok(())
    }
}

fn timeout(method: &str) -> Error {
    Error::Timeout {
        what: format!("the Electrum server to answer {method}"),
        waited: CALL_TIMEOUT,
        last_state: "no answer".to_owned(),
    }
}
