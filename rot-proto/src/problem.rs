//! Why a conformance check did not pass, and the bookkeeping of facts checks share (feature
//! `client`). A [`Problem`] keeps apart the three ways a check can end without passing: the
//! server answered wrongly (at fault), it could not be asked (not at fault), or there was
//! nothing to check. A [`Fact`] is something one check fetched and others build on; it
//! remembers whether its failure was reported, so that each failure is reported once.

use serde_json::{Value, json};

use crate::Error;
use crate::conformance::{CheckResult, Outcome};

/// Why a check did not pass.
#[derive(Debug, Clone)]
pub(crate) enum Problem {
    /// The server answered wrongly.
    Fault { summary: String, evidence: Value },
    /// The server could not be asked: says nothing about its honesty.
    Unreachable { summary: String, evidence: Value },
    /// Nothing to check.
    Skip { summary: String, evidence: Value },
}

impl Problem {
    pub(crate) fn fault(summary: impl Into<String>, evidence: Value) -> Self {
        Self::Fault {
            summary: summary.into(),
            evidence,
        }
    }

    pub(crate) fn skip(summary: impl Into<String>, evidence: Value) -> Self {
        Self::Skip {
            summary: summary.into(),
            evidence,
        }
    }

    /// A failed request to an endpoint every server serves.
    pub(crate) fn required(error: Error) -> Self {
        Self::of(error, false)
    }

    /// A failed request to an endpoint a server may lack (HTTP 501), unless it `claimed` the
    /// capability for it.
    pub(crate) fn optional(error: Error, claimed: bool) -> Self {
        Self::of(error, !claimed)
    }

    fn of(error: Error, may_lack: bool) -> Self {
        match error {
            Error::Unreachable { url, reason } => Self::Unreachable {
                summary: format!("{url} unreachable: {reason}"),
                evidence: json!({"request": url, "error": reason}),
            },
            Error::HttpStatus {
                url,
                status: 501,
                message,
                ..
            } if may_lack => Self::skip(
                format!("not offered by the server: {message}"),
                json!({"request": url, "status": 501, "message": message}),
            ),
            Error::HttpStatus {
                url,
                status,
                code,
                message,
            } => Self::fault(
                format!("{url} answered HTTP {status}: {message}"),
                json!({"request": url, "status": status, "code": code, "message": message}),
            ),
            Error::BadAnswer { url, reason } => Self::fault(
                format!("wrong answer from {url}: {reason}"),
                json!({"request": url, "error": reason}),
            ),
            other => Self::Unreachable {
                summary: other.to_string(),
                evidence: json!({"error": other.to_string()}),
            },
        }
    }

    fn summary(&self) -> &str {
        match self {
            Self::Fault { summary, .. }
            | Self::Unreachable { summary, .. }
            | Self::Skip { summary, .. } => summary,
        }
    }

    /// This problem of check `owner`, reported by a check that needed its facts.
    fn for_dependent(self, owner: &str) -> Self {
        let wrap = |summary: String, evidence: Value| {
            (
                format!("needs the `{owner}` check, which failed: {summary}"),
                json!({"prerequisite": owner, "evidence": evidence}),
            )
        };
        match self {
            Self::Fault { summary, evidence } => {
                let (summary, evidence) = wrap(summary, evidence);
                Self::Fault { summary, evidence }
            }
            Self::Unreachable { summary, evidence } => {
                let (summary, evidence) = wrap(summary, evidence);
                Self::Unreachable { summary, evidence }
            }
            Self::Skip { summary, evidence } => Self::Skip {
                summary: format!("needs the `{owner}` check, which skipped: {summary}"),
                evidence: json!({"prerequisite": owner, "evidence": evidence}),
            },
        }
    }
}

/// What a passed check reports.
#[derive(Debug)]
pub(crate) struct Passed {
    pub(crate) summary: String,
    pub(crate) evidence: Value,
}

/// A fetched fact and whether its failure has been reported by some check.
#[derive(Debug)]
pub(crate) struct Fact<T> {
    pub(crate) value: Result<T, Problem>,
    pub(crate) reported: bool,
}

impl<T> Fact<T> {
    pub(crate) fn new(value: Result<T, Problem>) -> Self {
        Self {
            value,
            reported: false,
        }
    }
}

/// The fact in `slot` for the check that owns it: its failure is that check's failure.
pub(crate) fn own<T>(slot: &mut Option<Fact<T>>) -> Result<&T, Problem> {
    match slot {
        Some(fact) => {
            fact.reported = true;
            fact.value.as_ref().map_err(Problem::clone)
        }
        None => Err(Problem::skip("not fetched", Value::Null)),
    }
}

/// The fact in `slot` for a check that needs it from check `owner`: a failure not yet
/// reported is reported now, one already reported makes this check skip.
pub(crate) fn settle<'a, T>(slot: &'a mut Option<Fact<T>>, owner: &str) -> Result<&'a T, Problem> {
    let Some(fact) = slot else {
        return Err(Problem::skip(
            format!("needs the `{owner}` check's facts, which are not available"),
            json!({"prerequisite": owner}),
        ));
    };
    if let Err(problem) = &fact.value {
        let problem = problem.clone();
        let first = !fact.reported;
        fact.reported = true;
        return Err(if first {
            problem.for_dependent(owner)
        } else {
            Problem::skip(
                format!("needs the `{owner}` check, which did not pass"),
                json!({"prerequisite": owner, "because": problem.summary()}),
            )
        });
    }
    fact.value.as_ref().map_err(Problem::clone)
}

pub(crate) fn finish(name: &str, result: Result<Passed, Problem>) -> CheckResult {
    let (outcome, at_fault, summary, evidence) = match result {
        Ok(Passed { summary, evidence }) => (Outcome::Pass, false, summary, evidence),
        Err(Problem::Fault { summary, evidence }) => (Outcome::Fail, true, summary, evidence),
        Err(Problem::Unreachable { summary, evidence }) => {
            (Outcome::Fail, false, summary, evidence)
        }
        Err(Problem::Skip { summary, evidence }) => (Outcome::Skip, false, summary, evidence),
    };
    CheckResult {
        name: name.to_owned(),
        outcome,
        at_fault,
        summary,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::check;

    fn fact(problem: Problem) -> Option<Fact<u32>> {
        Some(Fact::new(Err(problem)))
    }

    #[test]
    fn a_prerequisite_failure_is_reported_once() {
        let mut slot = fact(Problem::fault("lied", json!({"x": 1})));
        match settle(&mut slot, check::HEADERS) {
            Err(Problem::Fault { summary, evidence }) => {
                assert!(summary.contains("`headers`") && summary.contains("lied"));
                assert_eq!(evidence["prerequisite"], "headers");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            settle(&mut slot, check::HEADERS),
            Err(Problem::Skip { .. })
        ));
        // The owner reports it whatever a dependent did.
        assert!(matches!(own(&mut slot), Err(Problem::Fault { .. })));

        let mut owned_first = fact(Problem::Unreachable {
            summary: "down".into(),
            evidence: Value::Null,
        });
        assert!(own(&mut owned_first).is_err());
        assert!(matches!(
            settle(&mut owned_first, check::TIP),
            Err(Problem::Skip { .. })
        ));
        let mut fine = Some(Fact::new(Ok(7u32)));
        assert_eq!(settle(&mut fine, check::TIP).unwrap(), &7);
        assert!(matches!(
            settle::<u32>(&mut None, check::TIP),
            Err(Problem::Skip { .. })
        ));
    }

    #[test]
    fn errors_are_blamed_by_kind() {
        let url = "http://127.0.0.1:1/x".to_owned();
        let status = |status| Error::HttpStatus {
            url: url.clone(),
            status,
            code: None,
            message: "m".into(),
        };
        assert!(matches!(
            Problem::required(Error::Unreachable {
                url: url.clone(),
                reason: "refused".into()
            }),
            Problem::Unreachable { .. }
        ));
        assert!(matches!(
            Problem::required(status(501)),
            Problem::Fault { .. }
        ));
        assert!(matches!(
            Problem::optional(status(501), false),
            Problem::Skip { .. }
        ));
        assert!(matches!(
            Problem::optional(status(501), true),
            Problem::Fault { .. }
        ));
        assert!(matches!(
            Problem::optional(status(404), false),
            Problem::Fault { .. }
        ));
        let result = finish(
            check::TIP,
            Err(Problem::required(Error::BadAnswer {
                url,
                reason: "r".into(),
            })),
        );
        assert!(result.is_server_fault());
    }
}
