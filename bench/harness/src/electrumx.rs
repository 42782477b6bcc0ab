//! ElectrumX 2.0 (PyPI `e-x`) as a child process over a [`Litecoind`]: the peer rot-server is
//! benchmarked against, and the server behind rot-server's Electrum backend in tests. Fresh
//! database dir, free loopback port, log file, bounded wait until it has caught up with the
//! node; killed and its database removed when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rot_server::rpc::NodeAuth;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::litecoind::{free_port, read_tail};
use crate::{ElectrumClient, Error, Litecoind};

/// The venv `bench/install-electrumx.sh` creates.
const BUNDLED_VENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv-electrumx");
/// Name of the server's entry point inside a venv's `bin/` or on `PATH`.
const PROGRAM: &str = "electrumx_server";
/// Enough for ElectrumX to index a test chain of a few hundred blocks on a loaded machine.
const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between readiness polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often ElectrumX asks the node for new blocks and mempool changes; its 5 s default
/// would make every test that mines a block wait that long.
const DAEMON_POLL_MS: &str = "250";
/// Log lines shown with errors and when a test panics.
const LOG_TAIL_LINES: usize = 40;
/// Name of the server's combined stdout/stderr log inside its temp dir.
const LOG_FILE: &str = "electrumx.log";
/// Runs ElectrumX's entry point with its TCP send hold switched off (see
/// [`ElectrumXBuilder::without_send_hold`]).
const LAUNCHER_WITHOUT_SEND_HOLD: &str = "\
import sys
from electrumx.server.transport import PaddedRSTransport
PaddedRSTransport.WAIT_FOR_BUFFER_GROWTH_SECONDS = 0
from electrumx.cli.electrumx_server import main
sys.exit(main())
";

/// Options for an [`ElectrumX`]; start it with [`ElectrumXBuilder::start`].
#[derive(Debug, Clone)]
pub struct ElectrumXBuilder {
    env: Vec<(String, String)>,
    sync_timeout: Duration,
    send_hold: bool,
}

impl Default for ElectrumXBuilder {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            sync_timeout: DEFAULT_SYNC_TIMEOUT,
            send_hold: true,
        }
    }
}

impl ElectrumXBuilder {
    /// Sets an environment variable of the server on top of (or instead of) the harness's.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Bounds how long [`ElectrumXBuilder::start`] waits for the server to catch up.
    pub fn sync_timeout(mut self, timeout: Duration) -> Self {
        self.sync_timeout = timeout;
        self
    }

    /// Switches off ElectrumX 2.0's defence against traffic analysis on TCP sessions, which
    /// holds a response until 1 KiB of output has gathered or 1 s has passed since the last
    /// send, then pads it to a power of two. A client with one small request in flight thus
    /// waits up to a second per answer; without the hold every answer leaves at once (still
    /// padded), which is what measuring the server's capacity needs. There is no setting for
    /// it, so the entry point is run by a launcher that sets the class constant to 0.
    pub fn without_send_hold(mut self) -> Self {
        self.send_hold = false;
        self
    }

    /// Starts ElectrumX over `node` and waits until it serves the node's current tip.
    pub async fn start(self, node: &Litecoind) -> Result<ElectrumX, Error> {
        let program = find_program()?;
        let dir = tempfile::Builder::new()
            .prefix("rot-electrumx-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "creating ElectrumX's temp dir".to_owned(),
                source,
            })?;
        let db_dir = dir.path().join("db");
        std::fs::create_dir(&db_dir).map_err(|source| Error::Io {
            what: "creating ElectrumX's database dir".to_owned(),
            source,
        })?;
        let port = free_port()?;
        let daemon_url = daemon_url(node)?;
        let log_path = dir.path().join(LOG_FILE);
        let log = File::create(&log_path).map_err(|source| Error::Io {
            what: "creating ElectrumX's log".to_owned(),
            source,
        })?;
        let log_for_stderr = log.try_clone().map_err(|source| Error::Io {
            what: "sharing ElectrumX's log".to_owned(),
            source,
        })?;
        let mut command = if self.send_hold {
            Command::new(&program)
        } else {
            let mut launcher = Command::new(interpreter_of(&program)?);
            launcher.arg("-c").arg(LAUNCHER_WITHOUT_SEND_HOLD);
            launcher
        };
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("COIN", "Litecoin")
            .env("NET", "regtest")
            .env("DAEMON_URL", daemon_url)
            .env("DB_DIRECTORY", &db_dir)
            .env("DB_ENGINE", "leveldb")
            .env("SERVICES", format!("tcp://127.0.0.1:{port}"))
            .env("ALLOW_ROOT", "1")
            .env("PEER_DISCOVERY", "off")
            .env("PEER_ANNOUNCE", "")
            .env("DAEMON_POLL_INTERVAL_BLOCKS", DAEMON_POLL_MS)
            .env("DAEMON_POLL_INTERVAL_MEMPOOL", DAEMON_POLL_MS)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr);
        let child = command.spawn().map_err(|source| Error::Io {
            what: format!("starting {}", program.display()),
            source,
        })?;
        let mut server = ElectrumX {
            process: Some(child),
            address: format!("127.0.0.1:{port}"),
            log_path,
            dir,
        };
        let (height, _) = node.tip().await?;
        server.wait_synced(height, self.sync_timeout).await?;
        Ok(server)
    }
}

/// A running ElectrumX server owned by a test or benchmark.
#[derive(Debug)]
pub struct ElectrumX {
    process: Option<Child>,
    address: String,
    log_path: PathBuf,
    /// Dropped last, after the process is gone.
    dir: TempDir,
}

impl ElectrumX {
    /// Starts ElectrumX over `node` with the harness's settings.
    pub async fn start(node: &Litecoind) -> Result<Self, Error> {
        Self::builder().start(node).await
    }

    /// Options for a server.
    pub fn builder() -> ElectrumXBuilder {
        ElectrumXBuilder::default()
    }

    /// Where its Electrum protocol TCP service listens, `127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The URL rot-server's Electrum backend takes, `tcp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.address)
    }

    /// Its database directory (`DB_DIRECTORY`).
    pub fn db_dir(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// Its combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of its log, for diagnosing failures.
    pub fn log_tail(&self, lines: usize) -> String {
        read_tail(&self.log_path, lines)
    }

    /// The process id while it runs (the Python interpreter itself, so `/proc/<pid>` shows
    /// the server's own memory).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// A new connection to the server, version already negotiated.
    pub async fn client(&self) -> Result<ElectrumClient, Error> {
        ElectrumClient::connect(&self.address).await
    }

    /// Waits until the server reports `height` as its tip (bounded by `timeout`).
    pub async fn wait_for_height(&mut self, height: u32, timeout: Duration) -> Result<(), Error> {
        self.wait_synced(height, timeout).await
    }

    /// Polls until the server answers and its tip is at least `height`, it exits, or the bound
    /// passes. ElectrumX opens its port only once it has caught up with the node.
    async fn wait_synced(&mut self, height: u32, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status()? {
                self.process = None;
                return Err(Error::ElectrumXExited {
                    status,
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            let last_state = match self.tip_height().await {
                Ok(seen) if seen >= height => return Ok(()),
                Ok(seen) => format!("at height {seen}"),
                Err(error) => error.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("ElectrumX to reach height {height}"),
                    waited: timeout,
                    last_state: format!(
                        "{last_state}; log tail:\n{}",
                        self.log_tail(LOG_TAIL_LINES)
                    ),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn tip_height(&self) -> Result<u32, Error> {
        let mut client = self.client().await?;
        let header = client
            .call("blockchain.headers.subscribe", json!([]))
            .await?;
        header
            .get("height")
            .and_then(Value::as_u64)
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| Error::Electrum {
                method: "blockchain.headers.subscribe".to_owned(),
                detail: format!("no height in {header}"),
            })
    }

    fn exit_status(&mut self) -> Result<Option<String>, Error> {
        let Some(child) = self.process.as_mut() else {
            return Ok(Some("not running".to_owned()));
        };
        let status = child.try_wait().map_err(|source| Error::Io {
            what: "polling ElectrumX".to_owned(),
            source,
        })?;
        Ok(status.map(|status| status.to_string()))
    }
}

impl Drop for ElectrumX {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        // Errors cannot be reported from drop; the database goes away with the TempDir.
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The node's RPC URL with credentials inline, as `DAEMON_URL` wants them; a cookie file's
/// content is itself `user:password`.
fn daemon_url(node: &Litecoind) -> Result<String, Error> {
    let credentials = match node.auth() {
        NodeAuth::UserPassword { user, password } => format!("{user}:{password}"),
        NodeAuth::CookieFile(path) => read_cookie(&path)?,
        NodeAuth::DatadirCookie { .. } => read_cookie(&node.cookie_path())?,
    };
    Ok(format!(
        "http://{credentials}@127.0.0.1:{}/",
        node.rpc_port()
    ))
}

fn read_cookie(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        what: format!("reading the node's cookie {}", path.display()),
        source,
    })?;
    Ok(text.trim().to_owned())
}

/// The Python interpreter of a pip-installed entry point: its `#!` line.
fn interpreter_of(program: &Path) -> Result<PathBuf, Error> {
    let text = std::fs::read_to_string(program).map_err(|source| Error::Io {
        what: format!("reading {}", program.display()),
        source,
    })?;
    text.lines()
        .next()
        .and_then(|line| line.strip_prefix("#!"))
        .map(|interpreter| PathBuf::from(interpreter.trim()))
        .filter(|interpreter| interpreter.is_file())
        .ok_or_else(|| {
            Error::ElectrumXNotFound(format!(
                "{} does not name its Python interpreter",
                program.display()
            ))
        })
}

/// `$ELECTRUMX_VENV/bin`, then the bundled venv, then `PATH`.
fn find_program() -> Result<PathBuf, Error> {
    let venvs = std::env::var_os("ELECTRUMX_VENV")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(BUNDLED_VENV)]);
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    venvs
        .map(|venv| venv.join("bin"))
        .chain(path_dirs)
        .map(|dir| dir.join(PROGRAM))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            Error::ElectrumXNotFound(format!(
                "not in $ELECTRUMX_VENV/bin, {BUNDLED_VENV}/bin or on PATH"
            ))
        })
}
