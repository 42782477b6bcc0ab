//! Counters for the operator view: heartbeats accepted, servers admitted, and every refused
//! request by reason, so an operator can tell an attack (bad signatures, replays, rate
//! limits) from a misconfigured server (wrong genesis, unreachable URL). Counted since start.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::directory::StatusCounts;

/// The proxy's counters. Shared as `Arc<Stats>`.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    admitted: AtomicU64,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
}

/// The body of `GET /v1/admin/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsAnswer {
    /// Heartbeats accepted (including those that admitted a server).
    pub heartbeats_accepted: u64,
    /// Admissions passed.
    pub admissions: u64,
    /// Refused requests by reason (`replayed`, `bad_signature`, `rate_limited`, ...).
    pub rejections: BTreeMap<String, u64>,
    /// Servers per coin and state.
    pub servers: BTreeMap<String, StatusCounts>,
}

impl Stats {
    /// Counts an accepted heartbeat.
    pub fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a passed admission.
    pub fn count_admitted(&self) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused request by its reason label.
    pub fn count_rejection(&self, reason: &'static str) {
        *self
            .rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
    }

    /// The counters, with `servers` as the directory counts them now.
    pub fn answer(&self, servers: BTreeMap<String, StatusCounts>) -> StatsAnswer {
        StatsAnswer {
            heartbeats_accepted: self.accepted.load(Ordering::Relaxed),
            admissions: self.admitted.load(Ordering::Relaxed),
            rejections: self
                .rejections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(reason, count)| ((*reason).to_owned(), *count))
                .collect(),
            servers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason() {
        let stats = Stats::default();
        stats.count_accepted();
        stats.count_accepted();
        stats.count_admitted();
        stats.count_rejection("replayed");
        stats.count_rejection("replayed");
        stats.count_rejection("bad_signature");
        let answer = stats.answer(BTreeMap::new());
        assert_eq!(answer.heartbeats_accepted, 2);
        assert_eq!(answer.admissions, 1);
        assert_eq!(answer.rejections["replayed"], 2);
        assert_eq!(answer.rejections["bad_signature"], 1);
    }
}
