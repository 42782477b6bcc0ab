//! The rot-proxy command line: its settings ([`Args`]) and the logging options every ROT
//! binary shares ([`rot_ops::LogArgs`]).

use rot_ops::{LogArgs, LogFormat};

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

impl Cli {
    /// The logging options, with the older `--log-json` / `ROT_PROXY_LOG_JSON` still meaning
    /// JSON lines.
    pub fn log(&self) -> LogArgs {
        let mut log = self.log.clone();
        if self.settings.log_json {
            log.log_format = LogFormat::Json;
        }
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

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

    #[test]
    fn the_older_json_flag_still_means_json() {
        let cli = Cli::try_parse_from(["rot-proxy", "--log-json"]).unwrap();
        assert_eq!(cli.log().log_format, LogFormat::Json);
        let cli = Cli::try_parse_from(["rot-proxy"]).unwrap();
        assert_eq!(cli.log().log_format, LogFormat::Text);
    }
}
