//! rot-server binary: parse configuration, start logging, run the library.

use clap::Parser;
use mimalloc::MiMalloc;
use rot_server::config::{Args, Config};
use tokio_util::sync::CancellationToken;

/// mimalloc: indexing allocates and frees many small buffers (keys, records, maps) on
/// several threads, where the system allocator took about a fifth of the CPU. Without
/// transparent huge pages (feature `no_thp`): with them the kernel zeroed 2 MiB pages for
/// a sixth of the CPU and the peak RSS rose by about 80 MiB.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

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
