//! A keep-alive HTTP/1.1 connection that the calling task writes and reads itself, for load
//! generators. Why not reqwest: its client hands each request to a connection task and the
//! answer back, a hop between tasks (often threads) each way that a latency measurement would
//! count against the server under test, and that the Electrum client does not pay.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::Error;

/// One connection, one request at a time.
#[derive(Debug)]
pub struct HttpConnection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
    body: Vec<u8>,
}

impl HttpConnection {
    /// Connects to `addr`, with `TCP_NODELAY`.
    pub async fn open(addr: SocketAddr) -> Result<Self, Error> {
        let io = |what: &str| {
            let what = format!("{what} {addr}");
            move |source| Error::Io { what, source }
        };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(io("connecting to"))?;
        stream.set_nodelay(true).map_err(io("TCP_NODELAY on"))?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, read),
            writer,
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// `GET path` as raw HTTP/1.1 bytes, to send with [`HttpConnection::exchange`].
    pub fn get_request(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n")
            .into_bytes()
    }

    /// Sends `request` and reads the answer (a Content-Length or chunked body): its status
    /// and body.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<(u16, &[u8]), Error> {
        let io = |source| Error::Io {
            what: "an HTTP exchange".to_owned(),
            source,
        };
        self.writer.write_all(request).await.map_err(io)?;
        self.read_line().await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| malformed(format!("status line {:?}", self.line)))?;
        let (mut length, mut chunked) = (0usize, false);
        loop {
            self.read_line().await?;
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value
                        .trim()
                        .parse()
                        .map_err(|_| malformed(format!("header {header:?}")))?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        if !chunked {
            self.body.resize(length, 0);
            self.reader.read_exact(&mut self.body).await.map_err(io)?;
            return Ok((status, &self.body));
        }
        self.body.clear();
        loop {
            self.read_line().await?;
            let size = usize::from_str_radix(self.line.trim_end(), 16)
                .map_err(|_| malformed(format!("chunk size {:?}", self.line)))?;
            // The chunk and the line end after it (after the last, empty one: the end).
            let start = self.body.len();
            self.body.resize(start + size + 2, 0);
            self.reader
                .read_exact(&mut self.body[start..])
                .await
                .map_err(io)?;
            self.body.truncate(start + size);
            if size == 0 {
                return Ok((status, &self.body));
            }
        }
    }

    async fn read_line(&mut self) -> Result<(), Error> {
        self.line.clear();
        let read = self
            .reader
            .read_line(&mut self.line)
            .await
            .map_err(|source| Error::Io {
                what: "reading an HTTP answer".to_owned(),
                source,
            })?;
        if read == 0 {
            return Err(malformed("connection closed by the server".to_owned()));
        }
        Ok(())
    }
}

fn malformed(reason: String) -> Error {
    Error::Api {
        what: "an HTTP answer".to_owned(),
        reason,
    }
}
