//! Trees and claim orders in the in-memory model (the fleet simulation's
//! queue): the last child's save makes its parent claimable in the same step;
//! a dead child settles its parents; proof-first against FIFO.

use std::time::{Duration, Instant};

use pjp_core::memory::{ClaimOrder, FailurePolicy, JobOptions, JobStatus, MemoryQueue};
use pjp_core::{ExecError, Job, JobId, JobPicker, JobSaver, Picked};

type Queue = MemoryQueue<&'static str, (), String>;

async fn take(queue: &Queue) -> Option<Job<&'static str, pjp_core::memory::QueueMeta>> {
    match queue.picker().pick().await {
        Ok(Picked::Some(job)) => Some(job),
        _ => None,
    }
}

fn status(queue: &Queue, id: JobId) -> JobStatus {
    queue
        .state(id)
        .map(|s| s.status)
        .unwrap_or_else(|| panic!("no job {id}"))
}

#[tokio::test]
async fn the_last_childs_save_queues_the_parent_and_the_tree_finishes() {
    let queue = Queue::new();
    let root = queue.push_group("final", JobOptions::new(), None);
    let (aggregate, basics) = queue.push_tree(
        ("aggregate", JobOptions::new().depth(1)),
        vec![
            ("a", JobOptions::new().depth(2)),
            ("b", JobOptions::new().depth(2)),
        ],
        Some(root),
    );
    queue.close();
    let a = take(&queue).await.unwrap();
    let b = take(&queue).await.unwrap();
    assert_eq!(
        take(&queue).await.map(|j| j.input),
        None,
        "the parents wait"
    );
    assert_eq!(
        queue.picker().pick().await,
        Ok(Picked::Empty),
        "not exhausted: parents wait"
    );
    queue.saver().save(&Ok(()), &a.meta).await.unwrap();
    assert_eq!(status(&queue, aggregate), JobStatus::Waiting);
    queue.saver().save(&Ok(()), &b.meta).await.unwrap();
    assert_eq!(status(&queue, aggregate), JobStatus::Queued);
    let agg = take(&queue).await.unwrap();
    assert_eq!(agg.input, "aggregate");
    queue.saver().save(&Ok(()), &agg.meta).await.unwrap();
    let last = take(&queue).await.unwrap();
    assert_eq!(last.input, "final");
    queue.saver().save(&Ok(()), &last.meta).await.unwrap();
    assert_eq!(queue.settled(), 4);
    assert_eq!(queue.picker().pick().await, Ok(Picked::Exhausted));
    assert_eq!(basics.len(), 2);
}

#[tokio::test]
async fn a_dead_child_settles_its_parents() {
    let queue = Queue::new();
    let start = Instant::now();
    queue.set_lease_clock(Duration::from_secs(3), move || start);
    queue.set_failure_policy(FailurePolicy::new(Duration::ZERO, Duration::ZERO));
    let root = queue.push_group("final", JobOptions::new(), None);
    let (aggregate, _) = queue.push_tree(
        ("aggregate", JobOptions::new()),
        vec![
            ("doomed", JobOptions::new().max_attempts(1)),
            ("fine", JobOptions::new()),
        ],
        Some(root),
    );
    let doomed = take(&queue).await.unwrap();
    queue
        .saver()
        .save(&Err(ExecError::Failed("boom".to_owned())), &doomed.meta)
        .await
        .unwrap();
    assert_eq!(status(&queue, aggregate), JobStatus::Dead);
    assert_eq!(status(&queue, root), JobStatus::Dead);
    // The sibling still runs (its result goes nowhere): nothing waits forever.
    let fine = take(&queue).await.unwrap();
    queue.saver().save(&Ok(()), &fine.meta).await.unwrap();
    assert_eq!(queue.settled(), 4);
}

#[tokio::test]
async fn proof_first_takes_the_oldest_batch_and_the_root_most_round_fifo_takes_arrival() {
    for (order, expected) in [
        (ClaimOrder::ProofFirst, ["b1-agg", "b2-basic"]),
        (ClaimOrder::Fifo, ["b2-basic", "b1-agg"]),
    ] {
        let queue = Queue::new();
        queue.set_order(order);
        let basic = |batch| JobOptions::new().batch(batch).depth(1);
        let (_, b1) = queue.push_tree(
            ("b1-agg", JobOptions::new().batch(1)),
            vec![("b1-basic", basic(1))],
            None,
        );
        queue.push_tree(
            ("b2-agg", JobOptions::new().batch(2)),
            vec![("b2-basic", basic(2))],
            None,
        );
        // Batch 1's only basic proof is done: its aggregation is claimable,
        // behind batch 2's basic proof in arrival order.
        let first = take(&queue).await.unwrap();
        assert_eq!(first.meta.id, b1[0]);
        queue.saver().save(&Ok(()), &first.meta).await.unwrap();
        let next: Vec<&str> = [
            take(&queue).await.unwrap().input,
            take(&queue).await.unwrap().input,
        ]
        .into();
        assert_eq!(next, expected, "{order:?}");
    }
}
