//! The [`JobPicker`] trait: where jobs come from.

use std::future::Future;

use crate::{Job, JobMeta};

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
/// use pjp_core::{Job, JobId, JobPicker, Picked};
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
///     async fn release(&self, meta: JobId) -> Result<(), Self::Error> {
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
    /// # Cancellation safety
    ///
    /// When shutdown begins the runner drops an unfinished `pick` future. A
    /// picker must then either not have claimed a job (a claim in a transaction
    /// that rolls back on drop), or let the claim expire (a lease). A pick that
    /// has completed is never dropped: its job is executed and saved.
    fn pick(
        &self,
    ) -> impl Future<Output = PickResult<Self::Input, Self::Metadata, Self::Error>> + Send;

    /// Claims up to `max` jobs in one round trip. The default calls [`pick`](Self::pick)
    /// once; database pickers override it to claim a batch per query.
    ///
    /// Returning more than `max` jobs is allowed but holds more jobs than the
    /// runner's prefetch bound promises. `Picked::Some` must not hold an empty batch.
    ///
    /// # Cancellation safety
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
    /// worker (or a later run) can take it. Called on abandon for every job the
    /// runner had picked but not started, and for a job whose save gave up.
    fn release(&self, meta: Self::Metadata)
    -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Called once when a run abandons, after picking has stopped: release any
    /// jobs the picker buffered on its own side (a stage channel's queue), so
    /// that they are not stranded. Defaults to nothing, which is right for
    /// pickers that hold no jobs between picks.
    fn on_abandon(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Whether a pick error is transient (the runner backs off and retries) or
    /// fatal (the runner stops picking, drains, and reports it). Defaults to
    /// transient.
    fn is_retryable(&self, error: &Self::Error) -> bool {
        let _ = error;
        true
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
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).release(meta)
    }

    fn on_abandon(&self) -> impl Future<Output = ()> + Send {
        (**self).on_abandon()
    }

    fn is_retryable(&self, error: &Self::Error) -> bool {
        (**self).is_retryable(error)
    }
}
