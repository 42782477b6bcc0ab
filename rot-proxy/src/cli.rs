//! The rot-proxy command line: its settings ([`Args`]) and the logging options every ROT
//! binary shares ([`rot_ops::LogArgs`]).

use rot_ops::LogArgs;

use crate::config::Args;

/// Everything `rot-proxy` accepts on its command line or in its environment.
#[derive(Debug, clap::Parser)]
#[command(
    name = "rot-proxy",
    version,
    about = "ROT proxy: a directory of rot-servers per coin, registered by signed heartbeats"
)]
pub struct Cli {
    /// The proxy's settings.
    #[command(flatten)]
    pub settings: Args,
    /// Logging: format and filter.
    #[command(flatten)]
    pub log: LogArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_names_the_logging_options_and_the_version() {
        let command = Cli::command();
        assert_eq!(command.get_name(), "rot-proxy");
        assert_eq!(command.get_version(), Some(env!("CARGO_PKG_VERSION")));
        let help = Cli::command().render_long_help().to_string();
        for name in ["ROT_LOG_FORMAT", "RUST_LOG", "ROT_PROXY_COINS"] {
            assert!(help.contains(name), "--help lacks {name}");
        }
    }
}
