//! The [`JobPicker`] trait: where jobs come from.

use std::future::Future;

use crate::{ErrorClass, Job, JobMeta, ReleaseReason};

/// What one pick found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked<T> {
    /// One job (from `pick`) or a non-empty batch (from `pick_many`).
    Some(T),
    /// Nothing to do right now; the runner backs off and asks again.
    Empty,
    /// The source is closed and drained: no job will ever come. The runner stops
    /// picking and finishes once the jobs it holds are saved.
    Exhausted,
}

impl<T> Picked<T> {
    /// Maps the picked value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Picked<U> {
        match self {
            Self::Some(t) => Picked::Some(f(t)),
            Self::Empty => Picked::Empty,
            Self::Exhausted => Picked::Exhausted,
        }
    }
}

/// What [`JobPicker::pick`] resolves to.
pub type PickResult<I, M, E> = Result<Picked<Job<I, M>>, E>;

/// What [`JobPicker::pick_many`] resolves to.
pub type PickManyResult<I, M, E> = Result<Picked<Vec<Job<I, M>>>, E>;

/// Hands out jobs: from a database queue, an object store, a stage channel.
///
/// Methods take `&self`: the runner may run several picks at once (see
/// [`RunnerBuilder::pickers`](crate::RunnerBuilder::pickers)) to hide round-trip
/// latency, so implementations share state behind a pool or a lock.
///
/// ```
/// use std::collections::VecDeque;
/// use std::sync::Mutex;
/// use pjp_core::{Job, JobId, JobPicker, Picked, ReleaseReason};
///
/// struct Numbers(Mutex<VecDeque<u64>>);
///
/// impl JobPicker for Numbers {
///     type Input = u64;
///     type Metadata = JobId;
///     type Error = std::io::Error;
///
///     async fn pick(&self) -> Result<Picked<Job<u64, JobId>>, Self::Error> {
///         let mut queue = self.0.lock().unwrap();
///         Ok(match queue.pop_front() {
///             Some(n) => Picked::Some(Job::new(n, JobId::new(n))),
///             None => Picked::Exhausted,
///         })
///     }
///
///     async fn release(&self, meta: JobId, _reason: ReleaseReason) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().push_front(meta.get());
///         Ok(())
///     }
/// }
/// ```
pub trait JobPicker: Send + Sync + 'static {
    /// The executor's input.
    type Input: Send + 'static;
    /// The job's metadata.
    type Metadata: JobMeta;
    /// Why a pick or release failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Claims one job.
    ///
    /// # In flight at shutdown
    ///
    /// A drain lets a pick in flight finish and executes the jobs it returns
    /// (with a database, the claim may have committed before the reply came
    /// back). An abandon waits for it too, and releases what it returns. So a
    /// pick should return within a bounded time (one round trip, or a long
    /// poll with a timeout). A picker whose pick may wait indefinitely and
    /// claims nothing until it returns says so with
    /// [`pick_is_cancel_safe`](Self::pick_is_cancel_safe); the runner then
    /// drops an unfinished pick on shutdown instead of waiting.
    ///
    /// A run future that is itself dropped drops its picks: then a picker must
    /// either not have claimed the job (a claim in a transaction that rolls back
    /// on drop) or let the claim expire (a lease).
    fn pick(
        &self,
    ) -> impl Future<Output = PickResult<Self::Input, Self::Metadata, Self::Error>> + Send;

    /// Claims up to `max` jobs in one round trip. The default calls [`pick`](Self::pick)
    /// once; database pickers override it to claim a batch per query.
    ///
    /// A batch of more than `max` jobs is accepted, but the extra jobs wait in
    /// the picker task until the prefetch bound has room for them, so the bound
    /// holds. An empty `Picked::Some` counts as `Picked::Empty`.
    ///
    /// # In flight at shutdown
    ///
    /// As for [`pick`](Self::pick).
    fn pick_many(
        &self,
        max: usize,
    ) -> impl Future<Output = PickManyResult<Self::Input, Self::Metadata, Self::Error>> + Send {
        let _ = max;
        async move { Ok(self.pick().await?.map(|job| vec![job])) }
    }

    /// Hands a claimed but unexecuted job back to the source, so that another
    /// worker (or a later run) can take it, saying why. Called on abandon for
    /// every job the runner had picked but not started, and for a job whose
    /// save gave up. A durable queue reads the reason, so that a release on
    /// abandon or shutdown burns no attempt and a job whose saves gave up
    /// keeps a record of it; a simple source may ignore it.
    fn release(
        &self,
        meta: Self::Metadata,
        reason: ReleaseReason,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Hands a batch of jobs back in one round trip where the backend allows
    /// (one statement releasing every lease). Resolves to one outcome per job,
    /// in order; the runner retries the ones that failed transiently one by
    /// one. The runner calls it on abandon, for the jobs queued unstarted. The
    /// default calls [`release`](Self::release) for each.
    fn release_many(
        &self,
        metas: Vec<Self::Metadata>,
        reason: ReleaseReason,
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(metas.len());
            for meta in metas {
                outcomes.push(self.release(meta, reason).await);
            }
            outcomes
        }
    }

    /// Called once when a run abandons, after picking has stopped, and at the
    /// end of a run that stopped picking before its source was exhausted:
    /// release any jobs the picker buffered on its own side (a stage channel's
    /// queue), so that they are not stranded. Defaults to nothing, which is
    /// right for pickers that hold no jobs between picks.
    fn on_abandon(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// What an error of [`pick`](Self::pick) or [`release`](Self::release)
    /// means: [`ErrorClass::Transient`] backs off and retries; any other class
    /// stops picking (for a release: gives up on it, and the job is listed in
    /// the report's `release_failed`). The one way a picker says what its
    /// errors mean; a wrapper forwards it. Defaults to transient.
    fn classify(&self, error: &Self::Error) -> ErrorClass {
        let _ = error;
        ErrorClass::Transient
    }

    /// Whether dropping an unfinished pick is harmless: it claims nothing until
    /// it returns (an in-process channel). The runner then drops a pick that is
    /// waiting when a drain begins, rather than waiting for it. Defaults to
    /// false.
    fn pick_is_cancel_safe(&self) -> bool {
        false
    }
}

impl<P: JobPicker + ?Sized> JobPicker for std::sync::Arc<P> {
    type Input = P::Input;
    type Metadata = P::Metadata;
    type Error = P::Error;

    fn pick(
        &self,
    ) -> impl Future<Output = PickResult<Self::Input, Self::Metadata, Self::Error>> + Send {
        (**self).pick()
    }

    fn pick_many(
        &self,
        max: usize,
    ) -> impl Future<Output = PickManyResult<Self::Input, Self::Metadata, Self::Error>> + Send {
        (**self).pick_many(max)
    }

    fn release(
        &self,
        meta: Self::Metadata,
        reason: ReleaseReason,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).release(meta, reason)
    }

    fn release_many(
        &self,
        metas: Vec<Self::Metadata>,
        reason: ReleaseReason,
    ) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send {
        (**self).release_many(metas, reason)
    }

    fn on_abandon(&self) -> impl Future<Output = ()> + Send {
        (**self).on_abandon()
    }

    fn classify(&self, error: &Self::Error) -> ErrorClass {
        (**self).classify(error)
    }

    fn pick_is_cancel_safe(&self) -> bool {
        (**self).pick_is_cancel_safe()
    }
}
