//! [`TokioRuntime`]: [`Runtime`] on tokio with dedicated worker threads.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pjp_core::{Runtime, TaskHandle, TaskPanicked};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The production runtime: a handle to a tokio runtime.
///
/// The tokio runtime needs the `time` driver enabled (`#[tokio::main]` and
/// `Builder::enable_all` do that).
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The runtime the caller runs on.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`Handle::current`]. Use
    /// [`try_current`](Self::try_current) to get an error instead.
    #[allow(clippy::expect_used)]
    pub fn current() -> Self {
        Self::try_current().expect("TokioRuntime::current called outside a tokio runtime")
    }

    /// The runtime the caller runs on, or an error outside one.
    pub fn try_current() -> Result<Self, tokio::runtime::TryCurrentError> {
        Handle::try_current().map(Self::from_handle)
    }

    /// Wraps a handle.
    pub fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }

    /// The tokio handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

fn caught(result: std::thread::Result<()>) -> Result<(), TaskPanicked> {
    result.map_err(|payload| TaskPanicked::from_payload(payload.as_ref()))
}

impl Runtime for TokioRuntime {
    fn spawn<F>(&self, future: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = self
            .handle
            .spawn(AssertUnwindSafe(future).catch_unwind().map(caught));
        TaskHandle::new(task.map(|joined| match joined {
            Ok(result) => result,
            Err(error) => Err(TaskPanicked {
                message: error.to_string(),
            }),
        }))
    }

    fn spawn_worker<F>(&self, name: &str, future: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel();
        let handle = self.handle.clone();
        let body = move || {
            // Entered so that tokio types (timers, I/O) used by the worker's
            // future find their driver.
            let _context = handle.enter();
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                futures_executor::block_on(future);
            }));
            let _ = done_tx.send(caught(result));
        };
        match std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(body)
        {
            Ok(_detached) => TaskHandle::new(done_rx.map(|r| {
                r.unwrap_or_else(|_| {
                    Err(TaskPanicked {
                        message: "worker thread ended without reporting".to_owned(),
                    })
                })
            })),
            Err(error) => {
                let message = format!("could not spawn worker thread: {error}");
                TaskHandle::new(async move { Err(TaskPanicked { message }) })
            }
        }
    }

    fn run_blocking<T, W>(&self, _cost: Duration, work: W) -> impl Future<Output = T> + Send
    where
        W: FnOnce() -> T + Send,
        T: Send,
    {
        // Called from a dedicated worker thread: running inline is the point.
        std::future::ready(work())
    }

    fn spawn_blocking<T, W>(
        &self,
        _cost: Duration,
        work: W,
    ) -> impl Future<Output = Result<T, TaskPanicked>> + Send
    where
        W: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn_blocking(work).map(|joined| {
            joined.map_err(|error| match error.try_into_panic() {
                Ok(payload) => TaskPanicked::from_payload(payload.as_ref()),
                Err(error) => TaskPanicked {
                    message: error.to_string(),
                },
            })
        })
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        let _context = self.handle.enter();
        tokio::time::sleep(duration)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn random_u64(&self) -> u64 {
        fastrand::u64(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn worker_runs_on_its_own_named_thread() -> anyhow::Result<()> {
        let rt = TokioRuntime::current();
        let (tx, rx) = oneshot::channel();
        let rt2 = rt.clone();
        rt.spawn_worker("pjp-test-worker", async move {
            let name = rt2
                .run_blocking(Duration::ZERO, || {
                    std::thread::current().name().map(str::to_owned)
                })
                .await;
            // A tokio timer works inside the worker.
            rt2.sleep(Duration::from_millis(1)).await;
            let _ = tx.send(name);
        })
        .await?;
        assert_eq!(rx.await?.as_deref(), Some("pjp-test-worker"));
        Ok(())
    }

    #[tokio::test]
    async fn panics_become_errors() {
        let rt = TokioRuntime::current();
        let task = rt.spawn(async { panic!("boom") }).await;
        assert_eq!(task.map_err(|e| e.message), Err("boom".to_owned()));
        let worker = rt.spawn_worker("w", async { panic!("bang") }).await;
        assert_eq!(worker.map_err(|e| e.message), Err("bang".to_owned()));
        let blocking = rt
            .spawn_blocking(Duration::ZERO, || -> u8 { panic!("crash") })
            .await;
        assert_eq!(blocking.map_err(|e| e.message), Err("crash".to_owned()));
    }
}
