//! [`Shutdown`]: graceful cancellation in two steps, drain then abandon.

use tokio_util::sync::CancellationToken;

/// Tells runners to stop: first to *drain*, then to *abandon*.
///
/// * **Drain** (the first [`signal`](Self::signal), or [`drain`](Self::drain)):
///   picking stops at once, also in the middle of a back-off sleep; every job
///   already picked is executed and saved; the runner's future then resolves.
/// * **Abandon** (a second signal, [`abandon`](Self::abandon), or the runner's
///   grace period running out): jobs picked but not started are released back to
///   their picker and listed in the report; running jobs finish (or time out)
///   and are saved.
///
/// Clones share state. Wire `SIGTERM`/`SIGINT` to [`signal`](Self::signal), as
/// `pjp_runtime_tokio::shutdown_on_signals` does.
///
/// ```
/// use pjp_core::Shutdown;
///
/// let shutdown = Shutdown::new();
/// assert!(!shutdown.is_draining());
/// shutdown.signal();
/// assert!(shutdown.is_draining() && !shutdown.is_abandoned());
/// shutdown.signal();
/// assert!(shutdown.is_abandoned());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    drain: CancellationToken,
    abandon: CancellationToken,
}

impl Shutdown {
    /// A shutdown that has not been signalled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drains on `token`'s cancellation; abandon still needs [`abandon`](Self::abandon)
    /// or the grace period.
    pub fn from_token(token: CancellationToken) -> Self {
        Self {
            drain: token,
            abandon: CancellationToken::new(),
        }
    }

    /// A shutdown for a downstream stage fed by a stage channel: it follows this
    /// one's abandon, but does not drain on this one's drain. A downstream runner
    /// drains when its upstream closes the channel, so the jobs the upstream
    /// still saves into the channel are executed rather than stranded.
    pub fn downstream(&self) -> Self {
        Self {
            drain: self.abandon.child_token(),
            abandon: self.abandon.child_token(),
        }
    }

    /// The first call drains, any later call abandons.
    pub fn signal(&self) {
        if self.drain.is_cancelled() {
            self.abandon();
        } else {
            self.drain();
        }
    }

    /// Stops picking and drains.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Releases unstarted jobs and finishes (implies drain).
    pub fn abandon(&self) {
        self.drain.cancel();
        self.abandon.cancel();
    }

    /// Whether draining (or abandoning) has begun.
    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled() || self.abandon.is_cancelled()
    }

    /// Whether abandoning has begun.
    pub fn is_abandoned(&self) -> bool {
        self.abandon.is_cancelled()
    }

    /// Resolves once draining (or abandoning) has begun.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe.
    pub async fn draining(&self) {
        tokio::select! {
            biased;
            () = self.drain.cancelled() => {}
            () = self.abandon.cancelled() => {}
        }
    }

    /// Resolves once abandoning has begun.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe.
    pub async fn abandoned(&self) {
        self.abandon.cancelled().await;
    }
}

impl From<CancellationToken> for Shutdown {
    fn from(token: CancellationToken) -> Self {
        Self::from_token(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downstream_follows_abandon_not_drain() {
        let up = Shutdown::new();
        let down = up.downstream();
        up.drain();
        assert!(!down.is_draining());
        up.abandon();
        assert!(down.is_draining() && down.is_abandoned());
    }

    #[test]
    fn token_cancel_drains() {
        let token = CancellationToken::new();
        let shutdown = Shutdown::from(token.clone());
        token.cancel();
        assert!(shutdown.is_draining() && !shutdown.is_abandoned());
    }
}
