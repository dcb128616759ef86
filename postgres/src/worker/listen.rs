//! The notification listener: one connection per worker process, waking the
//! pickers of the queue a producer enqueued to.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::state::{Counters, Wakeups};

/// The listener's task. Notifications are hints: a listener that cannot
/// connect or loses its connection only costs latency, because idle pickers
/// poll every poll interval anyway. After a reconnect every queue is woken,
/// since notifications sent meanwhile are lost.
pub(crate) async fn listen(
    pool: PgPool,
    channel: String,
    wakeups: Arc<Wakeups>,
    counters: Arc<Counters>,
    listening: tokio::sync::watch::Sender<bool>,
) {
    {
        let mut delay = Duration::from_millis(100);
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::debug!(%error, "notification listener cannot connect; polling meanwhile");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if let Err(error) = listener.listen(&channel).await {
                tracing::debug!(%error, "LISTEN failed; polling meanwhile");
                tokio::time::sleep(delay).await;
                continue;
            }
            delay = Duration::from_millis(100);
            listening.send_replace(true);
            wakeups.wake_all();
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        Counters::add(&counters.notifications, 1);
                        wakeups.wake(notification.payload());
                    }
                    // The connection was lost and is being reopened.
                    Ok(None) => wakeups.wake_all(),
                    Err(error) => {
                        listening.send_replace(false);
                        tracing::debug!(%error, "notification listener lost its connection");
                        break;
                    }
                }
            }
        }
    }
}
