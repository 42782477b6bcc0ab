//! A ROT service binary run the way operators run it — a child process configured by its
//! environment, logging JSON lines to stderr — for tests of what the binaries' `main` wires
//! up: logging, the listener, `/metrics`, shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Error;

/// A running service binary; killed on drop if still running.
#[derive(Debug)]
pub struct ServiceProcess {
    binary: String,
    child: Child,
    lines: Receiver<String>,
    /// Every log line read so far.
    pub logs: Vec<Value>,
}

impl ServiceProcess {
    /// What `binary --version` prints, checking that it exits successfully.
    pub fn version(binary: &str) -> Result<String, Error> {
        let out = Command::new(binary)
            .arg("--version")
            .output()
            .map_err(|e| Error::Io {
                what: format!("running {binary} --version"),
                source: e,
            })?;
        if !out.status.success() {
            return Err(Error::Service {
                binary: binary.to_owned(),
                detail: format!("--version exited with {}", out.status),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `binary` with `ROT_LOG_FORMAT=json`, `RUST_LOG` unset and `envs` on top of this
    /// process's environment.
    pub fn start(binary: &str, envs: &[(&str, &str)]) -> Result<Self, Error> {
        let mut child = Command::new(binary)
            .env_remove("RUST_LOG")
            .env("ROT_LOG_FORMAT", "json")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Io {
                what: format!("starting {binary}"),
                source: e,
            })?;
        let stderr = child.stderr.take().ok_or_else(|| Error::Service {
            binary: binary.to_owned(),
            detail: "no stderr pipe".into(),
        })?;
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            binary: binary.to_owned(),
            child,
            lines,
            logs: Vec::new(),
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (a crash: nothing flushed) and reaps it.
    pub fn kill9(&mut self) -> Result<(), Error> {
        self.child.kill().map_err(|e| Error::Io {
            what: format!("killing {}", self.binary),
            source: e,
        })?;
        self.child.wait().map_err(|e| Error::Io {
            what: format!("reaping {}", self.binary),
            source: e,
        })?;
        Ok(())
    }

    /// Its resident memory in KiB (`VmRSS` of `/proc/<pid>/status`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Reads log lines until one whose message is `message`, and returns it. Every line must
    /// be a JSON object with a level, a target and fields.
    pub fn wait_for_log(&mut self, message: &str, timeout: Duration) -> Result<Value, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::Timeout {
                        what: format!("{} to log {message:?}", self.binary),
                        waited: timeout,
                        last_state: format!("{:?}", self.logs.last()),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure(format!("ended before logging {message:?}")));
                }
            };
            let entry = self.parse(&line)?;
            let found = entry["fields"]["message"] == message;
            self.logs.push(entry.clone());
            if found {
                return Ok(entry);
            }
        }
    }

    /// Sends SIGTERM (what `docker stop` and systemd send) and waits for the exit, reading
    /// the last log lines.
    pub fn terminate(mut self, timeout: Duration) -> Result<(ExitStatus, Vec<Value>), Error> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| Error::Io {
                what: "running kill -TERM".into(),
                source: e,
            })?;
        if !status.success() {
            return Err(self.failure(format!("kill -TERM failed: {status}")));
        }
        let deadline = Instant::now() + timeout;
        let exit = loop {
            let polled = self.child.try_wait().map_err(|e| Error::Io {
                what: format!("waiting for {}", self.binary),
                source: e,
            })?;
            if let Some(exit) = polled {
                break exit;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} to exit after SIGTERM", self.binary),
                    waited: timeout,
                    last_state: format!("{:?}", self.logs.last()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            let entry = self.parse(&line)?;
            self.logs.push(entry);
        }
        Ok((exit, std::mem::take(&mut self.logs)))
    }

    fn parse(&self, line: &str) -> Result<Value, Error> {
        let entry: Value = serde_json::from_str(line)
            .map_err(|e| self.failure(format!("log line is not JSON ({e}): {line}")))?;
        let well_formed = entry["level"].is_string()
            && entry["target"].is_string()
            && entry["fields"].is_object()
            && entry["timestamp"].is_string();
        if well_formed {
            Ok(entry)
        } else {
            Err(self.failure(format!(
                "log line lacks level/target/fields/timestamp: {line}"
            )))
        }
    }

    fn failure(&self, detail: String) -> Error {
        Error::Service {
            binary: self.binary.clone(),
            detail,
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
