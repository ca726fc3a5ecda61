//! Shutdown signals: Ctrl-C (SIGINT) and SIGTERM. Handlers are installed when the listener is
//! created, before the server reports itself ready, so an early SIGTERM is never missed.

/// Waits for SIGINT or SIGTERM.
pub(crate) struct ShutdownSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Installs the handlers.
    pub(crate) fn install() -> std::io::Result<Self> {
        Ok(ShutdownSignal {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    /// Resolves at the first signal.
    pub(crate) async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
