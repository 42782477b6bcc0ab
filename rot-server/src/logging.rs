//! Logging and signal handling for the binary: human-readable logs on a terminal, JSON
//! lines when asked (for log collectors), and a clean shutdown on Ctrl-C or SIGTERM.

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Starts the tracing subscriber; `RUST_LOG` overrides the default `info` level.
pub fn init(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sled=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init()
    } else {
        builder.init()
    }
}

/// Cancels `shutdown` on the first Ctrl-C or SIGTERM.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    #[cfg(unix)]
    let terminated = term.recv();
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminated => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
