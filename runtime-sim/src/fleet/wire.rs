//! The link between a node and the queue: latency both ways, cuts, and the
//! leases the node knows it holds.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pjp_core::memory::{QueueError, QueueMeta, QueuePicker, QueueSaver};
use pjp_core::{ErrorClass, Job, JobPicker, JobResult, JobSaver, Picked, ReleaseReason, Runtime};
use pjp_testkit::LatencyProfile;

use super::liveness::{Call, CallStats};
use crate::SimRuntime;

/// One cut: a region (`None`: every region), from, until, and whether
/// calls hang until it ends (packets dropped) rather than fail at once
/// (connections refused).
pub(crate) type Window = (Option<usize>, Duration, Duration, bool);

/// When each region is cut off from the queue.
#[derive(Debug, Default)]
pub(crate) struct Cuts {
    pub(crate) origin: Option<Instant>,
    pub(crate) windows: Vec<Window>,
}

impl Cuts {
    /// The cut `region` is under at `now`: when it ends, and whether calls
    /// hang.
    fn cut(&self, region: usize, now: Instant) -> Option<(Duration, bool)> {
        let origin = self.origin?;
        let at = now.saturating_duration_since(origin);
        self.windows
            .iter()
            .find(|&&(r, from, until, _)| r.is_none_or(|r| r == region) && from <= at && at < until)
            .map(|&(_, _, until, hang)| (until - at, hang))
    }
}

/// Why a call across the link failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// The request or its reply was lost: the link is down.
    #[error("the link to the queue is down")]
    Down,
    /// The queue refused the call.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Counters every node's link adds to.
#[derive(Debug, Default)]
pub(crate) struct WireStats {
    /// Saves the queue fenced: executions whose result was wasted.
    pub(crate) fenced: std::sync::atomic::AtomicU64,
    /// Statements that reached the queue, and heartbeat delays.
    pub(crate) calls: CallStats,
}

/// The claims a node's incarnation knows it holds (its heartbeat extends
/// them).
#[derive(Debug, Default)]
pub(crate) struct Held(Mutex<HashSet<QueueMeta>>);

impl Held {
    fn set(&self) -> MutexGuard<'_, HashSet<QueueMeta>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn snapshot(&self) -> Vec<QueueMeta> {
        let mut held: Vec<QueueMeta> = self.set().iter().copied().collect();
        held.sort_unstable_by_key(|m| (m.id, m.attempt));
        held
    }

    fn hold(&self, metas: impl IntoIterator<Item = QueueMeta>) {
        self.set().extend(metas);
    }

    fn forget(&self, meta: &QueueMeta) {
        self.set().remove(meta);
    }
}

/// One node's end of the link.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) runtime: SimRuntime,
    pub(crate) latency: LatencyProfile,
    pub(crate) region: usize,
    pub(crate) cuts: Arc<Cuts>,
    pub(crate) held: Arc<Held>,
    pub(crate) stats: Arc<WireStats>,
}

impl Link {
    /// Half the round trip out, the call, half back. A cut on either leg
    /// fails the call, or holds it until the link is back (then it goes on:
    /// a save sent into a dropped link lands when the link returns). A cut
    /// on the way back comes after the call took effect: the reply is lost.
    pub(crate) async fn call<O>(
        &self,
        call: Call,
        op: impl AsyncFnOnce() -> Result<O, QueueError>,
    ) -> Result<O, WireError> {
        let rtt = self.latency.sample(self.runtime.random_u64());
        let out = rtt / 2;
        if !out.is_zero() {
            self.runtime.sleep(out).await;
        }
        self.cross().await?;
        self.stats.calls.count(call);
        let result = op().await;
        let back = rtt - out;
        if !back.is_zero() {
            self.runtime.sleep(back).await;
        }
        self.cross().await?;
        Ok(result?)
    }

    /// Crosses the link now: fails, waits for it, or passes.
    async fn cross(&self) -> Result<(), WireError> {
        match self.cuts.cut(self.region, self.runtime.now()) {
            None => Ok(()),
            Some((_, false)) => Err(WireError::Down),
            Some((left, true)) => {
                self.runtime.sleep(left).await;
                Ok(())
            }
        }
    }
}

/// A queue half seen from a node, across its link.
pub(crate) struct Wire<T> {
    pub(crate) inner: T,
    pub(crate) link: Link,
}

type Input = u64;
type Output = u64;
type Failure = String;

fn class(error: &WireError) -> ErrorClass {
    match error {
        WireError::Down => ErrorClass::Transient,
        WireError::Queue(QueueError::Fenced { .. }) => ErrorClass::LostClaim,
        WireError::Queue(_) => ErrorClass::Permanent,
    }
}

impl JobPicker for Wire<QueuePicker<Input, Output, Failure>> {
    type Input = Input;
    type Metadata = QueueMeta;
    type Error = WireError;

    async fn pick(&self) -> Result<Picked<Job<Input, QueueMeta>>, WireError> {
        let picked = self
            .link
            .call(Call::Pick, async || self.inner.pick().await)
            .await?;
        if let Picked::Some(job) = &picked {
            self.link.held.hold([job.meta]);
        }
        Ok(picked)
    }

    async fn pick_many(&self, max: usize) -> Result<Picked<Vec<Job<Input, QueueMeta>>>, WireError> {
        let picked = self
            .link
            .call(Call::Pick, async || self.inner.pick_many(max).await)
            .await?;
        if let Picked::Some(jobs) = &picked {
            self.link.held.hold(jobs.iter().map(|j| j.meta));
        }
        Ok(picked)
    }

    async fn release(&self, meta: QueueMeta, reason: ReleaseReason) -> Result<(), WireError> {
        // Forgotten first: a release whose reply is lost leaves a claim the
        // node no longer heartbeats, so it expires and comes back.
        self.link.held.forget(&meta);
        self.link
            .call(Call::Release, async || {
                self.inner.release(meta, reason).await
            })
            .await
    }

    fn classify(&self, error: &WireError) -> ErrorClass {
        class(error)
    }
}

impl JobSaver for Wire<QueueSaver<Input, Output, Failure>> {
    type Output = Output;
    type Failure = Failure;
    type Metadata = QueueMeta;
    type Error = WireError;

    async fn save(
        &self,
        result: &JobResult<Output, Failure>,
        meta: &QueueMeta,
    ) -> Result<(), WireError> {
        let saved = self
            .link
            .call(Call::Save, async || self.inner.save(result, meta).await)
            .await;
        match &saved {
            Ok(()) => self.link.held.forget(meta),
            Err(WireError::Queue(QueueError::Fenced { .. })) => {
                self.link.held.forget(meta);
                self.link
                    .stats
                    .fenced
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(_) => {}
        }
        saved
    }

    fn classify(&self, error: &WireError) -> ErrorClass {
        class(error)
    }
}
