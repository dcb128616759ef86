//! Semantic 4: cancellation drains; a second signal or the grace period abandons,
//! releasing exactly the unstarted jobs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Doubler, Gated, Queue};
use pjp_core::{BackoffPolicy, JobId, JobRunner, Shutdown, StopReason};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::wait::{eventually, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_saves_every_picked_job_and_stops_picking() -> anyhow::Result<()> {
    // An open queue never runs dry by itself: only the drain ends the run.
    let queue = Queue::new();
    queue.extend(0..10_000);
    let executor = Doubler {
        sleep: Duration::from_micros(200),
        ..Doubler::default()
    };
    let runner = Arc::new(
        JobRunner::builder(queue.picker(), executor, queue.saver())
            .workers(2)
            .prefetch(16)
            .build()?,
    );
    let shutdown = Shutdown::new();
    let run = tokio::spawn({
        let (runner, shutdown) = (Arc::clone(&runner), shutdown.clone());
        async move { runner.run(&TokioRuntime::current(), shutdown).await }
    });
    let progress = runner.progress();
    eventually("some jobs saved", || {
        progress.snapshot().counts.saved() >= 50
    })
    .await;
    shutdown.signal();
    let report = within("drain", run).await??;
    assert_eq!(report.stop, StopReason::Drained);
    assert!(report.released.is_empty());
    assert_eq!(report.counts.picked, report.saved(), "{report:?}");
    assert!(
        report.counts.picked < 10_000,
        "picking went on after the drain"
    );
    // Saved and still-pending jobs partition the queue.
    let mut ids: Vec<u64> = queue.saved().iter().map(|s| s.meta.id.get()).collect();
    ids.extend(queue.pending_ids().iter().map(|id| id.get()));
    ids.sort_unstable();
    assert_eq!(ids, (0..10_000).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_releases_exactly_the_unstarted_jobs() -> anyhow::Result<()> {
    let queue = Queue::new();
    queue.extend(0..100);
    let gate = Arc::new(Gated::default());
    let runner = JobRunner::builder(queue.picker(), Arc::clone(&gate), queue.saver())
        .workers(2)
        .prefetch(5)
        .build()?;
    let shutdown = Shutdown::new();
    let runner = Arc::new(runner);
    let run = tokio::spawn({
        let (runner, shutdown) = (Arc::clone(&runner), shutdown.clone());
        async move { runner.run(&TokioRuntime::current(), shutdown).await }
    });
    // Two jobs run (blocked), five wait in the prefetch buffer.
    gate.wait_started(2).await;
    let progress = runner.progress();
    eventually("prefetch full", || progress.snapshot().counts.picked == 7).await;
    shutdown.signal();
    shutdown.signal();
    eventually("unstarted jobs released", || {
        progress.snapshot().counts.released == 5
    })
    .await;
    gate.open();
    let report = within("abandon", run).await??;
    assert_eq!(report.stop, StopReason::Abandoned);
    let started = gate.started();
    assert_eq!(started.len(), 2, "released jobs must not run");
    let mut released: Vec<u64> = report.released.iter().map(|id| id.get()).collect();
    released.sort_unstable();
    let expected: Vec<u64> = (0..7).filter(|n| !started.contains(n)).collect();
    assert_eq!(released, expected);
    // The running jobs finished and were saved; the released ones are back in the queue.
    assert_eq!(report.counts.succeeded, 2);
    assert_eq!(report.unaccounted(), 0);
    assert_eq!(queue.pending(), 100 - 2);
    for id in &report.released {
        assert!(queue.pending_ids().contains(id));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_turns_drain_into_abandon() -> anyhow::Result<()> {
    let queue = Queue::new();
    queue.extend(0..20);
    let gate = Arc::new(Gated::default());
    let runner = Arc::new(
        JobRunner::builder(queue.picker(), Arc::clone(&gate), queue.saver())
            .workers(1)
            .prefetch(3)
            .grace_period(Duration::from_millis(20))
            .build()?,
    );
    let shutdown = Shutdown::new();
    let run = tokio::spawn({
        let (runner, shutdown) = (Arc::clone(&runner), shutdown.clone());
        async move { runner.run(&TokioRuntime::current(), shutdown).await }
    });
    gate.wait_started(1).await;
    let progress = runner.progress();
    eventually("prefetch full", || progress.snapshot().counts.picked == 4).await;
    shutdown.drain();
    // Only the grace period can abandon now: no second signal comes.
    eventually("grace period released the queued jobs", || {
        progress.snapshot().counts.released == 3
    })
    .await;
    gate.open();
    let report = within("run after grace", run).await??;
    assert_eq!(report.stop, StopReason::Abandoned);
    assert_eq!(
        report.released,
        vec![JobId::new(1), JobId::new(2), JobId::new(3)]
    );
    assert_eq!(report.counts.succeeded, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_interrupts_a_long_back_off() -> anyhow::Result<()> {
    // An empty, open queue: the picker backs off for an hour.
    let queue = Queue::new();
    let picker = common::Observed::new(queue.picker());
    let picks = Arc::clone(&picker.picks);
    let runner = Arc::new(
        JobRunner::builder(picker, Doubler::default(), queue.saver())
            .empty_backoff(BackoffPolicy::new(
                Duration::from_secs(3600),
                Duration::from_secs(3600),
            ))
            .build()?,
    );
    let shutdown = Shutdown::new();
    let run = tokio::spawn({
        let (runner, shutdown) = (Arc::clone(&runner), shutdown.clone());
        async move { runner.run(&TokioRuntime::current(), shutdown).await }
    });
    // The first pick found nothing: the picker is now in its hour-long back-off.
    eventually("the first pick", || {
        picks.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    assert!(!run.is_finished());
    shutdown.signal();
    let report = within("cancel during back-off", run).await??;
    assert_eq!(
        (report.counts.picked, report.stop),
        (0, StopReason::Drained)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_runner_can_run_again() -> anyhow::Result<()> {
    let queue = Queue::new();
    queue.extend(0..10);
    let runner = JobRunner::builder(queue.picker(), Doubler::default(), queue.saver()).build()?;
    let rt = TokioRuntime::current();
    let shutdown = Shutdown::new();
    shutdown.drain();
    let first = runner.run(&rt, shutdown).await?;
    assert_eq!(
        first.counts.picked, 0,
        "a run that starts drained picks nothing"
    );
    queue.close();
    let second = runner.run(&rt, Shutdown::new()).await?;
    assert_eq!(
        (second.counts.picked, second.counts.succeeded, second.stop),
        (10, 10, StopReason::Exhausted)
    );
    Ok(())
}
