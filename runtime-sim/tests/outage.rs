//! Faults that only simulated time can show cheaply: a saver's backend down for
//! a minute under the *default* retry policy, a timed-out blocking job that
//! keeps its worker (modeled as it runs on tokio), and a slow saver that
//! holds the workers back.

#![cfg(madsim)]

use std::time::{Duration, Instant};

use pjp_core::{
    Executor, JobContext, JobResult, JobRunner, JobSaver, Runtime, Shutdown, StopReason,
};
use pjp_runtime_sim::{SimConfig, SimRuntime, simulate};
use pjp_testkit::{MemoryQueue, QueueError, QueueMeta, QueueSaver};

type Queue = MemoryQueue<u64, u64, String>;

struct Double;

impl Executor for Double {
    type Input = u64;
    type Output = u64;
    type Error = String;

    fn execute(&self, input: u64, _job: &JobContext) -> Result<u64, String> {
        Ok(input * 2)
    }

    fn cost_hint(&self, input: &u64) -> Duration {
        // Job 0 hangs far past any timeout; the others take 1 ms.
        if *input == 0 {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(1)
        }
    }
}

/// A saver whose backend is down until `up_at`: every save fails transiently.
struct DownUntil {
    inner: QueueSaver<u64, u64, String>,
    runtime: SimRuntime,
    up_at: Instant,
}

impl JobSaver for DownUntil {
    type Output = u64;
    type Failure = String;
    type Metadata = QueueMeta;
    type Error = QueueError;

    async fn save(
        &self,
        result: &JobResult<u64, String>,
        meta: &QueueMeta,
    ) -> Result<(), QueueError> {
        if self.runtime.now() < self.up_at {
            // What a client sees while a database restarts.
            return Err(QueueError::UnknownJob(meta.id));
        }
        self.inner.save(result, meta).await
    }
}

fn runtime() -> SimRuntime {
    SimRuntime::builder()
        .cores(2)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Two cores, no cost jitter: a job costs exactly its cost hint.
fn exact_runtime() -> SimRuntime {
    SimRuntime::builder()
        .cores(2)
        .jitter(0.0)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_default_save_retry_rides_out_a_minute_long_outage() {
    for seed in 0..20 {
        let (report, saved, pending) = simulate(seed, SimConfig::default(), move || async move {
            let rt = runtime();
            let queue = Queue::closed_with(1..=50);
            let saver = DownUntil {
                inner: queue.saver(),
                runtime: rt.clone(),
                up_at: rt.now() + Duration::from_secs(60),
            };
            // The default policy, not a tuned one.
            let runner = JobRunner::builder(queue.picker(), Double, saver)
                .workers(2)
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            let report = runner
                .run(&rt, Shutdown::new())
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            (report, queue.saved_count(), queue.pending())
        });
        assert_eq!(report.stop, StopReason::Exhausted, "seed {seed}");
        assert_eq!(report.counts.succeeded, 50, "seed {seed}: {report:?}");
        assert!(report.save_gave_up.is_empty(), "seed {seed}: {report:?}");
        assert!(report.released.is_empty(), "seed {seed}: {report:?}");
        assert!(report.counts.save_retries > 0);
        assert!(report.elapsed >= Duration::from_secs(60));
        assert_eq!((saved, pending), (50, 0));
    }
}

#[test]
fn a_timed_out_blocking_job_keeps_its_worker_in_simulation_too() {
    let report = simulate(3, SimConfig::default(), || async {
        // The hung job costs exactly 5 s.
        let rt = exact_runtime();
        let queue = Queue::closed_with(0..3);
        let runner = JobRunner::builder(queue.picker(), Double, queue.saver())
            .workers(1)
            .job_timeout(Duration::from_millis(10))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runner
            .run(&rt, Shutdown::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    assert_eq!((report.counts.timed_out, report.counts.succeeded), (1, 2));
    assert_eq!(report.counts.stragglers, 1);
    // The one worker was held for the hung job's whole cost before it ran the
    // others: the closure really ran, as on tokio.
    assert!(report.elapsed >= Duration::from_secs(5), "{report:?}");
}

#[test]
fn a_worker_waiting_for_a_slow_saver_is_not_busy() {
    let report = simulate(4, SimConfig::default(), || async {
        let rt = exact_runtime();
        let queue = Queue::closed_with(1..=20);
        // 50 ms a save, one at a time: the workers (1 ms a job) spend the
        // run holding a finished result until the saver has room.
        let slow = pjp_core::latency::Latent::new(
            queue.saver(),
            &rt,
            pjp_core::latency::LatencyProfile::fixed(Duration::from_millis(50)),
        );
        let runner = JobRunner::builder(queue.picker(), Double, slow)
            .workers(2)
            .savers(1)
            .save_queue(1)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runner
            .run(&rt, Shutdown::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    assert_eq!(report.counts.succeeded, 20);
    assert!(report.elapsed >= Duration::from_millis(950), "{report:?}");
    // Busy is the 20 executions (1 ms each), not the waits: the saver is the
    // bottleneck and the report says so.
    assert!(report.busy < Duration::from_millis(40), "{report:?}");
    assert!(report.utilisation() < 0.05, "{report:?}");
}
