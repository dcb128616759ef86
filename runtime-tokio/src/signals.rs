//! `SIGTERM`/`SIGINT` → [`Shutdown`].

use pjp_core::Shutdown;

/// Spawns a task that signals `shutdown` on each `SIGTERM` or `SIGINT` (Ctrl-C):
/// the first drains, the second abandons. The task ends after abandoning.
///
/// Must be called inside a tokio runtime with signal handling available (Unix).
/// Returns the task's handle; dropping it leaves the task running.
pub fn shutdown_on_signals(shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sigterm = match terminate_stream() {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C will shut down");
                None
            }
        };
        loop {
            let which = tokio::select! {
                biased;
                result = tokio::signal::ctrl_c() => match result {
                    Ok(()) => "SIGINT",
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for SIGINT");
                        std::future::pending::<()>().await;
                        continue;
                    }
                },
                () = recv_terminate(&mut sigterm) => "SIGTERM",
            };
            shutdown.signal();
            if shutdown.is_abandoned() {
                tracing::warn!(signal = which, "second signal: abandoning unstarted jobs");
                break;
            }
            tracing::info!(
                signal = which,
                "draining: no new jobs; finishing picked ones (signal again to abandon)"
            );
        }
    })
}

#[cfg(unix)]
type Terminate = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Terminate = ();

#[cfg(unix)]
fn terminate_stream() -> std::io::Result<Terminate> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
}

#[cfg(not(unix))]
fn terminate_stream() -> std::io::Result<Terminate> {
    Err(std::io::Error::other("SIGTERM is Unix-only"))
}

#[cfg(unix)]
async fn recv_terminate(stream: &mut Option<Terminate>) {
    match stream {
        Some(stream) => {
            if stream.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv_terminate(_stream: &mut Option<Terminate>) {
    std::future::pending().await
}
