//! [`SimRuntime`]: [`Runtime`] on madsim.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use madsim::rand::{GlobalRng, RngCore};
use madsim::time::TimeHandle;
use pjp_core::{Runtime, TaskHandle, TaskPanicked};
use tokio::sync::Semaphore;

/// The simulated runtime: a handle to the current madsim simulation.
///
/// * **Tasks** are madsim tasks on the node that spawns them (so a node crash
///   kills a runner's tasks); a panicking task resolves its [`TaskHandle`] to
///   an error instead of aborting the simulation.
/// * **Blocking work** ([`run_blocking`](Runtime::run_blocking),
///   [`spawn_blocking`](Runtime::spawn_blocking)) takes one of the modeled
///   cores, sleeps its modeled cost (the executor's
///   [`cost_hint`](pjp_core::Executor::cost_hint)) with seeded jitter, then
///   runs the closure inline. Zero-cost work runs at once, without a core.
///   [`spawn_blocking`](Runtime::spawn_blocking) (the pool a job timeout
///   uses) runs its closure as soon as it has a core and then holds the core
///   for the modeled cost, as a real pool starts work at once. The runner
///   never drops it at a timeout: it saves the job as timed out and keeps the
///   worker until the work returns, as on tokio.
///   [`spawn_worker`](Runtime::spawn_worker) is an ordinary task.
/// * **Time** is madsim's virtual clock, sleeps are exact (madsim's own
///   `sleep` rounds up to 1 ms); **randomness** is madsim's seeded generator.
///
/// Clones share the cores and the busy-time counter.
#[derive(Clone)]
pub struct SimRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    time: TimeHandle,
    rng: GlobalRng,
    cores: Semaphore,
    core_count: usize,
    jitter: f64,
    busy_nanos: AtomicU64,
}

impl fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimRuntime")
            .field("cores", &self.inner.core_count)
            .field("jitter", &self.inner.jitter)
            .field("busy", &self.busy())
            .finish_non_exhaustive()
    }
}

/// [`SimRuntime::current`] was called outside a madsim simulation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SimRuntime needs a running madsim simulation (use `pjp_runtime_sim::simulate`)")]
#[non_exhaustive]
pub struct NotInSimulation;

/// Configures a [`SimRuntime`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct SimRuntimeBuilder {
    cores: usize,
    jitter: f64,
}

impl Default for SimRuntimeBuilder {
    fn default() -> Self {
        Self {
            cores: 8,
            jitter: 0.05,
        }
    }
}

impl SimRuntimeBuilder {
    /// Modeled cores for blocking work (at least 1). Default 8.
    pub fn cores(mut self, cores: usize) -> Self {
        self.cores = cores.max(1);
        self
    }

    /// The largest fraction by which a modeled cost is randomly stretched or
    /// shrunk, clamped to `0..=1`. Default 0.05 (±5 %).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// A runtime on the current simulation.
    pub fn build(self) -> Result<SimRuntime, NotInSimulation> {
        madsim::runtime::Handle::try_current().map_err(|_| NotInSimulation)?;
        let time = TimeHandle::try_current().ok_or(NotInSimulation)?;
        Ok(SimRuntime {
            inner: Arc::new(Inner {
                time,
                rng: madsim::rand::thread_rng(),
                cores: Semaphore::new(self.cores),
                core_count: self.cores,
                jitter: self.jitter,
                busy_nanos: AtomicU64::new(0),
            }),
        })
    }
}

impl SimRuntime {
    /// A runtime with default settings on the current simulation.
    pub fn current() -> Result<Self, NotInSimulation> {
        Self::builder().build()
    }

    /// Configures a runtime.
    pub fn builder() -> SimRuntimeBuilder {
        SimRuntimeBuilder::default()
    }

    /// Modeled cores.
    pub fn cores(&self) -> usize {
        self.inner.core_count
    }

    /// Modeled time spent on blocking work so far, over all cores (jitter
    /// included; work abandoned by a timeout counts up to where it stopped).
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.inner.busy_nanos.load(Ordering::Relaxed))
    }

    /// Virtual time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        self.inner.time.elapsed()
    }

    fn jittered(&self, cost: Duration) -> Duration {
        if self.inner.jitter == 0.0 {
            return cost;
        }
        let unit = pjp_core::random_fraction(self.random_u64());
        cost.mul_f64(1.0 + self.inner.jitter * (2.0 * unit - 1.0))
    }

    /// A sleep that ends exactly at `now + duration` (madsim's own rounds up
    /// to 1 ms), or `None` for zero.
    fn exact_sleep(&self, duration: Duration) -> Option<madsim::time::Sleep> {
        if duration.is_zero() {
            return None;
        }
        let time = &self.inner.time;
        let mut sleep = time.sleep(Duration::ZERO);
        Pin::new(&mut sleep).reset(time.now_instant() + duration);
        Some(sleep)
    }

    /// Takes a core and sleeps the jittered cost; the permit is the core.
    async fn occupy(&self, cost: Duration) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this never fails.
        let core = self.inner.cores.acquire().await.ok();
        self.spend(cost).await;
        core
    }

    /// Sleeps a jittered `cost`, counting it as busy core time.
    async fn spend(&self, cost: Duration) {
        let cost = self.jittered(cost);
        let started = self.inner.time.elapsed();
        let account = Account {
            runtime: self,
            started,
        };
        if let Some(sleep) = self.exact_sleep(cost) {
            sleep.await;
        }
        drop(account);
    }
}

/// Adds the time a core was busy to the counter, also when the work is
/// dropped half-way (a timeout).
struct Account<'a> {
    runtime: &'a SimRuntime,
    started: Duration,
}

impl Drop for Account<'_> {
    fn drop(&mut self) {
        let busy = self
            .runtime
            .inner
            .time
            .elapsed()
            .saturating_sub(self.started);
        self.runtime.inner.busy_nanos.fetch_add(
            u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

fn join_result<T>(
    joined: Result<std::thread::Result<T>, madsim::task::JoinError>,
) -> Result<T, TaskPanicked> {
    match joined {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(payload)) => Err(TaskPanicked::from_payload(payload.as_ref())),
        // Aborted, or its node was killed.
        Err(error) => Err(TaskPanicked {
            message: error.to_string(),
        }),
    }
}

impl Runtime for SimRuntime {
    fn spawn<F>(&self, future: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = madsim::task::spawn(AssertUnwindSafe(future).catch_unwind());
        TaskHandle::new(task.map(join_result))
    }

    fn spawn_worker<F>(&self, _name: &str, future: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(future)
    }

    async fn run_blocking<T, W>(&self, cost: Duration, work: W) -> T
    where
        W: FnOnce() -> T + Send,
        T: Send,
    {
        if cost.is_zero() {
            return work();
        }
        let _core = self.occupy(cost).await;
        work()
    }

    async fn spawn_blocking<T, W>(&self, cost: Duration, work: W) -> Result<T, TaskPanicked>
    where
        W: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let run = || {
            std::panic::catch_unwind(AssertUnwindSafe(work))
                .map_err(|payload| TaskPanicked::from_payload(payload.as_ref()))
        };
        if cost.is_zero() {
            return run();
        }
        // On a real pool the closure starts as soon as it has a thread, so a
        // timed-out job has begun before the runner moves on: run it when it
        // gets a core, and make its result wait out the modeled cost.
        let core = self.inner.cores.acquire().await.ok();
        let result = run();
        self.spend(cost).await;
        drop(core);
        result
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        let sleep = self.exact_sleep(duration);
        async move {
            if let Some(sleep) = sleep {
                sleep.await;
            }
        }
    }

    fn now(&self) -> Instant {
        self.inner.time.now_instant()
    }

    fn random_u64(&self) -> u64 {
        self.inner.rng.clone().next_u64()
    }
}
