//! The directory on disk: one sled database in the proxy's data directory, so a restart keeps
//! every server, its state and its last accepted sequence number.
//!
//! Records are JSON (readable with any sled tool, and tolerant of added fields). A server's
//! record is written before its heartbeat is acknowledged; sled makes writes durable within
//! its flush interval ([`FLUSH_EVERY_MS`]) and at shutdown ([`Store::flush`]).

use std::path::Path;

use rot_proto::{Incident, PublicKey};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Tree;

use crate::Error;
use crate::directory::{Ban, ServerRecord};

/// Bumped whenever the layout below changes; a database of another version is refused at open.
pub const SCHEMA_VERSION: u32 = 1;

/// Schema version.
const META: &str = "meta";
/// server key (32 bytes) → [`ServerRecord`] as JSON.
const SERVERS: &str = "servers";
/// server key (32 bytes) → [`Ban`] as JSON.
const BANS: &str = "bans";
/// incident id (8 bytes, big-endian) → [`Incident`] as JSON; append-only.
const INCIDENTS: &str = "incidents";
/// server key (32 bytes) ‖ incident id (8 bytes, big-endian) → nothing: a server's incidents.
const INCIDENTS_BY_SERVER: &str = "incidents_by_server";

const KEY_SCHEMA: &[u8] = b"schema_version";

/// How often sled writes to disk on its own; a crash loses at most this much.
pub const FLUSH_EVERY_MS: u64 = 200;
/// Page cache: the directory is small (a record is well under 1 KiB).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The proxy's sled database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    servers: Tree,
    bans: Tree,
    incidents: Tree,
    incidents_by_server: Tree,
}

impl Store {
    /// Opens (or creates) the database at `path`, refusing one of another schema version.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(FLUSH_EVERY_MS));
        let db = rot_ops::sled_open::open_when_unlocked(&config)?;
        let meta = db.open_tree(META)?;
        let servers = db.open_tree(SERVERS)?;
        let bans = db.open_tree(BANS)?;
        match meta.get(KEY_SCHEMA)? {
            Some(found) if found.as_ref() == SCHEMA_VERSION.to_be_bytes() => {}
            Some(found) => {
                return Err(Error::Schema(format!(
                    "the directory at {} has schema version {}, this rot-proxy uses {SCHEMA_VERSION}",
                    path.display(),
                    hex_or_number(&found)
                )));
            }
            None if servers.is_empty() && bans.is_empty() => {
                meta.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            }
            None => {
                return Err(Error::Schema(format!(
                    "the directory at {} has records but no schema version",
                    path.display()
                )));
            }
        }
        Ok(Self {
            incidents: db.open_tree(INCIDENTS)?,
            incidents_by_server: db.open_tree(INCIDENTS_BY_SERVER)?,
            db,
            servers,
            bans,
        })
    }

    /// Every stored server.
    pub fn servers(&self) -> Result<Vec<ServerRecord>, Error> {
        load_all(&self.servers)
    }

    /// Stores (or replaces) a server's record.
    pub fn put_server(&self, record: &ServerRecord) -> Result<(), Error> {
        put(&self.servers, &record.server_key, record)
    }

    /// Forgets a server.
    pub fn remove_server(&self, key: &PublicKey) -> Result<(), Error> {
        self.servers.remove(key.as_bytes())?;
        Ok(())
    }

    /// Every ban.
    pub fn bans(&self) -> Result<Vec<Ban>, Error> {
        load_all(&self.bans)
    }

    /// Stores (or replaces) a ban.
    pub fn put_ban(&self, ban: &Ban) -> Result<(), Error> {
        put(&self.bans, &ban.server_key, ban)
    }

    /// Lifts a ban.
    pub fn remove_ban(&self, key: &PublicKey) -> Result<(), Error> {
        self.bans.remove(key.as_bytes())?;
        Ok(())
    }

    /// Writes everything to disk; called at shutdown.
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush()?;
        Ok(())
    }

    /// Appends an incident under its id (never overwriting one).
    pub fn append_incident(&self, incident: &Incident) -> Result<(), Error> {
        let id = incident.id.to_be_bytes();
        let bytes = serde_json::to_vec(incident).map_err(|e| Error::Corrupt(e.to_string()))?;
        if self
            .incidents
            .compare_and_swap(id, None as Option<&[u8]>, Some(bytes))?
            .is_err()
        {
            return Err(Error::Corrupt(format!(
                "incident {} exists already",
                incident.id
            )));
        }
        let mut index = incident.server_key.as_bytes().to_vec();
        index.extend_from_slice(&id);
        self.incidents_by_server.insert(index, &[])?;
        Ok(())
    }

    /// The highest incident id stored.
    pub fn last_incident_id(&self) -> Result<Option<u64>, Error> {
        Ok(self.incidents.last()?.map(|(key, _)| id_of(&key)))
    }

    /// Up to `limit` incidents with ids above `after`, of `server` only if given, oldest
    /// first, kept if `keep` says so.
    pub fn incidents(
        &self,
        server: Option<&PublicKey>,
        after: u64,
        limit: usize,
        keep: impl Fn(&Incident) -> bool,
    ) -> Result<Vec<Incident>, Error> {
        let start = after.saturating_add(1).to_be_bytes();
        let ids: Box<dyn Iterator<Item = Result<u64, Error>>> = match server {
            None => Box::new(
                self.incidents
                    .range(start..)
                    .map(|item| Ok(id_of(&item?.0))),
            ),
            Some(key) => {
                let mut from = key.as_bytes().to_vec();
                from.extend_from_slice(&start);
                Box::new(
                    self.incidents_by_server
                        .range(from..)
                        .take_while(|item| {
                            item.as_ref()
                                .map_or(true, |(k, _)| k.starts_with(key.as_bytes()))
                        })
                        .map(|item| Ok(id_of(&item?.0[32..]))),
                )
            }
        };
        let mut found = Vec::new();
        for id in ids {
            if found.len() >= limit {
                break;
            }
            let id = id?;
            let Some(bytes) = self.incidents.get(id.to_be_bytes())? else {
                continue;
            };
            let incident: Incident = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("incident {id}: {e}")))?;
            if keep(&incident) {
                found.push(incident);
            }
        }
        Ok(found)
    }
}

/// An incident id from its big-endian key (0 for a malformed key, which is never written).
fn id_of(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key).map_or(0, u64::from_be_bytes)
}

fn put<T: Serialize>(tree: &Tree, key: &PublicKey, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Corrupt(e.to_string()))?;
    tree.insert(key.as_bytes(), bytes)?;
    Ok(())
}

fn load_all<T: DeserializeOwned>(tree: &Tree) -> Result<Vec<T>, Error> {
    tree.iter()
        .map(|item| {
            let (key, value) = item?;
            serde_json::from_slice(&value)
                .map_err(|e| Error::Corrupt(format!("record {}: {e}", hex::encode(&key))))
        })
        .collect()
}

fn hex_or_number(bytes: &[u8]) -> String {
    match <[u8; 4]>::try_from(bytes) {
        Ok(be) => u32::from_be_bytes(be).to_string(),
        Err(_) => format!("0x{}", hex::encode(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::tests::record;

    #[test]
    fn records_and_bans_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let server = record(1, "ltc", "http://127.0.0.1:1");
        let ban = Ban {
            server_key: record(2, "ltc", "http://x").server_key,
            reason: "forged tips".into(),
            since: 5,
        };
        {
            let store = Store::open(&path).unwrap();
            store.put_server(&server).unwrap();
            store.put_ban(&ban).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.servers().unwrap(), vec![server.clone()]);
        assert_eq!(store.bans().unwrap(), vec![ban.clone()]);
        store.remove_server(&server.server_key).unwrap();
        store.remove_ban(&ban.server_key).unwrap();
        assert!(store.servers().unwrap().is_empty());
        assert!(store.bans().unwrap().is_empty());
    }

    #[test]
    fn a_reopen_waits_for_a_handle_being_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let first = Store::open(&path).unwrap();
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        Store::open(&path).unwrap();
        dropper.join().unwrap();
    }

    #[test]
    fn other_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            db.open_tree(META)
                .unwrap()
                .insert(KEY_SCHEMA, &99u32.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn damaged_record_is_reported_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .servers
            .insert([7u8; 32], b"{not json".as_slice())
            .unwrap();
        assert!(matches!(store.servers(), Err(Error::Corrupt(_))));
    }
}
