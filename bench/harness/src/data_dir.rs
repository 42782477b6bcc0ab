//! Where an in-process service of the harness keeps its data: a directory the test chose (to
//! restart a service on the same data) or a fresh temporary one removed with the service.

use std::path::PathBuf;

use crate::Error;

/// A service's data directory, and the temporary directory that owns it if the harness made
/// it (kept alive as long as the service).
pub(crate) fn data_dir_or_temp(
    chosen: Option<PathBuf>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), Error> {
    match chosen {
        Some(dir) => Ok((dir, None)),
        None => {
            let dir = tempfile::tempdir().map_err(|e| Error::Io {
                what: "creating a temp dir".into(),
                source: e,
            })?;
            Ok((dir.path().to_owned(), Some(dir)))
        }
    }
}

/// Binds a service's listener on `addr`.
pub(crate) async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io {
            what: format!("binding a listener on {addr}"),
            source: e,
        })
}
