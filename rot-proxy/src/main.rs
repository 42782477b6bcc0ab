//! rot-proxy binary: parse configuration, start logging, run the library until Ctrl-C or
//! SIGTERM.

use clap::Parser;
use mimalloc::MiMalloc;
use rot_proxy::cli::Cli;
use rot_proxy::config::Config;
use tokio_util::sync::CancellationToken;

/// mimalloc: the relay allocates and frees small buffers per request from every thread,
/// where it is markedly cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init(rot_ops::logging::SERVICE_FILTER)?;
    let config = Config::from_map(&cli.settings.to_map()?)?;
    let listener = rot_ops::serve::bind(config.listen)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(rot_ops::shutdown::cancel_on_signal(shutdown.clone()));
    rot_proxy::server::run(config, listener, shutdown).await?;
    Ok(())
}
