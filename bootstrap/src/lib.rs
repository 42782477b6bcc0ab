//! rot-bootstrap: the one central piece of ROT, the threshold-signed list of proxies. It holds
//! the list format ([`ListFile`], [`ListBody`]), its verification by clients ([`TrustStore`]:
//! pinned maintainer keys, cached newest list, rollback and expiry checks, jittered refresh),
//! fetching from mirrors and following the list over time ([`fetch`], [`Follower`], feature
//! `http`), and the editing behind the maintainers' `rot-bootstrap` tool.
//! Format and rules: `docs/bootstrap.md`.

pub mod body;
pub mod demo;
mod draft;
mod error;
#[cfg(feature = "http")]
pub mod fetch;
#[cfg(feature = "http")]
pub mod follower;
pub mod list;
pub mod maintainers;
pub mod proxy;
pub mod refresh;
pub mod signature;
mod storage;
pub mod trust;
pub mod verified;

pub use body::ListBody;
pub use draft::Edit;
pub use error::{BootstrapError, SetRole};
#[cfg(feature = "http")]
pub use follower::Follower;
pub use list::{ListFile, SigningStatus};
pub use maintainers::MaintainerSet;
pub use proxy::{ProxyEntry, bootstrap_url};
pub use refresh::{RefreshPolicy, random_u64};
pub use signature::{LIST_TAG, ListSignature, SignatureCheck, SignatureVerdict, Tally};
pub use trust::{Accepted, TrustStore};
pub use verified::VerifiedList;

/// The list published with this source tree (`bootstrap/list.json`). See `docs/bootstrap.md`
/// for what it currently is; clients pin maintainer keys explicitly rather than trusting it.
pub const PUBLISHED_LIST: &str = include_str!("../list.json");

/// The system clock in unix seconds (0 if it is set before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
