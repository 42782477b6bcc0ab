//! A TCP forwarder on `127.0.0.1:0` to put in front of a real server, so a test can make it
//! slow (an added delay on everything sent to it) or unreachable (switched off: live
//! connections are cut and new ones closed at once) without touching the server itself.
//!
//! The target may be set after the forwarder starts (a server advertising the forwarder's URL
//! must know that URL before it starts); connections arriving before wait for it, bounded.
//! Connections are capped, and [`Forwarder::stop`] ends every task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Most connections forwarded at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// Longest a connection waits for the target to be set.
const TARGET_WAIT: Duration = Duration::from_secs(10);

/// What the accept loop and connections share.
#[derive(Debug)]
struct Shared {
    target: watch::Sender<Option<SocketAddr>>,
    delay_ms: AtomicU64,
    on: AtomicBool,
    /// Cancelled when switched off: cuts the connections of the current "on" spell.
    cut: Mutex<CancellationToken>,
}

impl Shared {
    fn cut(&self) -> CancellationToken {
        self.cut
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running forwarder; stopped by [`Forwarder::stop`], or abruptly on drop.
#[derive(Debug)]
pub struct Forwarder {
    /// Its URL, `http://127.0.0.1:port`.
    pub url: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Starts a forwarder, switched on, without delay and without a target yet.
    pub async fn start() -> Result<Self, Error> {
        let listener = crate::data_dir::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr().map_err(|e| Error::Io {
            what: "reading the forwarder's address".into(),
            source: e,
        })?;
        let shared = Arc::new(Shared {
            target: watch::channel(None).0,
            delay_ms: AtomicU64::new(0),
            on: AtomicBool::new(true),
            cut: Mutex::new(CancellationToken::new()),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept(listener, shared.clone(), stop.clone()));
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
            stop,
            task: Some(task),
        })
    }

    /// Forwards to `target` from now on.
    pub fn forward_to(&self, target: SocketAddr) {
        self.shared.target.send_replace(Some(target));
    }

    /// Holds everything sent to the target for `delay` before passing it on.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Switches forwarding on, or off (cutting live connections, closing new ones).
    pub fn set_on(&self, on: bool) {
        self.shared.on.store(on, Ordering::SeqCst);
        if !on {
            let mut cut = self
                .shared
                .cut
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            cut.cancel();
            *cut = CancellationToken::new();
        }
    }

    /// Stops accepting and cuts every connection.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let Ok((client, _)) = accepted else {
            // Out of descriptors or the like: let it pass rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if !shared.on.load(Ordering::SeqCst) {
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (shared, cut) = (shared.clone(), shared.cut());
        connections.spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = cut.cancelled() => {}
                _ = connect(client, &shared) => {}
            }
        });
    }
    connections.shutdown().await;
}

/// Forwards one connection until either side is done.
async fn connect(client: TcpStream, shared: &Shared) {
    let mut target = shared.target.subscribe();
    let addr = match tokio::time::timeout(TARGET_WAIT, target.wait_for(Option::is_some)).await {
        Ok(Ok(seen)) => *seen,
        _ => return,
    };
    let Some(addr) = addr else { return };
    let Ok(server) = TcpStream::connect(addr).await else {
        return;
    };
    let (from_client, to_client) = client.into_split();
    let (from_server, to_server) = server.into_split();
    // HTTP peers do not half-close: either side ending ends the connection.
    tokio::select! {
        _ = pump(from_client, to_server, Some(&shared.delay_ms)) => {}
        _ = pump(from_server, to_client, None) => {}
    }
}

/// Copies `from` to `to` until end of stream, holding each chunk for `delay_ms` if given.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay_ms: Option<&AtomicU64>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        let delay = delay_ms.map_or(0, |ms| ms.load(Ordering::Relaxed));
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        to.write_all(&buffer[..read]).await?;
    }
}
