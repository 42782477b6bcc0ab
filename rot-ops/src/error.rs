//! The error of this crate: what can go wrong setting a binary up.

/// Why setting up logging, metrics or settings failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--log-filter` / `RUST_LOG` is not a valid filter.
    #[error("--log-filter / RUST_LOG {filter:?}: {reason}")]
    LogFilter {
        /// The filter as given.
        filter: String,
        /// What the parser said.
        reason: String,
    },
    /// A settings file could not be read or is not valid TOML of plain values.
    #[error("settings file: {0}")]
    SettingsFile(String),
    /// A setting's value is not one it accepts.
    #[error("{key}: {reason}")]
    Setting {
        /// The setting's environment name.
        key: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// Logging was already set up in this process.
    #[error("logging is already set up: {0}")]
    LoggingTwice(String),
}
