//! What the proxy does about a server that answered wrongly: the sanction rules and the
//! standing they leave in the server's record.
//!
//! - A server that is lagging or unreachable is simply not served from; nothing here applies.
//! - A failed conformance check or a lost cross-check is a **warning**. Warnings are counted
//!   within a window; reaching the configured number **excludes** the server for a period
//!   that doubles with every exclusion (capped), and clears its warnings.
//! - A new server, and one whose exclusion ended, is **pending**: wallets are not sent to it
//!   until it passes the full conformance suite (run at once by the prober).
//!
//! The standing is part of the server's stored record, so a restart keeps exclusions and
//! their growth. Everything here reads time from the caller (the proxy's clock), so the rules
//! are unit-tested without waiting.

use std::time::Duration;

use rot_proto::message::{Consequence, ServerStatus};
use serde::{Deserialize, Serialize};

use crate::directory::ServerRecord;

/// Longest reason kept in a standing (it is told to the server in heartbeat acks).
const MAX_REASON_LEN: usize = 300;

/// A server's standing under the sanction rules, stored in its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// Times (unix milliseconds) of the warnings within the current window, oldest first.
    #[serde(default)]
    pub recent_warnings_ms: Vec<u64>,
    /// Until when the last warning shows (unix milliseconds).
    #[serde(default)]
    pub warned_until_ms: Option<u64>,
    /// Until when the server is excluded (unix milliseconds).
    #[serde(default)]
    pub excluded_until_ms: Option<u64>,
    /// When the server last passed the full suite since its admission or exclusion; `None`
    /// while it is pending.
    #[serde(default)]
    pub cleared_ms: Option<u64>,
    /// Why it was last warned or excluded: the check and its summary.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Standing {
    /// The status wallets see for a server the directory lists (heartbeating, not banned).
    pub fn status(&self, now_ms: u64) -> ServerStatus {
        if self.excluded_until_ms.is_some_and(|until| until > now_ms) {
            ServerStatus::Excluded
        } else if self.cleared_ms.is_none() {
            ServerStatus::Pending
        } else if self.warned_until_ms.is_some_and(|until| until > now_ms) {
            ServerStatus::Warned
        } else {
            ServerStatus::Admitted
        }
    }

    /// Whether wallets may be sent to the server (admitted or warned).
    pub fn serving(&self, now_ms: u64) -> bool {
        matches!(
            self.status(now_ms),
            ServerStatus::Admitted | ServerStatus::Warned
        )
    }

    /// Whether the full suite must pass before the server is served from.
    pub fn needs_suite(&self, now_ms: u64) -> bool {
        self.status(now_ms) == ServerStatus::Pending
    }

    /// The status and reason told to the server in its heartbeat acks.
    pub fn verdict(&self, now_ms: u64) -> (ServerStatus, Option<String>) {
        let status = self.status(now_ms);
        let reason = match status {
            ServerStatus::Excluded | ServerStatus::Warned => self.reason.clone(),
            ServerStatus::Pending => Some("the conformance checks have not passed yet".to_owned()),
            _ => None,
        };
        (status, reason)
    }

    /// Makes the server pending again: it must pass the full suite (a new admission).
    pub fn require_suite(&mut self) {
        self.cleared_ms = None;
    }
}

/// The sanction rules, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanctions {
    /// Warnings within [`Sanctions::warning_window`] that exclude a server.
    pub warnings_to_exclude: u32,
    /// How long a warning counts (and shows as `warned`).
    pub warning_window: Duration,
    /// Length of a first exclusion; each further one doubles it.
    pub exclusion_base: Duration,
    /// Longest exclusion.
    pub exclusion_max: Duration,
}

impl Sanctions {
    /// The length of an exclusion after `prior` earlier ones: base × 2^prior, capped.
    pub fn exclusion_length(&self, prior: u64) -> Duration {
        let factor = 1u32.checked_shl(u32::try_from(prior).unwrap_or(u32::MAX));
        factor
            .and_then(|f| self.exclusion_base.checked_mul(f))
            .map_or(self.exclusion_max, |d| d.min(self.exclusion_max))
    }

    /// Warns the server of `record` for `reason` at `now_ms`: a warning, or an exclusion when
    /// it reaches the threshold. A server already excluded gets nothing more (the failure is
    /// recorded only).
    pub fn warn(&self, record: &mut ServerRecord, reason: &str, now_ms: u64) -> Consequence {
        let standing = &mut record.standing;
        if standing.status(now_ms) == ServerStatus::Excluded {
            return Consequence::None;
        }
        let window = millis(self.warning_window);
        standing
            .recent_warnings_ms
            .retain(|&at| now_ms.saturating_sub(at) < window);
        standing.recent_warnings_ms.push(now_ms);
        standing.warned_until_ms = Some(now_ms.saturating_add(window));
        standing.reason = Some(truncate(reason));
        record.warnings += 1;
        if standing.recent_warnings_ms.len() < self.warnings_to_exclude as usize {
            return Consequence::Warning;
        }
        let length = self.exclusion_length(record.exclusions);
        let until = now_ms.saturating_add(millis(length));
        standing.excluded_until_ms = Some(until);
        standing.recent_warnings_ms.clear();
        standing.warned_until_ms = None;
        standing.cleared_ms = None;
        standing.reason = Some(truncate(&format!(
            "excluded for {}s after {} warnings; last: {reason}",
            length.as_secs(),
            self.warnings_to_exclude
        )));
        record.exclusions += 1;
        Consequence::Exclusion
    }

    /// The full suite passed at `now_ms`: a pending server is cleared (not while excluded).
    /// Returns whether its status changed.
    pub fn passed_suite(&self, record: &mut ServerRecord, now_ms: u64) -> bool {
        let standing = &mut record.standing;
        let before = standing.status(now_ms);
        if before == ServerStatus::Excluded {
            return false;
        }
        standing.cleared_ms = Some(now_ms);
        standing.status(now_ms) != before
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn truncate(text: &str) -> String {
    let mut cut: String = text.chars().take(MAX_REASON_LEN).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::directory::tests::record;

    fn rules() -> Sanctions {
        Sanctions {
            warnings_to_exclude: 3,
            warning_window: Duration::from_secs(3600),
            exclusion_base: Duration::from_secs(600),
            exclusion_max: Duration::from_secs(3000),
        }
    }

    #[test]
    fn a_new_server_is_pending_until_the_suite_passes() {
        let clock = Clock::manual(1_800_000_000);
        let mut server = record(1, "ltc", "http://a");
        assert_eq!(
            server.standing.status(clock.now_millis()),
            ServerStatus::Pending
        );
        assert!(server.standing.needs_suite(clock.now_millis()));
        assert!(rules().passed_suite(&mut server, clock.now_millis()));
        assert_eq!(
            server.standing.status(clock.now_millis()),
            ServerStatus::Admitted
        );
        assert!(!rules().passed_suite(&mut server, clock.now_millis()));
    }

    #[test]
    fn warnings_in_a_window_exclude_and_old_ones_expire() {
        let clock = Clock::manual(1_800_000_000);
        let rules = rules();
        let mut server = record(1, "ltc", "http://a");
        rules.passed_suite(&mut server, clock.now_millis());
        assert_eq!(
            rules.warn(&mut server, "tip: lied", clock.now_millis()),
            Consequence::Warning
        );
        assert_eq!(
            server.standing.status(clock.now_millis()),
            ServerStatus::Warned
        );
        assert!(server.standing.serving(clock.now_millis()));
        // Two hours on, the first warning is out of the window and shows no more.
        clock.advance(Duration::from_secs(7200));
        assert_eq!(
            server.standing.status(clock.now_millis()),
            ServerStatus::Admitted
        );
        rules.warn(&mut server, "headers", clock.now_millis());
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            rules.warn(&mut server, "headers", clock.now_millis()),
            Consequence::Warning,
            "only two warnings within the window"
        );
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            rules.warn(&mut server, "transactions", clock.now_millis()),
            Consequence::Exclusion
        );
        assert_eq!((server.warnings, server.exclusions), (4, 1));
        let (status, reason) = server.standing.verdict(clock.now_millis());
        assert_eq!(status, ServerStatus::Excluded);
        assert!(reason.unwrap().contains("excluded for 600s"));
        assert!(!server.standing.serving(clock.now_millis()));
        // Further failures while excluded are recorded only.
        assert_eq!(
            rules.warn(&mut server, "x", clock.now_millis()),
            Consequence::None
        );
        assert!(!rules.passed_suite(&mut server, clock.now_millis()));
    }

    #[test]
    fn an_exclusion_ends_in_probation_and_repeats_last_longer() {
        let clock = Clock::manual(1_800_000_000);
        let rules = Sanctions {
            warnings_to_exclude: 1,
            ..rules()
        };
        let mut server = record(1, "ltc", "http://a");
        rules.passed_suite(&mut server, clock.now_millis());
        let mut lengths = Vec::new();
        for _ in 0..4 {
            assert_eq!(
                rules.warn(&mut server, "lied", clock.now_millis()),
                Consequence::Exclusion
            );
            let until = server.standing.excluded_until_ms.unwrap();
            lengths.push((until - clock.now_millis()) / 1000);
            clock.advance(Duration::from_millis(until - clock.now_millis() - 1));
            assert_eq!(
                server.standing.status(clock.now_millis()),
                ServerStatus::Excluded
            );
            clock.advance(Duration::from_millis(1));
            // Readmitted only by passing the suite again.
            assert_eq!(
                server.standing.status(clock.now_millis()),
                ServerStatus::Pending
            );
            assert!(rules.passed_suite(&mut server, clock.now_millis()));
        }
        assert_eq!(lengths, [600, 1200, 2400, 3000]);
        assert_eq!(rules.exclusion_length(200), Duration::from_secs(3000));
    }

    #[test]
    fn old_records_without_a_standing_decode_as_pending() {
        let mut wire = serde_json::to_value(record(1, "ltc", "http://a")).unwrap();
        wire.as_object_mut().unwrap().remove("standing");
        let back: ServerRecord = serde_json::from_value(wire).unwrap();
        assert_eq!(back.standing, Standing::default());
        assert_eq!(back.standing.status(0), ServerStatus::Pending);
    }
}
