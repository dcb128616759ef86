//! Boxed pickers and savers behave as the concrete ones: batches stay batches,
//! error classes survive the box, releases reach the source, and metadata of
//! the wrong queue is refused instead of misread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use pjp_core::boxed::{AnyMeta, BoxError, BoxPicker, BoxSaver, ForeignMeta};
use pjp_core::memory::{MemoryQueue, QueueMeta};
use pjp_core::{
    ErrorClass, Executor, Job, JobContext, JobId, JobMeta, JobPicker, JobResult, JobRunner,
    JobSaver, Picked, ReleaseReason, SaveBatch, SaveResults, Shutdown,
};
use pjp_runtime_tokio::TokioRuntime;

struct Triple;

impl Executor for Triple {
    type Input = u64;
    type Output = u64;
    type Error = Infallible;

    fn execute(&self, n: u64, job: &JobContext) -> Result<u64, Infallible> {
        assert_eq!(job.id().get(), n, "the id survives the box");
        Ok(3 * n)
    }
}

/// Counts how many jobs each `save_many` call carried.
struct Batches<S> {
    inner: S,
    sizes: Mutex<Vec<usize>>,
}

impl<S: JobSaver> JobSaver for Batches<S> {
    type Output = S::Output;
    type Failure = S::Failure;
    type Metadata = S::Metadata;
    type Error = S::Error;

    async fn save(
        &self,
        result: &JobResult<S::Output, S::Failure>,
        meta: &S::Metadata,
    ) -> Result<(), S::Error> {
        self.sizes.lock().unwrap().push(1);
        self.inner.save(result, meta).await
    }

    async fn save_many(
        &self,
        batch: &SaveBatch<'_, S::Output, S::Failure, S::Metadata>,
    ) -> SaveResults<S::Error> {
        self.sizes.lock().unwrap().push(batch.len());
        self.inner.save_many(batch).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boxed_pipeline_saves_every_job_in_batches() -> anyhow::Result<()> {
    let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(0..500);
    let saver = std::sync::Arc::new(Batches {
        inner: queue.saver(),
        sizes: Mutex::new(Vec::new()),
    });
    let runner = JobRunner::builder(
        BoxPicker::new(queue.picker()),
        Triple,
        BoxSaver::new(std::sync::Arc::clone(&saver)),
    )
    .workers(2)
    .prefetch(32)
    .pick_batch(16)
    .save_batch(16)
    .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.counts.succeeded, 500);
    let mut saved: Vec<(u64, u64)> = queue
        .saved()
        .into_iter()
        .map(|s| (s.meta.id.get(), *s.result.as_ref().unwrap()))
        .collect();
    saved.sort_unstable();
    assert_eq!(saved, (0..500).map(|n| (n, 3 * n)).collect::<Vec<_>>());
    let sizes = saver.sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 500);
    assert!(
        sizes.iter().any(|&n| n > 1),
        "save_many went through the box as a batch: {sizes:?}"
    );
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("job {0} was taken over by another worker")]
struct TakenOver(u64);

/// A saver whose every write is fenced, like a lease that was lost.
struct Fenced;

impl JobSaver for Fenced {
    type Output = u64;
    type Failure = Infallible;
    type Metadata = QueueMeta;
    type Error = TakenOver;

    async fn save(
        &self,
        _: &JobResult<u64, Infallible>,
        meta: &QueueMeta,
    ) -> Result<(), TakenOver> {
        Err(TakenOver(meta.id.get()))
    }

    fn classify(&self, _: &TakenOver) -> ErrorClass {
        ErrorClass::LostClaim
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_class_survives_the_box() -> anyhow::Result<()> {
    let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(0..20);
    let runner = JobRunner::builder(
        BoxPicker::new(queue.picker()),
        Triple,
        BoxSaver::new(Fenced),
    )
    .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    // LostClaim: counted as fenced at once, never retried nor given up on.
    assert_eq!(report.counts.fenced, 20);
    assert!(report.save_gave_up.is_empty());

    let boxed = BoxSaver::new(Fenced);
    let meta = AnyMeta::new(QueueMeta {
        id: JobId::new(4),
        attempt: 1,
    });
    let error = boxed.save(&Ok(1), &meta).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::LostClaim);
    assert_eq!(boxed.classify(&error), ErrorClass::LostClaim);
    assert_eq!(error.to_string(), "job 4 was taken over by another worker");
    assert!(error.get_ref().downcast_ref::<TakenOver>().is_some());
    Ok(())
}

#[tokio::test]
async fn metadata_of_another_queue_is_refused_not_misread() {
    let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(0..1);
    let saver = BoxSaver::new(queue.saver());
    let picker = BoxPicker::new(queue.picker());
    let stranger = AnyMeta::new(JobId::new(0)); // a JobId, not a QueueMeta

    let error: BoxError = saver.save(&Ok(0), &stranger).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Permanent);
    let foreign = error.get_ref().downcast_ref::<ForeignMeta>().unwrap();
    assert_eq!((foreign.job, foreign.side), (JobId::new(0), "saver"));
    assert!(
        foreign.expected.ends_with("QueueMeta"),
        "{}",
        foreign.expected
    );
    assert!(error.to_string().contains("two queues mixed"), "{error}");
    assert_eq!(queue.saved_count(), 0);

    // In a batch, only the stranger fails; the real job is released.
    let Picked::Some(job) = picker.pick().await.unwrap() else {
        panic!("one job queued")
    };
    let outcomes = picker
        .release_many(vec![stranger, job.meta], ReleaseReason::Abandon)
        .await;
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        outcomes[0].as_ref().unwrap_err().class(),
        ErrorClass::Permanent
    );
    assert!(outcomes[1].is_ok());
    assert_eq!(queue.pending(), 1, "the real job went back");
}

/// A picker that answers `release_many` for fewer jobs than it was given.
struct ShortAnswers {
    released: AtomicUsize,
}

impl JobPicker for ShortAnswers {
    type Input = u64;
    type Metadata = JobId;
    type Error = std::io::Error;

    async fn pick(&self) -> Result<Picked<Job<u64, JobId>>, std::io::Error> {
        Ok(Picked::Exhausted)
    }

    async fn release(&self, _: JobId, _reason: ReleaseReason) -> Result<(), std::io::Error> {
        self.released.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn release_many(
        &self,
        metas: Vec<JobId>,
        _: ReleaseReason,
    ) -> Vec<Result<(), std::io::Error>> {
        metas.iter().skip(1).map(|_| Ok(())).collect()
    }
}

#[tokio::test]
async fn a_short_batch_answer_is_a_transient_error_for_the_unanswered_job() {
    let inner = std::sync::Arc::new(ShortAnswers {
        released: AtomicUsize::new(0),
    });
    let picker = BoxPicker::new(std::sync::Arc::clone(&inner));
    let metas = (0..3).map(|n| AnyMeta::new(JobId::new(n))).collect();
    let outcomes = picker.release_many(metas, ReleaseReason::Drain).await;
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok());
    let error = outcomes[2].as_ref().unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient);
    assert!(error.to_string().contains("job 2"), "{error}");
    // `release` reaches the concrete picker's own `release`.
    picker
        .release(AnyMeta::new(JobId::new(9)), ReleaseReason::Abandon)
        .await
        .unwrap();
    assert_eq!(inner.released.load(Ordering::Relaxed), 1);
}

/// A saver written for any queue's jobs.
#[derive(Default)]
struct AnyQueue(Mutex<Vec<JobId>>);

impl JobSaver for AnyQueue {
    type Output = u64;
    type Failure = Infallible;
    type Metadata = AnyMeta;
    type Error = Infallible;

    async fn save(&self, _: &JobResult<u64, Infallible>, meta: &AnyMeta) -> Result<(), Infallible> {
        self.0.lock().unwrap().push(meta.job_id());
        Ok(())
    }
}

#[tokio::test]
async fn a_saver_of_any_meta_takes_every_queues_jobs_once_boxed() -> anyhow::Result<()> {
    let queue: MemoryQueue<u64, u64> = MemoryQueue::closed_with(0..10);
    let saver = std::sync::Arc::new(AnyQueue::default());
    let runner = JobRunner::builder(
        BoxPicker::new(queue.picker()),
        Triple,
        BoxSaver::new(std::sync::Arc::clone(&saver)),
    )
    .build()?;
    let report = runner
        .run(&TokioRuntime::current(), Shutdown::new())
        .await?;
    assert_eq!(report.counts.succeeded, 10);
    let mut saved = saver.0.lock().unwrap().clone();
    saved.sort_unstable();
    assert_eq!(saved, (0..10).map(JobId::new).collect::<Vec<_>>());
    Ok(())
}
