//! A list whose signatures, thresholds and rotation links have been checked, with its decoded
//! body: what servers, proxies and wallets read proxies from.

use crate::body::ListBody;
use crate::list::ListFile;
use crate::proxy::ProxyEntry;

/// A list that passed [`ListFile::verify`]. Whether the client trusts its maintainers and
/// whether it is still current is [`crate::TrustStore`]'s business.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedList {
    file: ListFile,
    body: ListBody,
    links: Vec<ListBody>,
}

impl VerifiedList {
    pub(crate) fn new(file: ListFile, body: ListBody, links: Vec<ListBody>) -> Self {
        Self { file, body, links }
    }

    /// The file as received: what to cache and what a proxy serves at `GET /v1/bootstrap`.
    pub fn file(&self) -> &ListFile {
        &self.file
    }

    /// The decoded body.
    pub fn body(&self) -> &ListBody {
        &self.body
    }

    /// The decoded bodies of the rotation links, oldest first.
    pub fn links(&self) -> &[ListBody] {
        &self.links
    }

    /// The list's version number.
    pub fn serial(&self) -> u64 {
        self.body.serial
    }

    /// When the list stops being usable, unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.body.expires_at
    }

    /// Whether the list is still usable at `now`.
    pub fn is_current(&self, now: u64) -> bool {
        now < self.body.expires_at
    }

    /// The proxies of one coin network (`CoinProfile::id()`, e.g. `ltc-regtest`).
    pub fn proxies_for(&self, coin_id: &str) -> &[ProxyEntry] {
        self.body.proxies_for(coin_id)
    }

    /// Every proxy's `/v1/bootstrap` URL, each once: mirrors the list can be refreshed from.
    pub fn mirror_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self
            .body
            .proxies
            .values()
            .flatten()
            .map(ProxyEntry::bootstrap_url)
            .collect();
        urls.sort();
        urls.dedup();
        urls
    }
}
