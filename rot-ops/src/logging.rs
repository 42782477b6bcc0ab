//! The logging options every ROT binary takes, and the tracing subscriber they set up: text
//! for people (coloured when stderr is a terminal) or one JSON object per line for log
//! collectors. Logs go to stderr, so a tool's stdout stays its answer.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::Error;

/// Environment variable choosing the log format.
pub const FORMAT_ENV: &str = "ROT_LOG_FORMAT";
/// Environment variable choosing which log lines are kept (tracing's usual name).
pub const FILTER_ENV: &str = "RUST_LOG";
/// Default filter of long-running services: their own news, not sled's chatter.
pub const SERVICE_FILTER: &str = "info,sled=warn";
/// Default filter of command-line tools: only what went wrong, so their output stays clean.
pub const TOOL_FILTER: &str = "warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The logging options, flattened into each binary's command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Log format: text (human-readable, coloured on a terminal) or json (one object per
    /// line, for log collectors).
    #[arg(
        long,
        env = FORMAT_ENV,
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
    /// Which log lines to keep, as tracing filter directives, e.g. debug or
    /// info,rot_server=debug [default: info,sled=warn for services, warn for tools].
    #[arg(long, env = FILTER_ENV, global = true)]
    pub log_filter: Option<String>,
}

impl LogArgs {
    /// Installs the process's tracing subscriber, keeping `default_filter` (e.g.
    /// [`SERVICE_FILTER`]) unless `--log-filter` / `RUST_LOG` says otherwise.
    pub fn init(&self, default_filter: &str) -> Result<(), Error> {
        let filter_text = self.log_filter.as_deref().unwrap_or(default_filter);
        let filter = EnvFilter::try_new(filter_text).map_err(|e| Error::LogFilter {
            filter: filter_text.to_owned(),
            reason: e.to_string(),
        })?;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let installed = match self.log_format {
            LogFormat::Text => builder
                .with_ansi(std::io::stderr().is_terminal())
                .try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
        installed.map_err(|e| Error::LoggingTwice(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }

    #[test]
    fn format_and_filter_come_from_flags() {
        let cli =
            Cli::try_parse_from(["x", "--log-format", "json", "--log-filter", "debug"]).unwrap();
        assert_eq!(cli.log.log_format, LogFormat::Json);
        assert_eq!(cli.log.log_filter.as_deref(), Some("debug"));
        assert!(Cli::try_parse_from(["x", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn help_names_the_environment_and_the_choices() {
        let help = Cli::command().render_long_help().to_string();
        for needle in [FORMAT_ENV, FILTER_ENV, "json", "text", "[default: text]"] {
            assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
        }
    }

    #[test]
    fn a_bad_filter_is_named() {
        let args = LogArgs {
            log_filter: Some("rot=loud".into()),
            ..LogArgs::default()
        };
        let err = args.init(TOOL_FILTER).unwrap_err().to_string();
        assert!(err.contains("rot=loud"), "{err}");
    }
}
