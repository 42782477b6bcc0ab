//! Reading and writing list files: reads are capped so a wrong path cannot make us allocate
//! without bound, writes go through a temp file and a rename so a crash never leaves a
//! half-written list or cache behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::BootstrapError;

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The contents of `path`, or `None` if it does not exist; more than `limit` bytes is an error.
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, BootstrapError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path)(error)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() as u64 > limit {
        return Err(BootstrapError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(Some(bytes))
}

/// Replaces `path` with `bytes` atomically, creating parent directories.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BootstrapError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let name = path.file_name().ok_or_else(|| {
        io_error(path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no file name",
        ))
    })?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| io_error(path)(io::Error::other(e.to_string())))?;
    let mut temp_name = name.to_owned();
    temp_name.push(format!(".tmp-{:016x}", u64::from_le_bytes(suffix)));
    let temp = dir.join(temp_name);
    let written = write_new(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_file(&temp);
    }
    written.map_err(io_error(path))
}

fn write_new(temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/list.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_capped(&path, 10).unwrap().unwrap(), b"two");
        // No temp file left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn missing_file_is_none_and_oversized_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.json");
        assert!(read_capped(&path, 10).unwrap().is_none());
        fs::write(&path, [b'x'; 11]).unwrap();
        assert!(matches!(
            read_capped(&path, 10),
            Err(BootstrapError::TooLarge { limit: 10, .. })
        ));
        assert_eq!(read_capped(&path, 11).unwrap().unwrap().len(), 11);
    }
}
