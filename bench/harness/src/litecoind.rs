//! A litecoind regtest node as a child process on loopback: fresh data dir, free ports, log
//! file, readiness wait, crash/restart and peer links for reorg tests. Killed and its data dir
//! removed when dropped, also while a failing test unwinds.

use std::fs::OpenOptions;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rot_proto::Hash256;
use rot_server::rpc::{NodeAuth, NodeNetwork, NodeRpc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::{Error, Wallet};

/// Used when neither the builder nor `$LITECOIND` names a binary.
const DEFAULT_BINARY: &str = "/usr/bin/litecoind";
/// A regtest node is ready in well under a second; the margin covers a loaded machine.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-request timeout of the node's client; mining many blocks takes a few seconds.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-request timeout while polling a starting node.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between polls of any bounded wait.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Bound on a clean shutdown after `stop` before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on connecting, disconnecting and syncing two nodes.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh starts retry with new ports when another process grabbed one in between.
const PORT_ATTEMPTS: u32 = 3;
/// Log lines shown with errors and when a test panics.
const LOG_TAIL_LINES: usize = 40;
/// First block with MWEB on regtest (BIP 9 deployment, always signalled by regtest miners).
pub const MWEB_ACTIVATION_HEIGHT: u32 = 432;
/// Name of the node's combined stdout/stderr log inside the data dir.
const LOG_FILE: &str = "litecoind.log";

/// Options for a [`Litecoind`]; start it with [`LitecoindBuilder::start`].
#[derive(Debug, Clone)]
pub struct LitecoindBuilder {
    binary: Option<PathBuf>,
    txindex: bool,
    user_password: Option<(String, String)>,
    extra_args: Vec<String>,
    startup_timeout: Duration,
    kept_datadir: Option<PathBuf>,
    seed_datadir: Option<PathBuf>,
}

impl Default for LitecoindBuilder {
    fn default() -> Self {
        Self {
            binary: None,
            txindex: false,
            user_password: None,
            extra_args: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            kept_datadir: None,
            seed_datadir: None,
        }
    }
}

impl LitecoindBuilder {
    /// Runs this executable instead of `$LITECOIND` or /usr/bin/litecoind.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Enables `-txindex` (off by default, as ROT must work without it).
    pub fn txindex(mut self, enabled: bool) -> Self {
        self.txindex = enabled;
        self
    }

    /// Uses `-rpcuser`/`-rpcpassword` instead of the cookie file.
    pub fn rpc_user_password(mut self, user: &str, password: &str) -> Self {
        self.user_password = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Appends a command-line argument such as `-rpcworkqueue=64`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Runs the node in `dir` (created if missing) and keeps it afterwards, so a chain built
    /// once is reused by the next start (the demo ring, cached benchmark chains).
    pub fn datadir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.kept_datadir = Some(dir.into());
        self
    }

    /// Bounds how long start and restart wait for the RPC server.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts from a copy of `dir`, a data dir saved by [`Litecoind::save_datadir`] (e.g. a
    /// cached benchmark chain), copied into the node's data dir before the first start, so
    /// `dir` itself stays as it was.
    pub fn seed_datadir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.seed_datadir = Some(dir.into());
        self
    }

    /// Starts the node in a fresh data dir on free loopback ports and waits until its RPC
    /// answers.
    pub async fn start(self) -> Result<Litecoind, Error> {
        let binary = find_binary(self.binary.clone())?;
        let datadir = match &self.kept_datadir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    what: format!("creating the node's data dir {}", dir.display()),
                    source,
                })?;
                DataDir::Kept(dir.clone())
            }
            None => DataDir::Temp(
                tempfile::Builder::new()
                    .prefix("rot-litecoind-")
                    .tempdir()
                    .map_err(|source| Error::Io {
                        what: "creating the node's data dir".to_owned(),
                        source,
                    })?,
            ),
        };
        if let Some(seed) = &self.seed_datadir {
            copy_dir(seed, datadir.path())?;
        }
        let mut attempt = 1;
        let mut node = Litecoind::new(binary, self, datadir)?;
        loop {
            match node.launch().await {
                Ok(()) => return Ok(node),
                Err(Error::Exited { log_tail, .. })
                    if attempt < PORT_ATTEMPTS && log_tail.contains("Unable to bind") =>
                {
                    attempt += 1;
                    node.pick_ports()?;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// A running litecoind regtest node owned by a test.
#[derive(Debug)]
pub struct Litecoind {
    process: Option<Child>,
    binary: PathBuf,
    options: LitecoindBuilder,
    rpc_port: u16,
    p2p_port: u16,
    rpc: NodeRpc,
    /// Dropped last, after the process is gone.
    datadir: DataDir,
}

/// A node's data directory: removed with the node, or kept for the next start.
#[derive(Debug)]
enum DataDir {
    Temp(TempDir),
    Kept(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            Self::Temp(dir) => dir.path(),
            Self::Kept(dir) => dir,
        }
    }
}

/// The part of `getpeerinfo` needed to recognise the link between two test nodes.
#[derive(Deserialize)]
struct PeerInfo {
    id: u64,
    addr: String,
    #[serde(default)]
    addrbind: String,
    /// 0 until the version handshake is done.
    #[serde(default)]
    version: u64,
}

impl Litecoind {
    /// Starts a node with default options.
    pub async fn start() -> Result<Self, Error> {
        Self::builder().start().await
    }

    /// Options for a node.
    pub fn builder() -> LitecoindBuilder {
        LitecoindBuilder::default()
    }

    fn new(binary: PathBuf, options: LitecoindBuilder, datadir: DataDir) -> Result<Self, Error> {
        let rpc_port = free_port()?;
        let rpc = client(&rpc_url(rpc_port), auth_of(&options, datadir.path()))?;
        Ok(Self {
            process: None,
            binary,
            options,
            rpc_port,
            p2p_port: free_port()?,
            rpc,
            datadir,
        })
    }

    /// The node's RPC client.
    pub fn rpc(&self) -> &NodeRpc {
        &self.rpc
    }

    /// The RPC URL, e.g. `http://127.0.0.1:40123/`.
    pub fn rpc_url(&self) -> String {
        rpc_url(self.rpc_port)
    }

    /// How to authenticate: the cookie in the data dir, or the builder's user/password.
    pub fn auth(&self) -> NodeAuth {
        auth_of(&self.options, self.datadir())
    }

    /// The node's `-datadir`.
    pub fn datadir(&self) -> &Path {
        self.datadir.path()
    }

    /// Where the node writes its RPC cookie (absent with user/password auth).
    pub fn cookie_path(&self) -> PathBuf {
        self.datadir().join("regtest").join(".cookie")
    }

    /// The node's combined stdout/stderr log.
    pub fn log_path(&self) -> PathBuf {
        self.datadir().join(LOG_FILE)
    }

    /// The last `lines` lines of the node's log, for diagnosing failures.
    pub fn log_tail(&self, lines: usize) -> String {
        read_tail(&self.log_path(), lines)
    }

    /// The process id while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// The RPC port.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The P2P listening port.
    pub fn p2p_port(&self) -> u16 {
        self.p2p_port
    }

    /// The P2P address other nodes connect to.
    pub fn p2p_address(&self) -> String {
        format!("127.0.0.1:{}", self.p2p_port)
    }

    /// Creates and loads a wallet that is also loaded again after [`Litecoind::restart`].
    pub async fn create_wallet(&self, name: &str) -> Result<Wallet, Error> {
        let load_on_startup = true;
        let _: Value = self
            .rpc
            .call(
                "createwallet",
                json!([name, false, false, "", false, false, load_on_startup]),
            )
            .await?;
        let url = format!("{}wallet/{name}", self.rpc_url());
        Ok(Wallet::new(name.to_owned(), client(&url, self.auth())?))
    }

    /// The wallet `name`: created on first use, and found again (loaded at startup, as
    /// [`Litecoind::create_wallet`] asks) when the data dir is reused.
    pub async fn open_wallet(&self, name: &str) -> Result<Wallet, Error> {
        let loaded: Vec<String> = self.rpc.call("listwallets", json!([])).await?;
        if loaded.iter().any(|w| w == name) {
            let url = format!("{}wallet/{name}", self.rpc_url());
            return Ok(Wallet::new(name.to_owned(), client(&url, self.auth())?));
        }
        self.create_wallet(name).await
    }

    /// Calls any RPC `method` of the node with positional `params`.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, Error> {
        Ok(self.rpc.call(method, params).await?)
    }

    /// Mines up to MWEB activation (regtest height 432) with a peg-in of `pegin_sat` from
    /// `wallet` in the activating block, which needs one: without a peg-in the node cannot
    /// build that block's HogEx. The chain must be below 432 and `wallet` must have mature
    /// coins. Returns the peg-in's txid.
    pub async fn activate_mweb(
        &self,
        wallet: &Wallet,
        pegin_sat: u64,
        miner_address: &str,
    ) -> Result<Hash256, Error> {
        let (height, _) = self.tip().await?;
        if height + 1 < MWEB_ACTIVATION_HEIGHT {
            self.mine(MWEB_ACTIVATION_HEIGHT - 1 - height, miner_address)
                .await?;
        }
        let stealth = wallet.new_address(crate::AddressType::Mweb).await?;
        let pegin = wallet.send_to(&stealth, pegin_sat).await?;
        self.mine(1, miner_address).await?;
        Ok(pegin)
    }

    /// Mines `blocks` blocks paying to `address`; returns their hashes.
    pub async fn mine(&self, blocks: u32, address: &str) -> Result<Vec<Hash256>, Error> {
        Ok(self
            .rpc
            .call("generatetoaddress", json!([blocks, address]))
            .await?)
    }

    /// Marks a block invalid, reorganising the node away from it.
    pub async fn invalidate_block(&self, hash: &Hash256) -> Result<(), Error> {
        let _: Value = self.rpc.call("invalidateblock", json!([hash])).await?;
        Ok(())
    }

    /// Undoes [`Litecoind::invalidate_block`].
    pub async fn reconsider_block(&self, hash: &Hash256) -> Result<(), Error> {
        let _: Value = self.rpc.call("reconsiderblock", json!([hash])).await?;
        Ok(())
    }

    /// Height and hash of the best block.
    pub async fn tip(&self) -> Result<(u32, Hash256), Error> {
        let info = self.rpc.get_blockchain_info().await?;
        Ok((info.blocks, info.best_block_hash))
    }

    /// Writes the chain state to disk. Without it a [`Litecoind::kill9`] loses every block
    /// since the last periodic flush: the node comes back at an older tip.
    pub async fn flush_to_disk(&self) -> Result<(), Error> {
        // gettxoutsetinfo forces a full flush before reading the UTXO set; "none" skips the
        // expensive hash.
        let _: Value = self.rpc.call("gettxoutsetinfo", json!(["none"])).await?;
        Ok(())
    }

    /// Opens a P2P connection to `other` and waits for the handshake.
    pub async fn connect_to(&self, other: &Litecoind) -> Result<(), Error> {
        let address = other.p2p_address();
        let _: Value = self.rpc.call("addnode", json!([address, "onetry"])).await?;
        wait_until(
            &format!("P2P handshake with {address}"),
            PEER_TIMEOUT,
            || async {
                let peers = self.peers().await?;
                let linked = peers.iter().any(|p| p.addr == address && p.version > 0);
                Ok((linked, format!("{} peers", peers.len())))
            },
        )
        .await
    }

    /// Closes every P2P connection between this node and `other` and waits until both
    /// sides have noticed.
    pub async fn disconnect(&self, other: &Litecoind) -> Result<(), Error> {
        // Each connection is outbound from one side, where `addr` is the other's P2P address;
        // the accepting side sees the initiator's local address (`addrbind`) instead.
        let mut ends: Vec<(&Litecoind, String)> = Vec::new();
        for (from, to) in [(self, other), (other, self)] {
            for peer in from.peers().await? {
                if peer.addr == to.p2p_address() {
                    let _: Value = from
                        .rpc
                        .call("disconnectnode", json!(["", peer.id]))
                        .await?;
                    ends.push((to, peer.addrbind));
                    ends.push((from, peer.addr));
                }
            }
        }
        wait_until("both nodes to drop their link", PEER_TIMEOUT, || async {
            let mut remaining = 0;
            for (node, address) in &ends {
                remaining += node
                    .peers()
                    .await?
                    .iter()
                    .filter(|p| &p.addr == address)
                    .count();
            }
            Ok((remaining == 0, format!("{remaining} connection ends left")))
        })
        .await
    }

    /// Waits until this node's best block is `other`'s.
    pub async fn sync_with(&self, other: &Litecoind) -> Result<(), Error> {
        wait_until("the nodes to agree on the tip", PEER_TIMEOUT, || async {
            let (mine, theirs) = (self.tip().await?, other.tip().await?);
            Ok((mine == theirs, format!("{mine:?} vs {theirs:?}")))
        })
        .await
    }

    /// Kills the node with SIGKILL, as a crash would: no flush, stale cookie left behind.
    pub fn kill9(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.process.take() {
            child.kill().map_err(|source| Error::Io {
                what: "killing litecoind".to_owned(),
                source,
            })?;
            child.wait().map_err(|source| Error::Io {
                what: "reaping litecoind".to_owned(),
                source,
            })?;
        }
        Ok(())
    }

    /// Stops the node cleanly if it runs (killing it if it hangs), then starts it again with
    /// the same data dir, ports and options and waits until its RPC answers.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop().await?;
        self.launch().await
    }

    /// Flushes and stops the node and copies its data dir to `dest` (created if missing), for
    /// [`LitecoindBuilder::seed_datadir`]. The node stays stopped.
    pub async fn save_datadir(&mut self, dest: &Path) -> Result<(), Error> {
        // A node with idle keep-alive RPC connections waits for them to time out
        // (-rpcservertimeout, 30 s) before it flushes, which can outlast the stop bound; the
        // explicit flush makes the copy complete even if it is then killed.
        self.flush_to_disk().await?;
        self.stop().await?;
        copy_dir(self.datadir(), dest)
    }

    /// Asks the node to shut down (it flushes its chain state) and waits, bounded, for it to
    /// exit; kills it if it hangs.
    pub async fn stop(&mut self) -> Result<(), Error> {
        if self.process.is_none() {
            return Ok(());
        }
        let _: Result<Value, _> = self.rpc.call("stop", json!([])).await;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.exit_status()?.is_some() {
                self.process = None;
                return Ok(());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        self.kill9()
    }

    /// Spawns the process with the current ports and waits for the RPC server.
    async fn launch(&mut self) -> Result<(), Error> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|source| Error::Io {
                what: "opening the node log".to_owned(),
                source,
            })?;
        let log_for_stderr = log.try_clone().map_err(|source| Error::Io {
            what: "sharing the node log".to_owned(),
            source,
        })?;
        let child = Command::new(&self.binary)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .map_err(|source| Error::Io {
                what: format!("starting {}", self.binary.display()),
                source,
            })?;
        self.process = Some(child);
        let result = self.wait_started().await;
        if result.is_err() {
            self.kill9()?;
        }
        result
    }

    /// Polls the RPC server until it answers, the process exits, or the startup bound ends.
    async fn wait_started(&mut self) -> Result<(), Error> {
        let probe = self.rpc.clone().with_timeout(PROBE_TIMEOUT);
        let deadline = Instant::now() + self.options.startup_timeout;
        loop {
            if let Some(status) = self.exit_status()? {
                self.process = None;
                return Err(Error::Exited {
                    status,
                    log_tail: self.log_tail(LOG_TAIL_LINES),
                });
            }
            let last_state = match probe.get_blockchain_info().await {
                Ok(_) => return Ok(()),
                Err(
                    error @ (rot_server::Error::NodeUnreachable { .. }
                    | rot_server::Error::NodeWarmingUp { .. }
                    | rot_server::Error::NodeCookieUnreadable { .. }),
                ) => error.to_string(),
                Err(error) => return Err(error.into()),
            };
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "litecoind's RPC server".to_owned(),
                    waited: self.options.startup_timeout,
                    last_state: format!(
                        "{last_state}; log tail:\n{}",
                        self.log_tail(LOG_TAIL_LINES)
                    ),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The exit status if the process has ended, as text.
    fn exit_status(&mut self) -> Result<Option<String>, Error> {
        let Some(child) = self.process.as_mut() else {
            return Ok(Some("not running".to_owned()));
        };
        let status = child.try_wait().map_err(|source| Error::Io {
            what: "polling litecoind".to_owned(),
            source,
        })?;
        Ok(status.map(|status| status.to_string()))
    }

    /// Moves to fresh free ports (only before the first successful start).
    fn pick_ports(&mut self) -> Result<(), Error> {
        self.rpc_port = free_port()?;
        self.p2p_port = free_port()?;
        self.rpc = client(&self.rpc_url(), self.auth())?;
        Ok(())
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "-regtest".to_owned(),
            format!("-datadir={}", self.datadir().display()),
            "-server".to_owned(),
            "-rpcbind=127.0.0.1".to_owned(),
            "-rpcallowip=127.0.0.1".to_owned(),
            format!("-rpcport={}", self.rpc_port),
            "-listen=1".to_owned(),
            "-bind=127.0.0.1".to_owned(),
            format!("-port={}", self.p2p_port),
            "-listenonion=0".to_owned(),
            "-dnsseed=0".to_owned(),
            "-discover=0".to_owned(),
            "-fallbackfee=0.0001".to_owned(),
            // A small key pool makes createwallet fast.
            "-keypool=10".to_owned(),
            "-printtoconsole=1".to_owned(),
            "-nodebuglogfile".to_owned(),
            format!("-txindex={}", u8::from(self.options.txindex)),
        ];
        if let Some((user, password)) = &self.options.user_password {
            args.push(format!("-rpcuser={user}"));
            args.push(format!("-rpcpassword={password}"));
        }
        args.extend(self.options.extra_args.iter().cloned());
        args
    }

    async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        Ok(self.rpc.call("getpeerinfo", json!([])).await?)
    }
}

impl Drop for Litecoind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        // Errors cannot be reported from drop; the data dir goes away with the TempDir.
        let _ = self.kill9();
    }
}

/// Cookie auth (the node's default) unless the builder set a user and password.
fn auth_of(options: &LitecoindBuilder, datadir: &Path) -> NodeAuth {
    match &options.user_password {
        Some((user, password)) => NodeAuth::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
        None => NodeAuth::DatadirCookie {
            datadir: datadir.to_owned(),
            network: NodeNetwork::Regtest,
        },
    }
}

fn client(url: &str, auth: NodeAuth) -> Result<NodeRpc, Error> {
    Ok(NodeRpc::new(url, auth)?.with_timeout(RPC_TIMEOUT))
}

fn rpc_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

/// Copies the directory tree `from` into `to` (created if missing).
fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    let io = |what: String| move |source| Error::Io { what, source };
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    for entry in std::fs::read_dir(from).map_err(io(format!("listing {}", from.display())))? {
        let entry = entry.map_err(io(format!("listing {}", from.display())))?;
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(io(format!("inspecting {}", entry.path().display())))?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(io(format!("copying {}", entry.path().display())))?;
        }
    }
    Ok(())
}

/// The last `lines` lines of a log file (empty when unreadable).
pub(crate) fn read_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback port nobody listens on right now (the OS picks it; another process could take
/// it before the node binds, which fresh starts retry).
pub(crate) fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
        what: "finding a free loopback port".to_owned(),
        source,
    })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Io {
            what: "reading a free port".to_owned(),
            source,
        })?
        .port();
    Ok(port)
}

/// The builder's binary, else `$LITECOIND`, else /usr/bin/litecoind, else `litecoind` on PATH.
fn find_binary(configured: Option<PathBuf>) -> Result<PathBuf, Error> {
    if let Some(path) = configured.or_else(|| std::env::var_os("LITECOIND").map(PathBuf::from)) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::BinaryNotFound(format!(
                "{} is not a file",
                path.display()
            )))
        };
    }
    let default = PathBuf::from(DEFAULT_BINARY);
    if default.is_file() {
        return Ok(default);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("litecoind"))
        .find(|path| path.is_file())
        .ok_or_else(|| Error::BinaryNotFound(format!("{DEFAULT_BINARY} missing, not on PATH")))
}

/// Polls `check` until it reports true or `timeout` passes. `check` returns whether the
/// condition holds and a description of the current state for the timeout message.
pub(crate) async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(bool, String), Error>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let (done, state) = check().await?;
        if done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                waited: timeout,
                last_state: state,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
