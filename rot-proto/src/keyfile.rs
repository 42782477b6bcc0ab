//! Identity key files: where a server or proxy keeps its ed25519 secret between runs.
//!
//! The file is one line, `ed25519-secret:` followed by the 64 lowercase hex digits of the
//! 32-byte seed (a trailing newline is allowed). The prefix names the format so it can evolve.
//! On Unix the file must not be accessible to group or others; a new one is created with mode
//! 0600 from the start and moved into place atomically, so it is never briefly readable by
//! others nor seen half-written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::Error;
use crate::identity::{Identity, parse_lower_hex, random_bytes};

/// The versioned prefix of the one line of a key file.
pub const KEY_FILE_PREFIX: &str = "ed25519-secret:";

/// More than any valid key file holds; reading stops there so a wrong path (a log, a device)
/// cannot make us allocate without bound.
const MAX_KEY_FILE_LEN: u64 = 256;

impl Identity {
    /// Loads the identity in `path`, refusing a file that group or others can access or that
    /// is not exactly one key line.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let io_error = |source| Error::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        check_private(path, &file)?;
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE_LEN)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        let text = String::from_utf8(bytes).map_err(|_| malformed(path, "not UTF-8 text"))?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let hex = line.strip_prefix(KEY_FILE_PREFIX).ok_or_else(|| {
            malformed(
                path,
                &format!("expected a line starting {KEY_FILE_PREFIX:?}"),
            )
        })?;
        let seed = parse_lower_hex::<32>(hex).map_err(|reason| malformed(path, &reason))?;
        Ok(Self::from_seed(seed))
    }

    /// Loads the identity in `path`, or, if there is no file, generates one and writes it
    /// (creating parent directories, private on Unix).
    pub fn load_or_generate(path: &Path) -> Result<Self, Error> {
        match Self::load(path) {
            Err(Error::KeyFileIo { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                let identity = Self::generate()?;
                write_new(path, &identity).map_err(|source| Error::KeyFileIo {
                    path: path.to_owned(),
                    source,
                })?;
                Ok(identity)
            }
            loaded => loaded,
        }
    }
}

fn malformed(path: &Path, reason: &str) -> Error {
    Error::MalformedKeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Writes `identity` to a private temp file beside `path`, then renames it into place.
fn write_new(path: &Path, identity: &Identity) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dirs(dir)?;
    let suffix: [u8; 8] = random_bytes().map_err(io::Error::other)?;
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "key file path has no file name",
        )
    })?;
    let mut temp_name = name.to_owned();
    temp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let temp = dir.join(temp_name);
    let written = write_private(&temp, identity).and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_file(&temp);
    }
    written?;
    sync_dir(dir)
}

/// Creates `temp` (never an existing file or symlink) private from the start and writes the key
/// line durably.
fn write_private(temp: &Path, identity: &Identity) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(temp)?;
    writeln!(file, "{KEY_FILE_PREFIX}{}", hex::encode(identity.seed()))?;
    file.sync_all()
}

#[cfg(unix)]
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Makes the rename durable across a crash.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Refuses a key file whose mode grants group or others any access.
#[cfg(unix)]
fn check_private(path: &Path, file: &File) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = file.metadata().map_err(|source| Error::KeyFileIo {
        path: path.to_owned(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(malformed(path, "not a regular file"));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::InsecureKeyFile {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _file: &File) -> Result<(), Error> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn write_with_mode(path: &Path, contents: &str, mode: u32) {
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn generates_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/server.key");
        let created = Identity::load_or_generate(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        let reloaded = Identity::load_or_generate(&path).unwrap();
        assert_eq!(reloaded.public_key(), created.public_key());
        assert_eq!(
            Identity::load(&path).unwrap().public_key(),
            created.public_key()
        );
        // No temp file left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn file_is_one_prefixed_hex_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let identity = Identity::load_or_generate(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{KEY_FILE_PREFIX}{}\n", hex::encode(identity.seed()))
        );
    }

    #[test]
    fn reads_a_hand_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let seed = "11".repeat(32);
        write_with_mode(&path, &format!("{KEY_FILE_PREFIX}{seed}"), 0o400);
        let identity = Identity::load(&path).unwrap();
        assert_eq!(
            identity.public_key(),
            Identity::from_seed([0x11; 32]).public_key()
        );
    }

    #[test]
    fn refuses_group_or_world_access() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        Identity::load_or_generate(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let error = Identity::load_or_generate(&path).unwrap_err();
            assert!(matches!(error, Error::InsecureKeyFile { mode: m, .. } if m == mode));
            let message = error.to_string();
            assert!(message.contains("chmod 600"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }

    #[test]
    fn refuses_malformed_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let seed = "ab".repeat(32);
        let cases = [
            "garbage\n".to_owned(),
            String::new(),
            format!("{KEY_FILE_PREFIX}{}\n", &seed[..40]),
            format!("{KEY_FILE_PREFIX}{}\n", seed.to_uppercase()),
            format!("ed25519-seed:{seed}\n"),
            format!("{KEY_FILE_PREFIX}{seed}\n\n"),
            format!("{KEY_FILE_PREFIX}{seed}{}", "0".repeat(1000)),
        ];
        for contents in cases {
            write_with_mode(&path, &contents, 0o600);
            let error = Identity::load_or_generate(&path).unwrap_err();
            assert!(
                matches!(error, Error::MalformedKeyFile { .. }),
                "{contents:?}: {error}"
            );
            // A malformed file is never replaced by a fresh key.
            assert_eq!(fs::read_to_string(&path).unwrap(), contents);
        }
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            Identity::load(&path),
            Err(Error::MalformedKeyFile { .. })
        ));
    }

    #[test]
    fn load_requires_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        assert!(matches!(
            Identity::load(&path),
            Err(Error::KeyFileIo { .. })
        ));
        assert!(!path.exists());
    }

    #[test]
    fn refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(Identity::load(dir.path()).is_err());
    }
}
