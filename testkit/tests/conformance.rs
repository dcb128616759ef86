//! The conformance suite passes correct components and catches broken ones.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pjp_core::{
    Executor, Job, JobContext, JobId, JobPicker, JobResult, JobSaver, Picked, ReleaseReason,
};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::broken::{DroppingSaver, DuplicatingPicker, SwallowReleases};
use pjp_testkit::conformance::{self, Check};
use pjp_testkit::{LatencyProfile, MemoryQueue, PickerExt, QueueMeta, Workload};

type Queue = MemoryQueue<u64, u64, String>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A correct picker over a list.
struct ListPicker(Mutex<VecDeque<u64>>);

impl JobPicker for ListPicker {
    type Input = u64;
    type Metadata = JobId;
    type Error = std::io::Error;

    async fn pick(&self) -> Result<Picked<Job<u64, JobId>>, Self::Error> {
        Ok(match lock(&self.0).pop_front() {
            Some(n) => Picked::Some(Job::new(n, JobId::new(n))),
            None => Picked::Exhausted,
        })
    }

    async fn release(&self, meta: JobId, _reason: ReleaseReason) -> Result<(), Self::Error> {
        lock(&self.0).push_back(meta.get());
        Ok(())
    }
}

/// A picker that claims a job, then waits a round trip before returning it:
/// dropping the pick in between loses the job.
struct ClaimThenWait(Queue, TokioRuntime);

impl JobPicker for ClaimThenWait {
    type Input = u64;
    type Metadata = QueueMeta;
    type Error = pjp_testkit::QueueError;

    async fn pick(&self) -> Result<Picked<Job<u64, QueueMeta>>, Self::Error> {
        let picked = self.0.picker().pick().await;
        pjp_core::Runtime::sleep(&self.1, Duration::from_millis(1)).await;
        picked
    }

    async fn release(&self, meta: QueueMeta, reason: ReleaseReason) -> Result<(), Self::Error> {
        self.0.picker().release(meta, reason).await
    }
}

/// An idempotent saver: an upsert keyed by job id.
#[derive(Default, Clone)]
struct Table(Arc<Mutex<HashMap<JobId, Result<u64, String>>>>);

impl JobSaver for Table {
    type Output = u64;
    type Failure = String;
    type Metadata = JobId;
    type Error = std::io::Error;

    async fn save(&self, result: &JobResult<u64, String>, meta: &JobId) -> Result<(), Self::Error> {
        lock(&self.0).insert(*meta, result.clone().map_err(|e| e.to_string()));
        Ok(())
    }
}

async fn rows(table: &Table, job: JobId) -> usize {
    usize::from(lock(&table.0).contains_key(&job))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_pickers_pass() -> anyhow::Result<()> {
    let rt = TokioRuntime::current();
    let report =
        conformance::check_picker(&rt, async |n| ListPicker(Mutex::new((0..n).collect()))).await?;
    assert_eq!(report.passed.len(), 5);
    conformance::check_picker(&rt, async |n| Queue::closed_with(0..n).picker()).await?;
    // Latency before the claim keeps a dropped pick harmless.
    let latent = rt.clone();
    conformance::check_picker(&rt, async |n| {
        Queue::closed_with(0..n)
            .picker()
            .with_latency(&latent, LatencyProfile::fixed(Duration::from_millis(1)))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_pickers_fail() {
    let rt = TokioRuntime::current();
    let duplicating = conformance::check_picker(&rt, async |n| {
        DuplicatingPicker::new(Queue::closed_with(0..n).picker(), 5)
    })
    .await
    .expect_err("a picker handing jobs out twice must fail");
    assert!(duplicating.failed(Check::EachJobOnce), "{duplicating}");

    let swallowing = conformance::check_picker(&rt, async |n| {
        SwallowReleases(Queue::closed_with(0..n).picker())
    })
    .await
    .expect_err("a picker ignoring releases must fail");
    assert_eq!(
        swallowing
            .failures
            .iter()
            .map(|f| f.check)
            .collect::<Vec<_>>(),
        vec![Check::ReleaseHandsBack],
        "{swallowing}"
    );

    let dropping = rt.clone();
    let not_cancel_safe = conformance::check_picker(&rt, async |n| {
        ClaimThenWait(Queue::closed_with(0..n), dropping.clone())
    })
    .await
    .expect_err("a picker that claims before its last await must fail");
    assert_eq!(
        not_cancel_safe
            .failures
            .iter()
            .map(|f| f.check)
            .collect::<Vec<_>>(),
        vec![Check::DroppedPickClaimsNothing],
        "{not_cancel_safe}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savers_are_checked_for_storage_and_idempotency() -> anyhow::Result<()> {
    let rt = TokioRuntime::current();
    let report = conformance::check_saver(
        &rt,
        async || Table::default(),
        |n| (JobId::new(n), n * 10),
        async |table: &Table, job| rows(table, job).await,
    )
    .await?;
    assert_eq!(report.passed.len(), 3);

    // A saver that drops every 4th result, read through the table behind it.
    let table = Table::default();
    let behind = table.clone();
    let dropping = conformance::check_saver(
        &rt,
        async || {
            lock(&table.0).clear();
            DroppingSaver::new(table.clone(), 4)
        },
        |n| (JobId::new(n), n),
        async |_saver: &DroppingSaver<Table>, job| rows(&behind, job).await,
    )
    .await
    .expect_err("a saver that drops results must fail");
    assert!(dropping.failed(Check::StoresEachResult), "{dropping}");
    assert!(dropping.failed(Check::ConcurrentSaves), "{dropping}");

    // The in-memory queue stores every save (to expose runners that save
    // twice), so it is not idempotent: the suite says so.
    let shared: Arc<Mutex<Option<Queue>>> = Arc::default();
    let make_shared = Arc::clone(&shared);
    let read_shared = Arc::clone(&shared);
    let not_idempotent = conformance::check_saver(
        &rt,
        async move || {
            let queue = Queue::closed_with(0..300);
            *lock(&make_shared) = Some(queue.clone());
            queue.saver()
        },
        |n| {
            (
                QueueMeta {
                    id: JobId::new(n),
                    attempt: 0,
                },
                n,
            )
        },
        async move |_saver, job| {
            lock(&read_shared)
                .as_ref()
                .map_or(0, |q| q.saved().iter().filter(|s| s.meta.id == job).count())
        },
    )
    .await
    .expect_err("a saver that stores every retry must fail idempotency");
    assert_eq!(
        not_idempotent
            .failures
            .iter()
            .map(|f| f.check)
            .collect::<Vec<_>>(),
        vec![Check::IdempotentSave],
        "{not_idempotent}"
    );
    Ok(())
}

/// Answers differently each call.
struct Counter(AtomicU64);

impl Executor for Counter {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        if input == 3 {
            panic!("cannot handle 3");
        }
        Ok(input + self.0.fetch_add(1, Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_are_checked_for_determinism_and_panics() -> anyhow::Result<()> {
    let rt = TokioRuntime::current();
    let jobs = |n: u64| {
        (0..n)
            .map(|i| Job::new(i, JobId::new(i)))
            .collect::<Vec<_>>()
    };
    let report = conformance::check_executor(&rt, Workload::noop(), jobs(8)).await?;
    assert_eq!(report.passed.len(), 3);

    let broken = conformance::check_executor(&rt, Counter(AtomicU64::new(0)), jobs(6))
        .await
        .expect_err("a stateful, panicking executor must fail");
    assert!(broken.failed(Check::Deterministic), "{broken}");
    assert!(broken.failed(Check::NoPanics), "{broken}");
    Ok(())
}

/// The dropped-pick check drops at the dangerous moment when told the round
/// trip: after a remote claim was made, before its reply arrived. A queue
/// without leases then loses the job, and the check says so. (Paused tokio
/// time: the order of the claim and the drop is fixed, not raced.)
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_pick_dropped_between_claim_and_reply_is_caught() {
    let rt = TokioRuntime::current();
    let round_trip = LatencyProfile::fixed(Duration::from_millis(20));
    let options = conformance::PickerOptions::default().drop_after(Duration::from_millis(15));
    let failed = conformance::check_picker_with(&rt, options, async |n| {
        Queue::closed_with(0..n)
            .picker()
            .with_latency(&rt, round_trip.clone())
    })
    .await
    .expect_err("a claim made before the reply and then dropped is lost");
    assert!(failed.failed(Check::DroppedPickClaimsNothing), "{failed}");

    // Dropped after its first poll (before the request arrived), the same
    // picker claims nothing: the check passes.
    let report = conformance::check_picker(&rt, async |n| {
        Queue::closed_with(0..n)
            .picker()
            .with_latency(&rt, round_trip.clone())
    })
    .await;
    assert!(report.is_ok(), "{report:?}");
}
