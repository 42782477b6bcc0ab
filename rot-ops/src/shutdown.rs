//! A clean shutdown: the first Ctrl-C or SIGTERM (what `docker stop` and systemd send)
//! cancels a token that the service's tasks watch.

use tokio_util::sync::CancellationToken;

/// Cancels `shutdown` on the first Ctrl-C or SIGTERM.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminated = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler; stop with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminated = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminated => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
