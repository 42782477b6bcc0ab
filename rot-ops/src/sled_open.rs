//! Opening a service's sled database again right after it was closed in the same process (a
//! restart in tests or the demo ring, a tool reading an index after its server stopped):
//! sled's background flusher keeps a dropped database locked for a moment.

use std::time::{Duration, Instant};

/// How long to wait for this process's previous handle to let go.
const PATIENCE: Duration = Duration::from_secs(3);

/// Opens the database of `config`, waiting up to a few seconds while the file lock is held.
pub fn open_when_unlocked(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match config.open() {
            // sled reports the lock as `Other` with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            opened => return opened,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_reopens_while_its_last_handle_lets_go() {
        let dir = std::env::temp_dir().join(format!("rot-ops-sled-{}", std::process::id()));
        let config = sled::Config::new().path(&dir).flush_every_ms(Some(200));
        for round in 0..3u8 {
            let db = open_when_unlocked(&config).unwrap();
            db.insert([round], &[round]).unwrap();
            drop(db);
        }
        let db = open_when_unlocked(&config).unwrap();
        assert_eq!(db.len(), 3);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
