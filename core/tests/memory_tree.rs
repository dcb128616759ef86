//! Trees and claim orders in the in-memory model (the fleet simulation's
//! queue): the last child's save makes its parent claimable in the same step;
//! a dead child settles its parents; proof-first against FIFO; kinds route
//! a tree's rounds to their own pickers.

use std::time::{Duration, Instant};

use pjp_core::memory::{ClaimOrder, FailurePolicy, JobOptions, JobStatus, MemoryQueue};
use pjp_core::{ExecError, Job, JobId, JobKind, JobPicker, JobSaver, Picked};

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

fn kind(name: &str) -> JobKind {
    JobKind::new(name).unwrap_or_else(|| panic!("kind {name}"))
}

async fn take_from(
    picker: &pjp_core::memory::QueuePicker<&'static str, (), String>,
) -> Picked<Vec<&'static str>> {
    match picker.pick_many(10).await.unwrap_or_else(|e| panic!("{e}")) {
        Picked::Some(jobs) => Picked::Some(jobs.into_iter().map(|j| j.input).collect()),
        Picked::Empty => Picked::Empty,
        Picked::Exhausted => Picked::Exhausted,
    }
}

#[tokio::test]
async fn kinds_route_rounds_to_their_pickers_and_each_ends_with_its_own_work() {
    let queue = Queue::new();
    let (basic, aggregate) = (kind("basic"), kind("aggregate"));
    let (parent, children) = queue.push_tree(
        ("agg", JobOptions::new().kind(aggregate)),
        vec![
            ("b0", JobOptions::new().kind(basic)),
            ("b1", JobOptions::new().kind(basic)),
        ],
        None,
    );
    queue.push_with("plain", JobOptions::new());
    queue.close();
    assert_eq!(queue.children(parent), children);
    assert!(queue.children(children[0]).is_empty());
    let provers = queue.picker().except_kinds([aggregate]);
    let aggregators = queue.picker().kinds([aggregate]);
    // The aggregation waits: its picker has nothing yet, but is not done.
    assert_eq!(take_from(&aggregators).await, Picked::Empty);
    let first = provers.pick_many(2).await.unwrap();
    let Picked::Some(first) = first else {
        panic!("the provers' jobs")
    };
    assert_eq!(
        first.iter().map(|j| j.input).collect::<Vec<_>>(),
        ["b0", "b1"]
    );
    assert_eq!(take_from(&provers).await, Picked::Some(vec!["plain"]));
    for job in &first {
        queue.saver().save(&Ok(()), &job.meta).await.unwrap();
    }
    // Only the aggregation is left: the provers are done, it is not.
    assert_eq!(take_from(&provers).await, Picked::Exhausted);
    assert_eq!(take_from(&aggregators).await, Picked::Some(vec!["agg"]));
    assert_eq!(take_from(&aggregators).await, Picked::Exhausted);
    // A kind list is an order of preference.
    let both = Queue::new();
    both.push_with("light", JobOptions::new().kind(kind("light")));
    both.push_with("heavy", JobOptions::new().kind(kind("heavy")));
    let heavy_first = both.picker().kinds([kind("heavy"), kind("light")]);
    assert_eq!(
        heavy_first.pick().await.unwrap().map(|j| j.input),
        Picked::Some("heavy")
    );
    // A picker of every kind takes the front-most across kinds.
    assert_eq!(both.pending_ids(), [JobId::new(0)]);
}

#[tokio::test]
async fn a_failure_saved_without_a_policy_fails_the_tree() {
    let queue = Queue::new();
    let (parent, _) = queue.push_tree(
        ("agg", JobOptions::new()),
        vec![("a", JobOptions::new()), ("b", JobOptions::new())],
        None,
    );
    queue.close();
    let a = take(&queue).await.unwrap();
    let b = take(&queue).await.unwrap();
    queue.saver().save(&Ok(()), &a.meta).await.unwrap();
    let failed: pjp_core::JobResult<(), String> = Err(ExecError::Failed("bad".to_owned()));
    queue.saver().save(&failed, &b.meta).await.unwrap();
    assert_eq!(status(&queue, parent), JobStatus::Dead);
    assert_eq!(queue.picker().pick().await, Ok(Picked::Exhausted));
}
