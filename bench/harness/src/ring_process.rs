//! Ring members as real processes, for fault tests that kill them: a rot-server or rot-proxy
//! binary on a fixed loopback port and data directory, so that a restart after `kill -9`
//! comes back at the same URL with what it kept on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::data_dir::data_dir_or_temp;
use crate::litecoind::{free_port, wait_until};
use crate::{Error, Litecoind, ServiceProcess, rot_server_settings};

/// A service binary that can be killed and started again on the same port and data dir.
#[derive(Debug)]
pub struct RingProcess {
    /// Base URL of its API, e.g. `http://127.0.0.1:40125`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    binary: PathBuf,
    envs: BTreeMap<String, String>,
    /// A path that answers once the service serves.
    ready_path: &'static str,
    process: Option<ServiceProcess>,
    _owned_dir: Option<tempfile::TempDir>,
}

impl RingProcess {
    /// A rot-server `binary` over `node` with `extra` settings, started and serving.
    pub async fn server(
        binary: &Path,
        node: &Litecoind,
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Self, Error> {
        let (data_dir, owned) = data_dir_or_temp(None)?;
        let mut envs = rot_server_settings(node, &data_dir);
        Self::launch(
            binary,
            (data_dir, owned),
            &mut envs,
            "ROT_LISTEN_ADDR",
            "/rot/v1/info",
            extra,
            timeout,
        )
        .await
    }

    /// A rot-proxy `binary` with `settings` (environment names; its data dir and listen
    /// address are set here), started and serving.
    pub async fn proxy(
        binary: &Path,
        settings: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let (data_dir, owned) = data_dir_or_temp(None)?;
        let mut envs = settings.clone();
        envs.insert(
            "ROT_PROXY_DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        );
        Self::launch(
            binary,
            (data_dir, owned),
            &mut envs,
            "ROT_PROXY_LISTEN_ADDR",
            "/v1/coins",
            &[],
            timeout,
        )
        .await
    }

    async fn launch(
        binary: &Path,
        (data_dir, owned): (PathBuf, Option<tempfile::TempDir>),
        envs: &mut BTreeMap<String, String>,
        listen_name: &str,
        ready_path: &'static str,
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Self, Error> {
        let port = free_port()?;
        envs.insert(listen_name.to_owned(), format!("127.0.0.1:{port}"));
        for (key, value) in extra {
            envs.insert((*key).to_owned(), (*value).to_owned());
        }
        let mut process = Self {
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            binary: binary.to_owned(),
            envs: envs.clone(),
            ready_path,
            process: None,
            _owned_dir: owned,
        };
        process.start(timeout).await?;
        Ok(process)
    }

    /// Starts the binary (again) and waits until it serves, bounded by `timeout`.
    pub async fn start(&mut self, timeout: Duration) -> Result<(), Error> {
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let binary = self.binary.display().to_string();
        self.process = Some(ServiceProcess::start(&binary, &envs)?);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Api {
                what: "an HTTP client".into(),
                reason: e.to_string(),
            })?;
        let url = format!("{}{}", self.url, self.ready_path);
        wait_until(&format!("{binary} to serve {url}"), timeout, || async {
            let outcome = http.get(&url).send().await;
            let serving = matches!(&outcome, Ok(answer) if answer.status().is_success());
            Ok((serving, format!("{outcome:?}")))
        })
        .await
    }

    /// Kills the process with SIGKILL (a crash: nothing flushed), if it runs.
    pub fn kill9(&mut self) -> Result<(), Error> {
        match self.process.take() {
            Some(mut process) => process.kill9(),
            None => Ok(()),
        }
    }

    /// Stops the process with SIGTERM and waits for its exit (everything flushed).
    pub fn terminate(&mut self, timeout: Duration) -> Result<(), Error> {
        if let Some(process) = self.process.take() {
            let (exit, _) = process.terminate(timeout)?;
            if !exit.success() {
                return Err(Error::Service {
                    binary: self.binary.display().to_string(),
                    detail: format!("exited with {exit} after SIGTERM"),
                });
            }
        }
        Ok(())
    }

    /// Its resident memory in KiB while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        self.process.as_ref()?.rss_kib()
    }
}

/// The settings of a test ring's proxy (environment names), fast enough for tests: probes
/// every 200 ms, stale after 5 s without a heartbeat, limits out of the way; operator token
/// `token`, listening on `127.0.0.1:0`, no data dir.
pub fn ring_proxy_settings(token: &str) -> BTreeMap<String, String> {
    [
        ("ROT_PROXY_COINS", "LTC:regtest"),
        ("ROT_PROXY_LISTEN_ADDR", "127.0.0.1:0"),
        ("ROT_PROXY_ADMIN_TOKEN", token),
        ("ROT_PROXY_STALE_SECS", "5"),
        ("ROT_PROXY_MAX_SERVERS_PER_ADDR", "100"),
        ("ROT_PROXY_REGISTER_BURST", "100"),
        ("ROT_PROXY_PROBE_INTERVAL_MS", "200"),
        ("ROT_PROXY_PROBE_TIMEOUT_MS", "1000"),
        ("ROT_PROXY_SUITE_INTERVAL_MS", "30000"),
        ("ROT_PROXY_CROSS_CHECK_INTERVAL_MS", "500"),
        ("ROT_PROXY_RELAY_TIMEOUT_MS", "3000"),
        ("ROT_PROXY_RELAY_RATE_PER_SEC", "100000"),
        ("ROT_PROXY_RELAY_BURST", "100000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The binary `name` of package `package` of this workspace, built (by cargo, once per test
/// process, a no-op when up to date) with the profile of the running test executable: a
/// test can run another package's binary, which cargo builds only for that package's tests.
pub fn workspace_binary(package: &str, name: &str) -> Result<PathBuf, Error> {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().map_err(|e| Error::Io {
        what: "finding the test executable".into(),
        source: e,
    })?;
    // target/<profile>/deps/<test> → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| Error::Service {
            binary: name.to_owned(),
            detail: format!("no target directory above {}", exe.display()),
        })?;
    let path = profile_dir.join(name);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if built.iter().any(|b| b == name) {
        return Ok(path);
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => "dev",
    };
    let target_dir = profile_dir.parent().unwrap_or(profile_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--bin",
            name,
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .map_err(|e| Error::Io {
            what: format!("running {cargo} build -p {package}"),
            source: e,
        })?;
    if !output.status.success() {
        return Err(Error::Service {
            binary: name.to_owned(),
            detail: format!(
                "cargo build failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    built.push(name.to_owned());
    Ok(path)
}
