//! A long-running client of the list (a server, a proxy, the `rot` tool): the keys it pins, the
//! newest valid list it holds (cached on disk across restarts), and where it refreshes from:
//! the mirrors it was configured with plus every proxy the list itself names, so that one
//! reachable proxy is enough to keep following the list.

use std::path::{Path, PathBuf};

use crate::BootstrapError;
use crate::fetch::{FetchOptions, FetchReport, refresh};
use crate::list::ListFile;
use crate::maintainers::MaintainerSet;
use crate::refresh::random_u64;
use crate::trust::{Accepted, TrustStore};

/// Pinned keys, cached list and mirrors of one client.
#[derive(Debug)]
pub struct Follower {
    store: TrustStore,
    mirrors: Vec<String>,
    cache: Option<PathBuf>,
}

impl Follower {
    /// A client trusting the keys in `pins_file`, fetching from `mirrors`, caching in `cache`.
    /// The cache is not read yet: see [`Follower::load_cache`].
    pub fn open(
        pins_file: &Path,
        mirrors: Vec<String>,
        cache: Option<PathBuf>,
    ) -> Result<Self, BootstrapError> {
        Ok(Self {
            store: TrustStore::new(MaintainerSet::read(pins_file)?),
            mirrors,
            cache,
        })
    }

    /// Loads the cached list, re-verified; returns its serial, `None` without a cache. On an
    /// error (a damaged or untrusted cache) the follower carries on without it: callers log it.
    pub fn load_cache(&mut self) -> Result<Option<u64>, BootstrapError> {
        match &self.cache {
            Some(path) => self.store.load_cache(path),
            None => Ok(None),
        }
    }

    /// What the client believes.
    pub fn store(&self) -> &TrustStore {
        &self.store
    }

    /// Every URL to refresh from at `now`: the configured mirrors and the `/v1/bootstrap` of
    /// every proxy of the current list, each once.
    pub fn mirrors(&self, now: u64) -> Vec<String> {
        let mut mirrors = self.mirrors.clone();
        if let Ok(list) = self.store.current(now) {
            mirrors.extend(list.mirror_urls());
        }
        mirrors.sort();
        mirrors.dedup();
        mirrors
    }

    /// Fetches from every mirror and keeps the newest valid list; a newer list is written to
    /// the cache (a failed write is returned beside the report: the list is held anyway).
    pub async fn refresh(
        &mut self,
        client: &reqwest::Client,
        now: u64,
        options: &FetchOptions,
    ) -> (FetchReport, Result<(), BootstrapError>) {
        let mirrors = self.mirrors(now);
        let report = refresh(&mut self.store, client, &mirrors, now, options).await;
        let cached = match report.accepted {
            Some(Accepted::Updated { .. }) => self.save_cache(),
            _ => Ok(()),
        };
        (report, cached)
    }

    /// Takes `candidate` (e.g. a list a peer or an operator handed over) if it is valid and not
    /// older than the held one, and caches it when it is newer.
    pub fn offer(&mut self, candidate: &ListFile, now: u64) -> Result<Accepted, BootstrapError> {
        let accepted = self.store.accept(candidate, now)?;
        if let Accepted::Updated { .. } = accepted {
            self.save_cache()?;
        }
        Ok(accepted)
    }

    /// Seconds until the next refresh, jittered (at least 1).
    pub fn next_refresh_in(&self, now: u64) -> u64 {
        self.store
            .next_refresh(now, &mut random_u64)
            .saturating_sub(now)
            .max(1)
    }

    fn save_cache(&self) -> Result<(), BootstrapError> {
        match &self.cache {
            Some(path) => self.store.save_cache(path),
            None => Ok(()),
        }
    }
}
