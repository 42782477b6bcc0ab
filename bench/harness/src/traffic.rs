//! Steady wallet traffic for the relay and fault tests: a few wallets asking a relay the same
//! idempotent questions in a loop, counting every answer and keeping every failure, so that a
//! test can assert that a fault injected under the traffic cost wallets nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Running traffic; [`Traffic::finish`] stops it and reports.
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    workers: Vec<JoinHandle<Worker>>,
}

/// What one wallet saw.
#[derive(Debug, Default)]
struct Worker {
    failures: Vec<String>,
    slowest: Duration,
}

/// What the wallets saw, all told.
#[derive(Debug)]
pub struct TrafficReport {
    /// Requests answered with a 2xx.
    pub answered: u64,
    /// Every other outcome, as `url: status body` or `url: error`.
    pub failures: Vec<String>,
    /// The longest any request took.
    pub slowest: Duration,
}

impl TrafficReport {
    /// Panics naming `case` and listing the first failed requests, if one failed.
    pub fn assert_no_failures(&self, case: &str) {
        assert!(
            self.failures.is_empty(),
            "{case}: {} of {} wallet requests failed, first ones: {:#?}",
            self.failures.len(),
            self.answered + self.failures.len() as u64,
            &self.failures[..self.failures.len().min(20)]
        );
    }
}

impl Traffic {
    /// Starts `wallets` loops, each GETting `base` + the next of `paths` as soon as the last
    /// answer is read. Each request gives up after `timeout`.
    pub fn start(
        http: &reqwest::Client,
        base: &str,
        paths: &[String],
        wallets: usize,
        timeout: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let workers = (0..wallets)
            .map(|wallet| {
                let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
                let (http, base, paths) = (http.clone(), base.to_owned(), paths.to_vec());
                tokio::spawn(async move {
                    let mut seen = Worker::default();
                    let mut turn = wallet;
                    while !stop.load(Ordering::Relaxed) {
                        let url = format!("{base}{}", paths[turn % paths.len()]);
                        turn += 1;
                        let started = Instant::now();
                        let outcome = match http.get(&url).timeout(timeout).send().await {
                            Ok(r) if r.status().is_success() => {
                                r.bytes().await.map(drop).map_err(|e| format!("{url}: {e}"))
                            }
                            Ok(r) => Err(format!(
                                "{url}: {} {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            )),
                            Err(e) => Err(format!("{url}: {e}")),
                        };
                        seen.slowest = seen.slowest.max(started.elapsed());
                        match outcome {
                            Ok(()) => answered.fetch_add(1, Ordering::Relaxed),
                            Err(failure) => {
                                seen.failures.push(failure);
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    seen
                })
            })
            .collect();
        Self {
            stop,
            answered,
            failed,
            workers,
        }
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Requests failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests have been answered (bounded by `timeout`), so a
    /// test knows the traffic flows before and after a fault; false on timeout.
    pub async fn wait_answered(&self, more: u64, timeout: Duration) -> bool {
        let target = self.answered() + more;
        let deadline = Instant::now() + timeout;
        while self.answered() < target {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops the wallets after their current request and reports.
    pub async fn finish(mut self) -> TrafficReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = TrafficReport {
            answered: 0,
            failures: Vec::new(),
            slowest: Duration::ZERO,
        };
        for worker in std::mem::take(&mut self.workers) {
            match worker.await {
                Ok(seen) => {
                    report.failures.extend(seen.failures);
                    report.slowest = report.slowest.max(seen.slowest);
                }
                Err(e) => report.failures.push(format!("a wallet task ended: {e}")),
            }
        }
        report.answered = self.answered.load(Ordering::Relaxed);
        report
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
