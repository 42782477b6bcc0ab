//! rot-server binary: parse configuration, start logging, run the library.

use clap::Parser;
use rot_server::config::{Args, Config};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.log.init(rot_ops::logging::SERVICE_FILTER)?;
    let map = args.to_map()?;
    let config = Config::from_map(&map)?;
    tracing::info!(?config, "effective configuration");
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(rot_ops::shutdown::cancel_on_signal(shutdown.clone()));
    rot_server::server::run(config, listener, shutdown).await?;
    Ok(())
}
