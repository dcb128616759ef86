//! Stage channels: runner A feeds runner B; when A finishes, B drains and finishes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Doubler, Gated, Queue};
use pjp_core::{JobPicker, JobRunner, Picked, Shutdown, StopReason, stage};
use pjp_runtime_tokio::TokioRuntime;
use pjp_testkit::QueueMeta;
use pjp_testkit::wait::{eventually, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_exhaustion_finishes_downstream() -> anyhow::Result<()> {
    let source = Queue::closed_with(1..=200);
    let failures = Queue::new();
    let sink = Queue::new();
    let origin = Arc::new(source.picker());
    let (tx, rx) = stage::channel(4, Arc::clone(&origin));
    let a = JobRunner::builder(
        origin,
        Doubler {
            fail_every: Some(10),
            ..Doubler::default()
        },
        tx.on_failure(failures.saver()),
    )
    .stage("a")
    .workers(2)
    .build()?;
    let b = JobRunner::builder(rx, Doubler::default(), sink.saver())
        .stage("b")
        .workers(2)
        .build()?;
    let rt = TokioRuntime::current();
    let shutdown = Shutdown::new();
    let run_a = a.into_run(&rt, shutdown.clone());
    let (ra, rb) = within("pipeline", async {
        tokio::join!(run_a, b.run(&rt, shutdown.downstream()))
    })
    .await;
    let (ra, rb) = (ra?, rb?);
    assert_eq!(
        (ra.stop, rb.stop),
        (StopReason::Exhausted, StopReason::Exhausted)
    );
    assert_eq!((ra.counts.succeeded, ra.counts.failed), (180, 20));
    assert_eq!((rb.counts.picked, rb.counts.succeeded), (180, 180));
    assert_eq!(
        failures.saved_count(),
        20,
        "A's failures went to the failure saver"
    );
    for saved in sink.saved() {
        // Metadata passes through: B's job id is the source job's id.
        let input = saved.meta.id.get() + 1;
        assert_eq!(saved.result, Ok(input * 4));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_flows_downstream_without_stranding_jobs() -> anyhow::Result<()> {
    let source = Queue::new();
    source.extend(0..100_000);
    let sink = Queue::new();
    let origin = Arc::new(source.picker());
    let (tx, rx) = stage::channel(8, Arc::clone(&origin));
    let a = JobRunner::builder(origin, Doubler::default(), tx.on_failure(sink.saver()))
        .stage("a")
        .workers(1)
        .build()?;
    let b = JobRunner::builder(
        rx,
        Doubler {
            sleep: Duration::from_micros(100),
            ..Doubler::default()
        },
        sink.saver(),
    )
    .stage("b")
    .build()?;
    let progress = b.progress();
    let rt = TokioRuntime::current();
    let shutdown = Shutdown::new();
    let run_a = a.into_run(&rt, shutdown.clone());
    let stop = async {
        eventually("B saved some", || progress.snapshot().counts.saved() > 100).await;
        shutdown.signal();
    };
    let (ra, rb, ()) = within("drain", async {
        tokio::join!(run_a, b.run(&rt, shutdown.downstream()), stop)
    })
    .await;
    let (ra, rb) = (ra?, rb?);
    assert_eq!(ra.stop, StopReason::Drained);
    // B is not told to drain: it finishes because A closed the channel.
    assert_eq!(rb.stop, StopReason::Exhausted);
    assert_eq!(
        rb.counts.picked, ra.counts.succeeded,
        "every job A passed on reached B"
    );
    assert_eq!(rb.saved(), rb.counts.picked);
    assert_eq!(sink.saved_count() as u64, ra.counts.picked);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_abandon_releases_to_the_upstream_picker() -> anyhow::Result<()> {
    let source = Queue::new();
    source.extend(0..50);
    let origin = Arc::new(source.picker());
    let sink = Queue::new();
    let (tx, rx) = stage::channel(4, Arc::clone(&origin));
    let a = JobRunner::builder(
        Arc::clone(&origin),
        Doubler::default(),
        tx.on_failure(sink.saver()),
    )
    .stage("a")
    .build()?;
    let gate = Arc::new(Gated::default());
    let b = JobRunner::builder(rx, Arc::clone(&gate), sink.saver())
        .stage("b")
        .prefetch(3)
        .build()?;
    let rt = TokioRuntime::current();
    let shutdown = Shutdown::new();
    let run_a = a.into_run(&rt, shutdown.clone());
    let stop = async {
        gate.wait_started(1).await;
        let progress = b.progress();
        eventually("B's prefetch full", || {
            progress.snapshot().counts.picked == 4
        })
        .await;
        shutdown.signal();
        shutdown.signal();
        eventually("B released", || progress.snapshot().counts.released == 3).await;
        gate.open();
    };
    let (ra, rb, ()) = within("abandon", async {
        tokio::join!(run_a, b.run(&rt, shutdown.downstream()), stop)
    })
    .await;
    let (ra, rb) = (ra?, rb?);
    assert_eq!(rb.stop, StopReason::Abandoned);
    assert_eq!(rb.released.len(), 3);
    // B's released jobs went back to the source queue, as did A's unsaved ones.
    for id in &rb.released {
        assert!(
            source.pending_ids().contains(id),
            "job {id} was not returned"
        );
    }
    let handled = rb.counts.succeeded + rb.released.len() as u64;
    assert!(handled <= ra.counts.succeeded);
    // Nothing is stranded in the stage channel: every job is saved or back at the source.
    assert_eq!(sink.saved_count() + source.pending(), 50);
    assert_eq!(sink.saved_count() as u64, rb.counts.succeeded);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_empty_stage_is_exhausted_and_a_gone_downstream_hands_jobs_back()
-> anyhow::Result<()> {
    let source = Queue::new();
    let first = source.push(10);
    let second = source.push(20);
    let origin = source.picker();
    let Picked::Some(a) = origin.pick().await? else {
        panic!("job expected")
    };
    let Picked::Some(b) = origin.pick().await? else {
        panic!("job expected")
    };
    assert_eq!(source.pending(), 0);

    let (tx, rx) = stage::channel(1, source.picker());
    tx.send(a).await?;
    tx.close();
    assert!(matches!(rx.pick().await?, Picked::Some(job) if job.meta.id == first));
    assert!(matches!(rx.pick().await?, Picked::Exhausted));

    // Once the downstream picker is gone, a send is refused and the job given
    // back to the sender (a runner then releases it to its own picker).
    let (tx, rx) = stage::channel::<u64, QueueMeta, _>(1, source.picker());
    drop(rx);
    let Err(refused) = within("send to a gone stage", tx.send(b)).await else {
        panic!("a gone stage must refuse the job");
    };
    assert!(matches!(refused.error, stage::StageError::DownstreamGone));
    assert_eq!(refused.job.meta.id, second);
    Ok(())
}
