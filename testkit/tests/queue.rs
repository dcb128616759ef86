//! The in-memory queue: leases expire and are handed out again, stale claims
//! are fenced, and repeated saves by the saving attempt are idempotent.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pjp_core::{
    ErrorClass, JobId, JobPicker, JobSaver, Picked, ReleaseReason, Runtime, TaskHandle,
    TaskPanicked,
};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::{MemoryQueue, QueueError, QueueMeta};

/// Tokio, with a clock the test moves by hand.
#[derive(Clone)]
struct ManualClock {
    tokio: TokioRuntime,
    now: Arc<Mutex<Instant>>,
}

impl ManualClock {
    fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Runtime for ManualClock {
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> TaskHandle {
        self.tokio.spawn(future)
    }

    fn spawn_worker<F: Future<Output = ()> + Send + 'static>(
        &self,
        name: &str,
        future: F,
    ) -> TaskHandle {
        self.tokio.spawn_worker(name, future)
    }

    fn run_blocking<T: Send, W: FnOnce() -> T + Send>(
        &self,
        cost: Duration,
        work: W,
    ) -> impl Future<Output = T> + Send {
        self.tokio.run_blocking(cost, work)
    }

    fn spawn_blocking<T: Send + 'static, W: FnOnce() -> T + Send + 'static>(
        &self,
        cost: Duration,
        work: W,
    ) -> impl Future<Output = Result<T, TaskPanicked>> + Send {
        self.tokio.spawn_blocking(cost, work)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        self.tokio.sleep(duration)
    }

    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn random_u64(&self) -> u64 {
        self.tokio.random_u64()
    }
}

type Queue = MemoryQueue<u64, u64, String>;

fn job<T>(picked: Picked<T>) -> T {
    match picked {
        Picked::Some(job) => job,
        Picked::Empty => panic!("expected a job, the queue is empty"),
        Picked::Exhausted => panic!("expected a job, the queue is exhausted"),
    }
}

#[tokio::test]
async fn expired_leases_are_handed_out_again_and_stale_claims_fenced() -> anyhow::Result<()> {
    let clock = ManualClock {
        tokio: TokioRuntime::current(),
        now: Arc::new(Mutex::new(Instant::now())),
    };
    let queue = Queue::closed_with([10, 11]);
    queue.set_lease(&clock, Duration::from_secs(5));
    let (picker, saver) = (queue.picker(), queue.saver());

    let first = job(picker.pick().await?);
    assert_eq!(first.meta.attempt, 1);
    let other = job(picker.pick().await?);
    saver.save(&Ok(11), &other.meta).await?;
    // The first claim is outstanding: a closed queue is not exhausted yet.
    assert_eq!(picker.pick().await?, Picked::Empty);

    clock.advance(Duration::from_secs(6));
    let again = job(picker.pick().await?);
    assert_eq!(
        again.meta,
        QueueMeta {
            id: first.meta.id,
            attempt: 2
        }
    );
    assert_eq!(queue.reclaimed(), 1);

    // The expired claim can neither fail nor release: its failure is fenced,
    // its release hands nothing back (the job is the new claim's). (Its
    // success would be accepted late: `MemoryQueue::set_late_results`.)
    let stale = QueueError::Fenced {
        job: first.meta.id,
        attempt: 1,
    };
    let failed = Err(pjp_core::ExecError::Failed("stale".to_owned()));
    assert_eq!(saver.save(&failed, &first.meta).await, Err(stale));
    assert_eq!(
        picker.release(first.meta, ReleaseReason::Abandon).await,
        Ok(())
    );
    assert_eq!(
        queue.claimed(),
        1,
        "the stale release left the new claim alone"
    );
    assert_eq!(
        picker.classify(&QueueError::UnknownJob(JobId::new(9))),
        ErrorClass::Permanent
    );
    let fenced = QueueError::Fenced {
        job: first.meta.id,
        attempt: 1,
    };
    assert_eq!(saver.classify(&fenced), ErrorClass::LostClaim);

    saver.save(&Ok(10), &again.meta).await?;
    // A retried save of the same attempt is idempotent.
    saver.save(&Ok(10), &again.meta).await?;
    assert_eq!(queue.saved_count(), 2);
    assert_eq!(picker.pick().await?, Picked::Exhausted);
    assert_eq!(queue.claimed(), 0);
    Ok(())
}

#[tokio::test]
async fn without_leases_the_queue_keeps_its_old_behaviour() -> anyhow::Result<()> {
    let queue = Queue::closed_with([1, 2, 3]);
    let (picker, saver) = (queue.picker(), queue.saver());
    let a = job(picker.pick().await?);
    picker.release(a.meta, ReleaseReason::Abandon).await?;
    let again = job(picker.pick().await?);
    assert_eq!((again.meta.id, again.meta.attempt), (a.meta.id, 2));
    // Every save is stored, so a runner that saves twice shows up.
    saver.save(&Ok(2), &again.meta).await?;
    saver.save(&Ok(2), &again.meta).await?;
    assert_eq!(queue.saved_count(), 2);
    assert_eq!(queue.pick_counts(), vec![2, 0, 0]);
    assert_eq!(
        picker
            .release(
                QueueMeta {
                    id: JobId::new(7),
                    attempt: 1
                },
                ReleaseReason::Abandon
            )
            .await,
        Err(QueueError::UnknownJob(JobId::new(7)))
    );
    Ok(())
}
