//! What a client (server, proxy, wallet) believes about the list: the maintainer keys it was
//! shipped or configured with (pinned), and the newest valid list it has seen (cached). It
//! accepts a new list only if that list is well signed, signed by maintainers that follow from
//! what it trusts, unexpired, and not older than the one it holds.
//!
//! Trust rule: the client trusts the maintainer set of its cached list, or its pinned set if
//! it has none. A list is trusted when its `maintainers` or its `previous_maintainers` are
//! that set, after walking the list's rotation links: each link whose `previous_maintainers`
//! is the trusted set moves the trust to the link's `maintainers`.

use std::path::Path;

use crate::BootstrapError;
use crate::list::{ListFile, MAX_LIST_BYTES, MAX_ROTATIONS};
use crate::maintainers::MaintainerSet;
use crate::proxy::ProxyEntry;
use crate::refresh::RefreshPolicy;
use crate::storage;
use crate::verified::VerifiedList;

/// What accepting a list did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// The list is newer than the cached one (or the first) and is now cached.
    Updated {
        /// The new list's serial.
        serial: u64,
        /// The serial of the list it replaced, if any.
        replaced: Option<u64>,
    },
    /// The list is the one already cached.
    Unchanged {
        /// Its serial.
        serial: u64,
    },
}

/// A client's pinned maintainer keys and cached list.
#[derive(Debug, Clone)]
pub struct TrustStore {
    pinned: MaintainerSet,
    cached: Option<VerifiedList>,
    refresh: RefreshPolicy,
}

impl TrustStore {
    /// A store that trusts `pinned` and holds no list yet.
    pub fn new(pinned: MaintainerSet) -> Self {
        Self {
            pinned,
            cached: None,
            refresh: RefreshPolicy::default(),
        }
    }

    /// Uses `policy` for [`TrustStore::next_refresh`].
    pub fn with_refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.refresh = policy;
        self
    }

    /// The keys the client was shipped or configured with.
    pub fn pinned(&self) -> &MaintainerSet {
        &self.pinned
    }

    /// The set new lists must follow from: the cached list's maintainers, else the pinned set.
    pub fn trusted(&self) -> &MaintainerSet {
        self.cached
            .as_ref()
            .map_or(&self.pinned, |list| &list.body().maintainers)
    }

    /// The newest valid list seen, even if it has expired since (it still guards against
    /// rollback and anchors trust).
    pub fn cached(&self) -> Option<&VerifiedList> {
        self.cached.as_ref()
    }

    /// The cached list if it is still usable at `now`: what to read proxies from, and what a
    /// proxy serves at `GET /v1/bootstrap` (answer 503 on an error).
    pub fn current(&self, now: u64) -> Result<&VerifiedList, BootstrapError> {
        let list = self.cached.as_ref().ok_or(BootstrapError::NoList)?;
        if !list.is_current(now) {
            return Err(BootstrapError::Expired {
                serial: list.serial(),
                expires_at: list.expires_at(),
                now,
            });
        }
        Ok(list)
    }

    /// The proxies of one coin network (`CoinProfile::id()`) from the current list.
    pub fn proxies_for(&self, coin_id: &str, now: u64) -> Result<&[ProxyEntry], BootstrapError> {
        Ok(self.current(now)?.proxies_for(coin_id))
    }

    /// Checks `candidate` as [`TrustStore::accept`] would, without changing the store. Checks,
    /// in order: the list's own validity ([`ListFile::verify`]), trust in its maintainers,
    /// expiry, then rollback against the cached list.
    pub fn check(&self, candidate: &ListFile, now: u64) -> Result<VerifiedList, BootstrapError> {
        let verified = candidate.verify()?;
        self.check_trust(&verified)?;
        if !verified.is_current(now) {
            return Err(BootstrapError::Expired {
                serial: verified.serial(),
                expires_at: verified.expires_at(),
                now,
            });
        }
        self.check_order(&verified)?;
        Ok(verified)
    }

    /// Accepts `candidate` as the newest list if [`TrustStore::check`] passes, and caches it
    /// (in memory; persist with [`TrustStore::save_cache`]).
    pub fn accept(&mut self, candidate: &ListFile, now: u64) -> Result<Accepted, BootstrapError> {
        let verified = self.check(candidate, now)?;
        Ok(self.install(verified))
    }

    /// Loads a cache file written by [`TrustStore::save_cache`], re-verifying it against the
    /// pinned keys (a cache on disk is not trusted more than a mirror). An expired cached list
    /// is loaded too: it still anchors trust and guards against rollback. Returns the cached
    /// serial, or `None` when there is no file. On an error the store is unchanged; callers
    /// log it and carry on without the cache.
    pub fn load_cache(&mut self, path: &Path) -> Result<Option<u64>, BootstrapError> {
        let Some(bytes) = storage::read_capped(path, MAX_LIST_BYTES)? else {
            return Ok(None);
        };
        let verified = ListFile::from_slice(&bytes)?.verify()?;
        self.check_trust(&verified)?;
        self.check_order(&verified)?;
        let serial = verified.serial();
        self.install(verified);
        Ok(Some(serial))
    }

    /// Writes the cached list (with the rotation links this client followed) to `path`
    /// atomically.
    pub fn save_cache(&self, path: &Path) -> Result<(), BootstrapError> {
        let list = self.cached.as_ref().ok_or(BootstrapError::NoList)?;
        list.file().write(path)
    }

    /// When to fetch the list next, unix seconds, jittered by `rng` (see
    /// [`RefreshPolicy::next_refresh`]; pass [`crate::random_u64`] in production).
    pub fn next_refresh(&self, now: u64, rng: &mut impl FnMut() -> u64) -> u64 {
        let expires_at = self.current(now).ok().map(VerifiedList::expires_at);
        self.refresh.next_refresh(now, expires_at, rng)
    }

    fn check_trust(&self, list: &VerifiedList) -> Result<(), BootstrapError> {
        let mut trusted = self.trusted().clone();
        for link in list.links() {
            if link
                .previous_maintainers
                .as_ref()
                .is_some_and(|previous| previous.same_as(&trusted))
            {
                trusted = link.maintainers.clone();
            }
        }
        let body = list.body();
        let follows = body.maintainers.same_as(&trusted)
            || body
                .previous_maintainers
                .as_ref()
                .is_some_and(|previous| previous.same_as(&trusted));
        if follows {
            return Ok(());
        }
        let offered = match &body.previous_maintainers {
            Some(previous) => format!("{} (rotating from {previous})", body.maintainers),
            None => body.maintainers.to_string(),
        };
        Err(BootstrapError::UntrustedMaintainers {
            serial: body.serial,
            trusted: self.trusted().to_string(),
            offered,
        })
    }

    fn check_order(&self, list: &VerifiedList) -> Result<(), BootstrapError> {
        let Some(cached) = &self.cached else {
            return Ok(());
        };
        if list.serial() < cached.serial() {
            return Err(BootstrapError::Rollback {
                offered: list.serial(),
                cached: cached.serial(),
            });
        }
        if list.serial() == cached.serial() && !list.file().same_body(cached.file()) {
            return Err(BootstrapError::Conflict {
                serial: list.serial(),
            });
        }
        Ok(())
    }

    /// Caches `list` unless it is the cached one, carrying forward the rotation links that led
    /// here so that the cache re-verifies from the pinned keys after a restart.
    fn install(&mut self, list: VerifiedList) -> Accepted {
        let serial = list.serial();
        let replaced = self.cached.as_ref().map(VerifiedList::serial);
        if replaced == Some(serial) {
            return Accepted::Unchanged { serial };
        }
        let mut links = self
            .cached
            .as_ref()
            .map(successor_links)
            .unwrap_or_default();
        links.extend(list.file().rotations().iter().cloned());
        let links = normalize_links(links, serial);
        let carried = list.file().with_rotations(links);
        // The links were all verified already; should the combination fail, keep the list as
        // received.
        self.cached = Some(carried.verify().unwrap_or(list));
        Accepted::Updated { serial, replaced }
    }
}

/// The rotation links a successor of `list` carries: its own, plus itself if it rotated.
pub(crate) fn successor_links(list: &VerifiedList) -> Vec<ListFile> {
    let mut links = list.file().rotations().to_vec();
    if list.body().previous_maintainers.is_some() {
        links.push(list.file().as_link());
    }
    links
}

/// Sorts links by serial, keeps one per serial and only those below `serial`, and the newest
/// [`MAX_ROTATIONS`] of them.
pub(crate) fn normalize_links(mut links: Vec<ListFile>, serial: u64) -> Vec<ListFile> {
    links.retain(|link| link.serial_hint() < serial);
    links.sort_by_key(ListFile::serial_hint);
    links.dedup_by_key(|link| link.serial_hint());
    let excess = links.len().saturating_sub(MAX_ROTATIONS);
    links.drain(..excess);
    links
}
