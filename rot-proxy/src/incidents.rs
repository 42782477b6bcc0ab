//! The incident log: every failed check, disagreement and ejection, with the time, the
//! server's key, the check, the evidence and what the proxy did about it. Append-only in the
//! proxy's sled database (numbered in order, never rewritten, kept when a server is
//! forgotten), so the coin team and the server's operator can see why a server was warned or
//! excluded.
//!
//! Who sees what: the evidence goes to the coin team (operator token) and to the server's own
//! operator, who proves it by a request signed with the server's key ([`IncidentQuery`]).
//! Wallets see each incident without its evidence, and each server's status and counts in the
//! directory.

use std::sync::{Mutex, PoisonError};

use rot_proto::PublicKey;
use rot_proto::message::{Consequence, Incident, check_clock_skew};
use rot_proto::signed::{Signed, SignedBody};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;
use crate::clock::Clock;
use crate::store::Store;

/// Largest evidence kept whole (serialized); larger evidence is cut to an excerpt.
pub const MAX_EVIDENCE_BYTES: usize = 32 * 1024;
/// Most incidents one answer holds.
pub const MAX_PAGE: usize = 500;

/// The append-only incident log. Shared as `Arc<Incidents>`.
#[derive(Debug)]
pub struct Incidents {
    store: Store,
    clock: Clock,
    /// The next id; held while appending, so ids follow the order of appends.
    next_id: Mutex<u64>,
}

/// Which incidents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IncidentFilter {
    /// Only this coin's (coin id).
    #[serde(default)]
    pub coin: Option<String>,
    /// Only this server's.
    #[serde(default)]
    pub server: Option<PublicKey>,
    /// Only ids above this one (paging).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default and cap [`MAX_PAGE`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The body of every incident listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentsAnswer {
    /// The incidents, oldest first.
    pub incidents: Vec<Incident>,
}

impl Incidents {
    /// The log in `store`, continuing its numbering; times from `clock`.
    pub fn open(store: Store, clock: Clock) -> Result<Self, Error> {
        let next = store.last_incident_id()?.map_or(1, |last| last + 1);
        Ok(Self {
            store,
            clock,
            next_id: Mutex::new(next),
        })
    }

    /// Appends an incident of `server_key` (coin id `coin`) failing `check`, now.
    pub fn record(
        &self,
        coin: &str,
        server_key: PublicKey,
        check: &str,
        evidence: Value,
        consequence: Consequence,
    ) -> Result<Incident, Error> {
        let mut next = self.next_id.lock().unwrap_or_else(PoisonError::into_inner);
        let incident = Incident {
            id: *next,
            time: self.clock.now_secs(),
            coin: coin.to_owned(),
            server_key,
            check: check.to_owned(),
            evidence: bounded(evidence),
            consequence,
        };
        self.store.append_incident(&incident)?;
        *next += 1;
        drop(next);
        tracing::warn!(id = incident.id, coin, server_key = %server_key, check, ?consequence, "incident");
        Ok(incident)
    }

    /// The incidents `filter` selects, oldest first.
    pub fn list(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, Error> {
        let limit = filter.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        self.store
            .incidents(filter.server.as_ref(), filter.after, limit, |incident| {
                filter
                    .coin
                    .as_ref()
                    .is_none_or(|coin| *coin == incident.coin)
            })
    }

    /// The same, without evidence: what wallets see.
    pub fn list_public(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, Error> {
        let mut incidents = self.list(filter)?;
        for incident in &mut incidents {
            incident.evidence = Value::Null;
        }
        Ok(incidents)
    }
}

/// Evidence as kept: whole up to [`MAX_EVIDENCE_BYTES`], else an excerpt of its JSON.
fn bounded(evidence: Value) -> Value {
    let text = evidence.to_string();
    if text.len() <= MAX_EVIDENCE_BYTES {
        return evidence;
    }
    let excerpt: String = text.chars().take(MAX_EVIDENCE_BYTES / 2).collect();
    json!({"truncated": true, "bytes": text.len(), "excerpt": excerpt})
}

/// A server operator's request for its server's incidents, signed with the server's key:
/// `POST /v1/coins/{coin}/servers/{key}/incidents` with a `Signed<IncidentQuery>` body. The
/// time must be within the proxy's allowed clock skew; a query is only good for that long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentQuery {
    /// The coin id (`ltc`, `ltc-regtest`).
    pub coin: String,
    /// The server whose incidents are asked for; must be the signer.
    pub server_key: PublicKey,
    /// When the query was signed (unix seconds).
    pub time: u64,
    /// Only incidents with ids above this one.
    #[serde(default)]
    pub after: u64,
}

impl SignedBody for IncidentQuery {
    const TAG: &'static str = "rot/incident-query";

    fn claimed_signer(&self) -> Option<&PublicKey> {
        Some(&self.server_key)
    }
}

impl IncidentQuery {
    /// Verifies `signed` as a query for `server_key`'s incidents of coin `coin`, signed by
    /// that key within `max_skew_secs` of `now`.
    pub fn verify(
        signed: &Signed<Self>,
        coin: &str,
        server_key: &PublicKey,
        now: u64,
        max_skew_secs: u64,
    ) -> Result<Self, Error> {
        let query = signed.verify()?;
        if query.server_key != *server_key {
            return Err(Error::BadRequest(format!(
                "the query is for server {}, the URL names {server_key}",
                query.server_key
            )));
        }
        if !query.coin.eq_ignore_ascii_case(coin) {
            return Err(Error::BadRequest(format!(
                "the query is for coin {}, the URL names {coin}",
                query.coin
            )));
        }
        check_clock_skew(query.time, now, max_skew_secs)?;
        Ok(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rot_proto::Identity;
    use std::time::Duration;

    fn log(dir: &tempfile::TempDir, clock: &Clock) -> Incidents {
        Incidents::open(Store::open(&dir.path().join("db")).unwrap(), clock.clone()).unwrap()
    }

    #[test]
    fn incidents_are_numbered_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(1_800_000_000);
        let (a, b) = (
            Identity::from_seed([1; 32]).public_key(),
            Identity::from_seed([2; 32]).public_key(),
        );
        {
            let log = log(&dir, &clock);
            log.record("ltc", a, "tip", json!({"got": 1}), Consequence::Warning)
                .unwrap();
            clock.advance(Duration::from_secs(5));
            log.record("ltc", b, "headers", json!({}), Consequence::Exclusion)
                .unwrap();
            log.store.flush().unwrap();
        }
        let log = log(&dir, &clock);
        let third = log
            .record("ltc-test", a, "cross-check", json!({}), Consequence::None)
            .unwrap();
        assert_eq!(third.id, 3);
        let all = log.list(&IncidentFilter::default()).unwrap();
        assert_eq!(all.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[1].time, 1_800_000_005);
        let of_a = log
            .list(&IncidentFilter {
                server: Some(a),
                ..IncidentFilter::default()
            })
            .unwrap();
        assert_eq!(of_a.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 3]);
        let later = log
            .list(&IncidentFilter {
                server: Some(a),
                after: 1,
                coin: Some("ltc-test".into()),
                limit: Some(10),
            })
            .unwrap();
        assert_eq!(later, vec![third]);
        let public = log.list_public(&IncidentFilter::default()).unwrap();
        assert_eq!(public[0].evidence, Value::Null);
        assert_eq!(public[0].check, "tip");
        // Ids are never reused: an append under an existing id is refused.
        assert!(log.store.append_incident(&all[0]).is_err());
    }

    #[test]
    fn huge_evidence_is_cut_to_an_excerpt() {
        let big = json!({"answer": "x".repeat(MAX_EVIDENCE_BYTES)});
        let kept = bounded(big);
        assert_eq!(kept["truncated"], true);
        assert!(kept.to_string().len() < MAX_EVIDENCE_BYTES);
        assert_eq!(bounded(json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn queries_must_be_signed_by_the_server_fresh_and_for_the_url() {
        let id = Identity::from_seed([7; 32]);
        let key = id.public_key();
        let now = 1_800_000_000;
        let query = |coin: &str, server_key: PublicKey, time: u64| {
            Signed::sign(
                &id,
                &IncidentQuery {
                    coin: coin.into(),
                    server_key,
                    time,
                    after: 0,
                },
            )
        };
        let good = query("ltc", key, now).unwrap();
        assert_eq!(
            IncidentQuery::verify(&good, "ltc", &key, now + 30, 60)
                .unwrap()
                .server_key,
            key
        );
        assert!(matches!(
            IncidentQuery::verify(&good, "ltc", &key, now + 61, 60),
            Err(Error::Proto(rot_proto::Error::ClockSkew { .. }))
        ));
        assert!(matches!(
            IncidentQuery::verify(&good, "doge", &key, now, 60),
            Err(Error::BadRequest(_))
        ));
        let other = Identity::from_seed([8; 32]).public_key();
        assert!(matches!(
            IncidentQuery::verify(&good, "ltc", &other, now, 60),
            Err(Error::BadRequest(_))
        ));
        // Signing in another server's name does not verify.
        let forged = query("ltc", other, now).unwrap();
        assert!(matches!(
            IncidentQuery::verify(&forged, "ltc", &other, now, 60),
            Err(Error::Proto(rot_proto::Error::SignerMismatch { .. }))
        ));
    }
}
