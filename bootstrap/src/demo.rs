//! A throw-away maintainer ring for local rings and tests: fresh maintainer keys, a list signed
//! by a threshold of them, and the pins clients need, all in one directory. Never for
//! production: whoever has the directory can sign lists.

use std::path::{Path, PathBuf};

use rot_proto::Identity;

use crate::BootstrapError;
use crate::body::ListBody;
use crate::list::ListFile;
use crate::maintainers::MaintainerSet;
use crate::proxy::ProxyEntry;
use crate::storage;

/// The comment every demo list carries.
pub const DEMO_COMMENT: &str =
    "DEMO list for a local ring: its maintainer keys are throw-away test keys. Never pin them.";

/// What to put in a demo ring.
#[derive(Debug, Clone)]
pub struct DemoSpec {
    /// Number of maintainers (n).
    pub maintainers: usize,
    /// Signatures required (k); the demo list is signed by the first k maintainers.
    pub threshold: u64,
    /// Proxies as (coin id, entry).
    pub proxies: Vec<(String, ProxyEntry)>,
    /// How long the list is valid.
    pub valid_secs: u64,
}

/// The files of a demo ring.
#[derive(Debug, Clone)]
pub struct DemoRing {
    /// `maintainer-1.key` ...: the maintainers' identity key files.
    pub key_files: Vec<PathBuf>,
    /// `list.json`: the signed list.
    pub list_path: PathBuf,
    /// `pins.json`: the maintainer set clients pin (`MaintainerSet::from_json`).
    pub pins_path: PathBuf,
    /// The pinned set.
    pub maintainers: MaintainerSet,
    /// The signed list.
    pub list: ListFile,
}

/// Creates (or, with existing key files, re-creates) a demo ring in `dir`, issued at `now`.
pub fn create_demo_ring(dir: &Path, spec: &DemoSpec, now: u64) -> Result<DemoRing, BootstrapError> {
    let key_files: Vec<PathBuf> = (1..=spec.maintainers)
        .map(|i| dir.join(format!("maintainer-{i}.key")))
        .collect();
    let identities = key_files
        .iter()
        .map(|path| Identity::load_or_generate(path))
        .collect::<Result<Vec<_>, _>>()?;
    let maintainers = MaintainerSet::new(
        spec.threshold,
        identities.iter().map(Identity::public_key).collect(),
    )?;
    let mut body = ListBody::new(maintainers.clone(), now, spec.valid_secs);
    body.comment = Some(DEMO_COMMENT.to_owned());
    for (coin, entry) in &spec.proxies {
        body.proxies
            .entry(coin.clone())
            .or_default()
            .push(entry.clone());
    }
    let list_path = dir.join("list.json");
    let pins_path = dir.join("pins.json");
    // Clients cache the list and refuse another list under the same serial: a ring run again
    // keeps its list while it says the same and has half its life left, else issues the next.
    let previous = ListFile::read(&list_path)
        .and_then(|file| file.verify())
        .ok()
        .filter(|list| list.body().maintainers.same_as(&maintainers));
    let list = match previous {
        Some(list)
            if list.body().proxies == body.proxies
                && list.expires_at() > now.saturating_add(spec.valid_secs / 2) =>
        {
            list.file().clone()
        }
        previous => {
            body.serial = previous.map_or(1, |list| list.serial() + 1);
            let mut list = ListFile::unsigned(&body)?;
            for identity in identities.iter().take(spec.threshold as usize) {
                list.sign(identity)?;
            }
            list.write(&list_path)?;
            list
        }
    };
    let pins = serde_json::to_string_pretty(&maintainers)
        .map_err(|e| BootstrapError::Invalid(e.to_string()))?;
    storage::write_atomic(&pins_path, format!("{pins}\n").as_bytes())?;
    Ok(DemoRing {
        key_files,
        list_path,
        pins_path,
        maintainers,
        list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TrustStore;

    #[test]
    fn creates_a_ring_that_clients_pinning_it_accept() {
        let dir = tempfile::tempdir().unwrap();
        let proxy_key = Identity::from_seed([7; 32]).public_key();
        let spec = DemoSpec {
            maintainers: 3,
            threshold: 2,
            proxies: vec![(
                "ltc-regtest".to_owned(),
                ProxyEntry {
                    url: "http://127.0.0.1:9".to_owned(),
                    key: proxy_key,
                    team: "demo".to_owned(),
                    contact: "demo@localhost".to_owned(),
                },
            )],
            valid_secs: 3_600,
        };
        let ring = create_demo_ring(dir.path(), &spec, 1_000).unwrap();
        assert_eq!(ring.key_files.len(), 3);
        let pins = std::fs::read_to_string(&ring.pins_path).unwrap();
        let mut store = TrustStore::new(MaintainerSet::from_json(&pins).unwrap());
        store
            .accept(&ListFile::read(&ring.list_path).unwrap(), 1_001)
            .unwrap();
        assert_eq!(
            store.proxies_for("ltc-regtest", 1_001).unwrap()[0].key,
            proxy_key
        );
        assert_eq!(
            store.current(1_001).unwrap().body().comment.as_deref(),
            Some(DEMO_COMMENT)
        );

        // Running it again reuses the keys, and the list while it says the same.
        let again = create_demo_ring(dir.path(), &spec, 2_000).unwrap();
        assert_eq!(again.maintainers, ring.maintainers);
        assert_eq!(again.list, ring.list);
        // A changed list, or one past half its life, is the next serial, which clients
        // holding the first one take.
        let mut moved = spec.clone();
        moved.proxies[0].1.url = "http://127.0.0.1:10".to_owned();
        let next = create_demo_ring(dir.path(), &moved, 2_000).unwrap();
        assert_eq!(next.list.serial_hint(), 2);
        store.accept(&next.list, 2_001).unwrap();
        let renewed = create_demo_ring(dir.path(), &moved, 1_000 + 3_000).unwrap();
        assert_eq!(renewed.list.serial_hint(), 3);
    }
}
