//! rot-server run as its own process (the release binary), so its memory and CPU figures are
//! its own and not the benchmark's. Killed when dropped.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rot_harness::Litecoind;
use rot_server::rpc::NodeAuth;

/// Pause between polls of the server's tip.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running rot-server process.
#[derive(Debug)]
pub struct RotServerProcess {
    child: Child,
    /// Base URL of its API, `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its combined stdout/stderr log.
    pub log_path: PathBuf,
}

impl RotServerProcess {
    /// Starts `binary` over `node` with a fresh index in `data_dir`, logging to `log_path`.
    pub fn start(
        binary: &Path,
        node: &Litecoind,
        data_dir: &Path,
        log_path: &Path,
    ) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log =
            File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,sled=warn")
            .env("ROT_COIN_TIKKER", "LTC")
            .env("ROT_NETWORK", "regtest")
            .env("ROT_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("ROT_DATA_DIR", data_dir)
            .env("CORE_RPC_HOST", "127.0.0.1")
            .env("CORE_RPC_PORT", node.rpc_port().to_string());
        match node.auth() {
            NodeAuth::UserPassword { user, password } => {
                command
                    .env("CORE_RPC_USER", user)
                    .env("CORE_RPC_PASSWORD", password);
            }
            NodeAuth::CookieFile(_) | NodeAuth::DatadirCookie { .. } => {
                command.env("CORE_DATA_DIR", node.datadir());
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_path: log_path.to_owned(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/blocks/tip/height` until it is `height`; fails when the process exits or
    /// `timeout` passes.
    pub async fn wait_for_height(&mut self, height: u32, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let started = Instant::now();
        let url = format!("{}/blocks/tip/height", self.url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "rot-server exited ({status}); log tail:\n{}",
                    log_tail(&self.log_path)
                );
            }
            let seen = match http.get(&url).send().await {
                Ok(response) => response.text().await.ok(),
                Err(_) => None,
            };
            if seen.as_deref().map(str::trim) == Some(&height.to_string()) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                bail!(
                    "rot-server not at height {height} after {timeout:?} (tip {seen:?}); log tail:\n{}",
                    log_tail(&self.log_path)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for RotServerProcess {
    fn drop(&mut self) {
        // Errors cannot be reported from drop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
