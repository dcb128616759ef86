//! The fault-injecting wrappers.

use std::time::{Duration, Instant};

use pjp_core::{
    ErrorClass, Executor, JobContext, JobPicker, JobResult, JobSaver, PickManyResult, PickResult,
    ReleaseReason, Runtime, SaveBatch, SaveResults,
};

use super::{ExecFault, ExecFaults, FaultError, IoFaults, unit};

/// A picker or saver that fails per an [`IoFaults`] plan.
///
/// Build it with `with_faults` from [`PickerExt`](crate::PickerExt) or
/// [`SaverExt`](crate::SaverExt). A failing call fails *before* reaching the
/// wrapped component (the request never arrived), so a failed save stored
/// nothing and a failed pick claimed nothing. Outage windows count from the
/// wrapper's creation.
#[derive(Debug, Clone)]
pub struct Faulty<T, R> {
    inner: T,
    runtime: R,
    faults: IoFaults,
    epoch: Instant,
}

impl<T, R: Runtime> Faulty<T, R> {
    /// Wraps `inner`.
    pub fn new(inner: T, runtime: &R, faults: IoFaults) -> Self {
        Self {
            inner,
            epoch: runtime.now(),
            runtime: runtime.clone(),
            faults,
        }
    }

    /// The wrapped component.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The plan.
    pub fn faults(&self) -> &IoFaults {
        &self.faults
    }

    fn fault<E>(&self) -> Option<FaultError<E>> {
        if self.faults.is_none() {
            return None;
        }
        let at = self.runtime.now().saturating_duration_since(self.epoch);
        if self.faults.in_outage(at) {
            return Some(FaultError::Outage);
        }
        (self.faults.error_rate > 0.0 && unit(self.runtime.random_u64()) < self.faults.error_rate)
            .then_some(FaultError::Injected)
    }

    /// One injected fault for a whole batch (a batch statement fails whole),
    /// repeated for each of its `n` jobs.
    fn batch_fault<E>(&self, n: usize) -> Option<Vec<Result<(), FaultError<E>>>> {
        let fault = self.fault::<E>()?;
        let outage = matches!(fault, FaultError::Outage);
        Some(
            (0..n)
                .map(|_| {
                    Err(if outage {
                        FaultError::Outage
                    } else {
                        FaultError::Injected
                    })
                })
                .collect(),
        )
    }
}

impl<P: JobPicker, R: Runtime> JobPicker for Faulty<P, R> {
    type Input = P::Input;
    type Metadata = P::Metadata;
    type Error = FaultError<P::Error>;

    /// # Cancellation safety
    ///
    /// As the wrapped picker's.
    async fn pick(&self) -> PickResult<P::Input, P::Metadata, Self::Error> {
        if let Some(fault) = self.fault() {
            return Err(fault);
        }
        self.inner.pick().await.map_err(FaultError::Inner)
    }

    async fn pick_many(&self, max: usize) -> PickManyResult<P::Input, P::Metadata, Self::Error> {
        if let Some(fault) = self.fault() {
            return Err(fault);
        }
        self.inner.pick_many(max).await.map_err(FaultError::Inner)
    }

    async fn release(&self, meta: P::Metadata, reason: ReleaseReason) -> Result<(), Self::Error> {
        if self.faults.releases
            && let Some(fault) = self.fault()
        {
            return Err(fault);
        }
        self.inner
            .release(meta, reason)
            .await
            .map_err(FaultError::Inner)
    }

    async fn release_many(
        &self,
        metas: Vec<P::Metadata>,
        reason: ReleaseReason,
    ) -> Vec<Result<(), Self::Error>> {
        if self.faults.releases
            && let Some(faults) = self.batch_fault(metas.len())
        {
            return faults;
        }
        let outcomes = self.inner.release_many(metas, reason).await;
        outcomes
            .into_iter()
            .map(|o| o.map_err(FaultError::Inner))
            .collect()
    }

    async fn on_abandon(&self) {
        self.inner.on_abandon().await;
    }

    fn classify(&self, error: &Self::Error) -> ErrorClass {
        match error {
            FaultError::Inner(e) => self.inner.classify(e),
            FaultError::Injected | FaultError::Outage => ErrorClass::Transient,
        }
    }

    fn pick_is_cancel_safe(&self) -> bool {
        self.inner.pick_is_cancel_safe()
    }
}

impl<S: JobSaver, R: Runtime> JobSaver for Faulty<S, R> {
    type Output = S::Output;
    type Failure = S::Failure;
    type Metadata = S::Metadata;
    type Error = FaultError<S::Error>;

    async fn save(
        &self,
        result: &JobResult<S::Output, S::Failure>,
        meta: &S::Metadata,
    ) -> Result<(), Self::Error> {
        if let Some(fault) = self.fault() {
            return Err(fault);
        }
        self.inner
            .save(result, meta)
            .await
            .map_err(FaultError::Inner)
    }

    async fn save_many(
        &self,
        batch: &SaveBatch<'_, S::Output, S::Failure, S::Metadata>,
    ) -> SaveResults<Self::Error> {
        if let Some(faults) = self.batch_fault(batch.len()) {
            return faults;
        }
        let outcomes = self.inner.save_many(batch).await;
        outcomes
            .into_iter()
            .map(|o| o.map_err(FaultError::Inner))
            .collect()
    }

    fn classify(&self, error: &Self::Error) -> ErrorClass {
        match error {
            FaultError::Inner(e) => self.inner.classify(e),
            FaultError::Injected | FaultError::Outage => ErrorClass::Transient,
        }
    }
}

/// An executor that fails, panics or straggles per an [`ExecFaults`] plan.
///
/// Build it with [`ExecutorExt::with_faults`](crate::ExecutorExt::with_faults).
/// Randomness comes from the runtime (drawn on the worker, in execution
/// order under simulation).
#[derive(Debug, Clone)]
pub struct FaultyExecutor<E, R> {
    inner: E,
    runtime: R,
    faults: ExecFaults,
}

impl<E, R: Runtime> FaultyExecutor<E, R> {
    /// Wraps `inner`.
    pub fn new(inner: E, runtime: &R, faults: ExecFaults) -> Self {
        Self {
            inner,
            runtime: runtime.clone(),
            faults,
        }
    }

    /// The wrapped executor.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: Executor, R: Runtime> Executor for FaultyExecutor<E, R> {
    type Input = E::Input;
    type Output = E::Output;
    type Error = ExecFault<E::Error>;

    /// Executes, unless the plan injects a failure or a panic.
    ///
    /// # Panics
    ///
    /// With probability `panic_rate`, deliberately: the runner saves the job
    /// as panicked.
    fn execute(&self, input: E::Input, job: &JobContext) -> Result<E::Output, Self::Error> {
        let f = &self.faults;
        if f.panic_rate > 0.0 || f.error_rate > 0.0 {
            let draw = unit(self.runtime.random_u64());
            if draw < f.panic_rate {
                panic!("injected panic in job {}", job.id());
            }
            if draw < f.panic_rate + f.error_rate {
                return Err(ExecFault::Injected);
            }
        }
        self.inner.execute(input, job).map_err(ExecFault::Inner)
    }

    fn cost_hint(&self, input: &E::Input) -> Duration {
        let cost = self.inner.cost_hint(input);
        let (rate, factor) = (self.faults.straggler_rate, self.faults.straggler_factor);
        if rate > 0.0 && unit(self.runtime.random_u64()) < rate {
            cost.saturating_mul(factor)
        } else {
            cost
        }
    }
}
