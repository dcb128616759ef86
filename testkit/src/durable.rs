//! The durable-queue contract, stated once and checked against any queue.
//!
//! A leased job queue (the in-memory model [`MemoryQueue`] with
//! [`set_lease`](MemoryQueue::set_lease), or `pjp-postgres` on a real server)
//! promises the runner and the fleet the same things:
//!
//! * **claim**: each queued job goes to one claim; claims come in priority
//!   order, then oldest first; a job waiting for its `run_after` is not
//!   claimable;
//! * **heartbeat**: a held lease extended in time does not expire;
//! * **expiry and reclaim**: a lease not extended expires, the job goes back
//!   to the queue, and that costs a *lost lease*, never an *attempt*; past the
//!   lost-lease budget the job is dead (it kills or strands every worker);
//! * **fencing**: a failure saved by a claim that lost its lease is rejected
//!   and changes nothing; a release or heartbeat by it changes nothing; every
//!   write of it is rejected once the job has finished; a repeated save by
//!   the claim that saved is idempotent;
//! * **late results** (the default, `LateResults::Accept`): a *success*
//!   saved by a claim that lost its lease is accepted, exactly once, while
//!   the job has not finished (queued, waiting for a retry, or running under
//!   another claim); the claim holding the job then loses it (its heartbeat
//!   extends nothing, its save is fenced);
//! * **retries**: a failure uses an attempt and the job runs again after a
//!   delay (`run_after`), or is dead once its attempts are spent; a permanent
//!   failure ends it `failed`;
//! * **release** hands a job back at once without using an attempt.
//!
//! [`check_durable_queue`] runs every case against a fresh queue from your
//! factory. Implement [`DurableQueue`] for a thin adapter over your queue:
//! time is moved by [`advance`](DurableQueue::advance), so no case waits on a
//! real clock (the PostgreSQL adapter moves the stored deadlines back
//! instead).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! use pjp_testkit::durable::{ModelQueue, check_durable_queue};
//!
//! let report = check_durable_queue(async || ModelQueue::new()).await?;
//! assert!(report.passed.len() >= 10);
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use pjp_core::memory::{FailurePolicy, JobOptions, JobStatus, MemoryQueue, QueueError, QueueMeta};
use pjp_core::{
    ErrorClass, ExecError, Job, JobId, JobPicker, JobSaver, Picked, ReleaseReason, Runtime,
};

/// How a case queues a job: the durable queue's row knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobSpec {
    /// Higher is claimed first.
    pub priority: i16,
    /// Not claimable before this has passed.
    pub delay: Duration,
    /// Executor failures before the job is dead.
    pub max_attempts: u32,
    /// Lost leases before the job is dead.
    pub max_lost_leases: u32,
}

impl Default for JobSpec {
    fn default() -> Self {
        Self {
            priority: 0,
            delay: Duration::ZERO,
            max_attempts: 5,
            max_lost_leases: 3,
        }
    }
}

/// How a claim ends, as a case asks the queue to record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The executor produced an output.
    Succeeded,
    /// The executor failed; try again later (uses an attempt).
    Retry,
    /// The executor failed for good (uses an attempt, no retry).
    Failed,
    /// The execution was cancelled on its worker: back at once, no attempt.
    Cancelled,
}

/// Whether the queue took a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Written (or a repeat of a write that went through).
    Done,
    /// Rejected: the claim no longer holds the job. An adapter reports this
    /// exactly when the queue's saver [classifies](pjp_core::JobSaver::classify)
    /// the error as [`ErrorClass::LostClaim`],
    /// so that every queue passing the contract makes the runner count a
    /// fenced save the same way (dropped, counted in `report.counts.fenced`).
    Fenced,
}

/// A job as the queue reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobView {
    /// Where it stands.
    pub status: JobStatus,
    /// Executor failures recorded.
    pub attempts: u32,
    /// Leases lost.
    pub lost_leases: u32,
}

/// A queue under test, driven one protocol step at a time.
///
/// `Worker` is one worker's membership (its identity and the leases it
/// holds); `Claim` one claimed job with its fencing token.
pub trait DurableQueue: Send + Sync {
    /// One worker's handle.
    type Worker: Send + Sync;
    /// A claimed job.
    type Claim: Clone + Send + Sync + fmt::Debug;
    /// The queue's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The lease a claim gets (and a heartbeat renews).
    fn lease_ttl(&self) -> Duration;
    /// The longest retry delay after a failure.
    fn retry_max(&self) -> Duration;
    /// Queues a job; returns its id.
    fn enqueue(&self, spec: JobSpec) -> impl Future<Output = Result<JobId, Self::Error>> + Send;
    /// A new worker named `name`.
    fn worker(&self, name: &str) -> impl Future<Output = Result<Self::Worker, Self::Error>> + Send;
    /// Claims up to `max` jobs for `worker`.
    fn claim(
        &self,
        worker: &Self::Worker,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Self::Claim>, Self::Error>> + Send;
    /// The job a claim holds.
    fn job(claim: &Self::Claim) -> JobId;
    /// Extends the leases `worker` holds; returns how many.
    fn heartbeat(
        &self,
        worker: &Self::Worker,
    ) -> impl Future<Output = Result<usize, Self::Error>> + Send;
    /// Records how `claim` ended.
    fn complete(
        &self,
        worker: &Self::Worker,
        claim: &Self::Claim,
        outcome: Outcome,
    ) -> impl Future<Output = Result<Write, Self::Error>> + Send;
    /// Hands `claim` back without using an attempt.
    fn release(
        &self,
        worker: &Self::Worker,
        claim: &Self::Claim,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Lets `by` pass for leases and delays.
    fn advance(&self, by: Duration) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Returns expired leases to the queue now; returns how many.
    fn rescue(&self) -> impl Future<Output = Result<u64, Self::Error>> + Send;
    /// A job's state.
    fn view(&self, job: JobId) -> impl Future<Output = Result<JobView, Self::Error>> + Send;
}

/// The contract's cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Case {
    /// Concurrent claims by two workers hand each job out once.
    ClaimsAreDisjoint,
    /// Higher priority first, then oldest first.
    PriorityOrder,
    /// A delayed job is not claimable before its time.
    RunAfter,
    /// A heartbeat keeps a lease past its first ttl.
    HeartbeatKeepsLease,
    /// An expired lease is reclaimed: a lost lease, no attempt.
    ExpiryReclaims,
    /// The stale claim's failures are fenced, its release and heartbeat
    /// change nothing, and once the job finished its success is fenced too.
    StaleWritesFenced,
    /// A stale claim's success is accepted while another claim holds the
    /// job, which then loses it.
    LateSuccessAccepted,
    /// Of several stale successes one is accepted, also while the job waits
    /// for a retry.
    LateSuccessOnce,
    /// Past its lost-lease budget, a job is dead.
    LostLeaseBudget,
    /// A failure uses an attempt and runs again after a delay; spent attempts mean dead.
    RetryThenDead,
    /// A permanent failure ends the job `failed`.
    PermanentFailure,
    /// A release or a cancelled execution hands the job back at once, no attempt.
    ReleaseUsesNoAttempt,
    /// A repeated save by the saving claim is idempotent.
    RepeatedSaveIdempotent,
}

impl Case {
    /// Every case, in the order they run.
    pub const ALL: [Case; 13] = [
        Case::ClaimsAreDisjoint,
        Case::PriorityOrder,
        Case::RunAfter,
        Case::HeartbeatKeepsLease,
        Case::ExpiryReclaims,
        Case::StaleWritesFenced,
        Case::LateSuccessAccepted,
        Case::LateSuccessOnce,
        Case::LostLeaseBudget,
        Case::RetryThenDead,
        Case::PermanentFailure,
        Case::ReleaseUsesNoAttempt,
        Case::RepeatedSaveIdempotent,
    ];
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClaimsAreDisjoint => "concurrent claims are disjoint",
            Self::PriorityOrder => "claims follow priority, then age",
            Self::RunAfter => "a delayed job waits for its time",
            Self::HeartbeatKeepsLease => "a heartbeat keeps the lease",
            Self::ExpiryReclaims => "an expired lease is reclaimed as a lost lease",
            Self::StaleWritesFenced => "a stale claim's downgrades change nothing",
            Self::LateSuccessAccepted => "a stale claim's success is accepted late",
            Self::LateSuccessOnce => "of several late successes one is accepted",
            Self::LostLeaseBudget => "past its lost-lease budget a job is dead",
            Self::RetryThenDead => "failures retry after a delay, then dead",
            Self::PermanentFailure => "a permanent failure ends the job failed",
            Self::ReleaseUsesNoAttempt => "a release uses no attempt",
            Self::RepeatedSaveIdempotent => "a repeated save is idempotent",
        })
    }
}

/// The cases that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableReport {
    /// Every case run, all passed.
    pub passed: Vec<Case>,
}

/// The cases that failed, each with what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("durable-queue conformance: {} case(s) failed: {}", failures.len(), failures.iter().map(|(c, d)| format!("{c}: {d}")).collect::<Vec<_>>().join("; "))]
#[non_exhaustive]
pub struct DurableError {
    /// The failed cases.
    pub failures: Vec<(Case, String)>,
    /// The cases that passed.
    pub passed: Vec<Case>,
}

/// Runs every [`Case`] against a fresh queue from `make`.
pub async fn check_durable_queue<Q, F>(make: F) -> Result<DurableReport, DurableError>
where
    Q: DurableQueue,
    F: AsyncFn() -> Q,
{
    let (mut passed, mut failures) = (Vec::new(), Vec::new());
    for case in Case::ALL {
        let queue = make().await;
        match run_case(&queue, case).await {
            Ok(()) => passed.push(case),
            Err(detail) => failures.push((case, detail)),
        }
    }
    if failures.is_empty() {
        Ok(DurableReport { passed })
    } else {
        Err(DurableError { failures, passed })
    }
}

/// A case's verdict: `Err` says what broke.
type Verdict = Result<(), String>;

fn check(ok: bool, what: impl FnOnce() -> String) -> Verdict {
    if ok { Ok(()) } else { Err(what()) }
}

/// Unwraps a queue call, naming the step that failed.
macro_rules! step {
    ($what:literal, $call:expr) => {
        $call.await.map_err(|e| format!("{}: {e}", $what))?
    };
}

async fn run_case<Q: DurableQueue>(q: &Q, case: Case) -> Verdict {
    match case {
        Case::ClaimsAreDisjoint => claims_are_disjoint(q).await,
        Case::PriorityOrder => priority_order(q).await,
        Case::RunAfter => run_after(q).await,
        Case::HeartbeatKeepsLease => heartbeat_keeps_lease(q).await,
        Case::ExpiryReclaims => expiry_reclaims(q).await,
        Case::StaleWritesFenced => stale_writes_fenced(q).await,
        Case::LateSuccessAccepted => late_success_accepted(q).await,
        Case::LateSuccessOnce => late_success_once(q).await,
        Case::LostLeaseBudget => lost_lease_budget(q).await,
        Case::RetryThenDead => retry_then_dead(q).await,
        Case::PermanentFailure => permanent_failure(q).await,
        Case::ReleaseUsesNoAttempt => release_uses_no_attempt(q).await,
        Case::RepeatedSaveIdempotent => repeated_save_idempotent(q).await,
    }
}

async fn expect_view<Q: DurableQueue>(
    q: &Q,
    job: JobId,
    status: JobStatus,
    attempts: u32,
    lost_leases: u32,
) -> Verdict {
    let view = step!("view", q.view(job));
    let want = JobView {
        status,
        attempts,
        lost_leases,
    };
    check(view == want, || {
        format!("job {job}: {view:?}, expected {want:?}")
    })
}

/// Claims exactly one job, or says what it got.
async fn claim_one<Q: DurableQueue>(q: &Q, worker: &Q::Worker) -> Result<Q::Claim, String> {
    let mut claims = step!("claim", q.claim(worker, 1));
    match claims.len() {
        1 => Ok(claims.remove(0)),
        n => Err(format!("expected one claim, got {n}")),
    }
}

async fn claims_are_disjoint<Q: DurableQueue>(q: &Q) -> Verdict {
    const JOBS: usize = 40;
    let mut ids = HashSet::new();
    for _ in 0..JOBS {
        ids.insert(step!("enqueue", q.enqueue(JobSpec::default())));
    }
    let (a, b) = (
        step!("worker", q.worker("a")),
        step!("worker", q.worker("b")),
    );
    let mut seen = HashSet::new();
    for _ in 0..JOBS {
        let (x, y) = futures_util::future::join(q.claim(&a, 3), q.claim(&b, 3)).await;
        let (x, y) = (x.map_err(|e| e.to_string())?, y.map_err(|e| e.to_string())?);
        if x.is_empty() && y.is_empty() {
            break;
        }
        for claim in x.iter().chain(&y) {
            let job = Q::job(claim);
            check(seen.insert(job), || format!("job {job} claimed twice"))?;
        }
    }
    check(seen == ids, || {
        format!("claimed {} of {} jobs", seen.len(), ids.len())
    })?;
    let job = *ids.iter().next().ok_or("no job")?;
    expect_view(q, job, JobStatus::Running, 0, 0).await
}

async fn priority_order<Q: DurableQueue>(q: &Q) -> Verdict {
    let mut want = Vec::new();
    let mut low = Vec::new();
    for priority in [0, 5, 0, 5, 1] {
        let id = step!(
            "enqueue",
            q.enqueue(JobSpec {
                priority,
                ..JobSpec::default()
            })
        );
        match priority {
            5 => want.push(id),
            1 => low.push(id),
            _ => {}
        }
    }
    let worker = step!("worker", q.worker("w"));
    let mut order = Vec::new();
    for _ in 0..5 {
        let claim = claim_one(q, &worker).await?;
        order.push(Q::job(&claim));
    }
    // 5, 5 (oldest first), then 1, then the two 0s oldest first.
    let zeros: Vec<JobId> = {
        let mut rest: Vec<JobId> = order[3..].to_vec();
        rest.sort_unstable();
        rest
    };
    check(
        order[..2] == want[..] && order[2] == low[0] && order[3..] == zeros[..],
        || format!("claim order {order:?}: expected {want:?}, then {low:?}, then the rest by age"),
    )
}

async fn run_after<Q: DurableQueue>(q: &Q) -> Verdict {
    let delay = q.lease_ttl() * 4;
    let job = step!(
        "enqueue",
        q.enqueue(JobSpec {
            delay,
            ..JobSpec::default()
        })
    );
    let worker = step!("worker", q.worker("w"));
    let early = step!("claim", q.claim(&worker, 1));
    check(early.is_empty(), || {
        format!("job {job} claimed before its delay")
    })?;
    step!("advance", q.advance(delay + Duration::from_millis(1)));
    let claim = claim_one(q, &worker).await?;
    check(Q::job(&claim) == job, || "another job claimed".to_owned())
}

async fn heartbeat_keeps_lease<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!("enqueue", q.enqueue(JobSpec::default()));
    let worker = step!("worker", q.worker("w"));
    let claim = claim_one(q, &worker).await?;
    let part = q.lease_ttl() * 3 / 5;
    for _ in 0..3 {
        step!("advance", q.advance(part));
        let extended = step!("heartbeat", q.heartbeat(&worker));
        check(extended == 1, || {
            format!("heartbeat extended {extended}, expected 1")
        })?;
    }
    let rescued = step!("rescue", q.rescue());
    check(rescued == 0, || {
        format!("a heartbeated lease was rescued ({rescued})")
    })?;
    expect_view(q, job, JobStatus::Running, 0, 0).await?;
    let written = step!("complete", q.complete(&worker, &claim, Outcome::Succeeded));
    check(written == Write::Done, || format!("save {written:?}"))?;
    expect_view(q, job, JobStatus::Succeeded, 0, 0).await
}

/// Claims a job on `worker`, lets its lease expire and rescues it. The
/// caller checks the job's state: a queue whose workers also rescue in the
/// background may have rescued it first (then this rescue finds nothing).
async fn lose_lease<Q: DurableQueue>(q: &Q, worker: &Q::Worker) -> Result<Q::Claim, String> {
    let claim = claim_one(q, worker).await?;
    step!(
        "advance",
        q.advance(q.lease_ttl() + Duration::from_millis(50))
    );
    let rescued = step!("rescue", q.rescue());
    check(rescued <= 1, || {
        format!("rescued {rescued} leases, expected 1")
    })?;
    Ok(claim)
}

async fn expiry_reclaims<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!("enqueue", q.enqueue(JobSpec::default()));
    let dead = step!("worker", q.worker("crashed"));
    lose_lease(q, &dead).await?;
    expect_view(q, job, JobStatus::Queued, 0, 1).await?;
    let live = step!("worker", q.worker("live"));
    let claim = claim_one(q, &live).await?;
    check(Q::job(&claim) == job, || "another job claimed".to_owned())?;
    let written = step!("complete", q.complete(&live, &claim, Outcome::Succeeded));
    check(written == Write::Done, || format!("save {written:?}"))?;
    expect_view(q, job, JobStatus::Succeeded, 0, 1).await
}

async fn stale_writes_fenced<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!("enqueue", q.enqueue(JobSpec::default()));
    let cut = step!("worker", q.worker("cut-off"));
    let stale = lose_lease(q, &cut).await?;
    let live = step!("worker", q.worker("live"));
    let claim = claim_one(q, &live).await?;
    // The cut-off worker comes back: nothing but a success of it lands.
    let extended = step!("heartbeat", q.heartbeat(&cut));
    check(extended == 0, || {
        format!("a lost lease was extended ({extended})")
    })?;
    for outcome in [Outcome::Retry, Outcome::Failed, Outcome::Cancelled] {
        let written = step!("stale save", q.complete(&cut, &stale, outcome));
        check(written == Write::Fenced, || {
            format!("stale {outcome:?} {written:?}")
        })?;
    }
    step!("stale release", q.release(&cut, &stale));
    expect_view(q, job, JobStatus::Running, 0, 1).await?;
    let again = step!("claim", q.claim(&cut, 1));
    check(again.is_empty(), || {
        "the stale release handed the job back".to_owned()
    })?;
    let written = step!("complete", q.complete(&live, &claim, Outcome::Succeeded));
    check(written == Write::Done, || format!("save {written:?}"))?;
    // The job has finished: a stale success is too late now.
    for outcome in [Outcome::Succeeded, Outcome::Retry] {
        let late = step!("stale save", q.complete(&cut, &stale, outcome));
        check(late == Write::Fenced, || {
            format!("stale {outcome:?} after success {late:?}")
        })?;
    }
    expect_view(q, job, JobStatus::Succeeded, 0, 1).await
}

async fn late_success_accepted<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!("enqueue", q.enqueue(JobSpec::default()));
    let slow = step!("worker", q.worker("slow"));
    let stale = lose_lease(q, &slow).await?;
    let live = step!("worker", q.worker("live"));
    let claim = claim_one(q, &live).await?;
    // The slow worker's proof is done first: it is kept.
    let written = step!("late save", q.complete(&slow, &stale, Outcome::Succeeded));
    check(written == Write::Done, || format!("late save {written:?}"))?;
    expect_view(q, job, JobStatus::Succeeded, 0, 1).await?;
    // A repeat of it (its reply was lost) is idempotent.
    let again = step!("late save", q.complete(&slow, &stale, Outcome::Succeeded));
    check(again == Write::Done, || {
        format!("repeated late save {again:?}")
    })?;
    // The claim that held the job lost it.
    let extended = step!("heartbeat", q.heartbeat(&live));
    check(extended == 0, || {
        format!("the superseded holder's lease was extended ({extended})")
    })?;
    for outcome in [Outcome::Succeeded, Outcome::Cancelled] {
        let written = step!("holder's save", q.complete(&live, &claim, outcome));
        check(written == Write::Fenced, || {
            format!("the superseded holder's {outcome:?} {written:?}")
        })?;
    }
    step!("holder's release", q.release(&live, &claim));
    expect_view(q, job, JobStatus::Succeeded, 0, 1).await?;
    let claims = step!("claim", q.claim(&live, 1));
    check(claims.is_empty(), || {
        "a finished job was claimed".to_owned()
    })
}

async fn late_success_once<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!(
        "enqueue",
        q.enqueue(JobSpec {
            max_lost_leases: 5,
            ..JobSpec::default()
        })
    );
    let (a, b, c) = (
        step!("worker", q.worker("a")),
        step!("worker", q.worker("b")),
        step!("worker", q.worker("c")),
    );
    let first = lose_lease(q, &a).await?;
    let second = lose_lease(q, &b).await?;
    expect_view(q, job, JobStatus::Queued, 0, 2).await?;
    // The third claim fails: the job waits for its retry.
    let third = claim_one(q, &c).await?;
    let written = step!("complete", q.complete(&c, &third, Outcome::Retry));
    check(written == Write::Done, || format!("save {written:?}"))?;
    expect_view(q, job, JobStatus::Queued, 1, 2).await?;
    // Two late successes: the first is accepted, the second is fenced.
    let written = step!("late save", q.complete(&b, &second, Outcome::Succeeded));
    check(written == Write::Done, || format!("late save {written:?}"))?;
    let written = step!("late save", q.complete(&a, &first, Outcome::Succeeded));
    check(written == Write::Fenced, || {
        format!("second late save {written:?}")
    })?;
    let written = step!("late save", q.complete(&c, &third, Outcome::Succeeded));
    check(written == Write::Fenced, || {
        format!("third late save {written:?}")
    })?;
    expect_view(q, job, JobStatus::Succeeded, 1, 2).await?;
    step!(
        "advance",
        q.advance(q.retry_max() + Duration::from_millis(1))
    );
    let claims = step!("claim", q.claim(&c, 1));
    check(claims.is_empty(), || {
        "the retry of a finished job was claimed".to_owned()
    })
}

async fn lost_lease_budget<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!(
        "enqueue",
        q.enqueue(JobSpec {
            max_lost_leases: 2,
            ..JobSpec::default()
        })
    );
    let worker = step!("worker", q.worker("w"));
    lose_lease(q, &worker).await?;
    expect_view(q, job, JobStatus::Queued, 0, 1).await?;
    lose_lease(q, &worker).await?;
    expect_view(q, job, JobStatus::Dead, 0, 2).await?;
    let claims = step!("claim", q.claim(&worker, 1));
    check(claims.is_empty(), || "a dead job was claimed".to_owned())
}

async fn retry_then_dead<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!(
        "enqueue",
        q.enqueue(JobSpec {
            max_attempts: 3,
            ..JobSpec::default()
        })
    );
    let worker = step!("worker", q.worker("w"));
    for attempt in 1..=3u32 {
        let claim = claim_one(q, &worker).await?;
        let written = step!("complete", q.complete(&worker, &claim, Outcome::Retry));
        check(written == Write::Done, || format!("save {written:?}"))?;
        if attempt == 3 {
            break;
        }
        expect_view(q, job, JobStatus::Queued, attempt, 0).await?;
        let early = step!("claim", q.claim(&worker, 1));
        check(early.is_empty(), || {
            format!("retry {attempt} claimable before its delay")
        })?;
        step!(
            "advance",
            q.advance(q.retry_max() + Duration::from_millis(1))
        );
    }
    expect_view(q, job, JobStatus::Dead, 3, 0).await
}

async fn permanent_failure<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!("enqueue", q.enqueue(JobSpec::default()));
    let worker = step!("worker", q.worker("w"));
    let claim = claim_one(q, &worker).await?;
    let written = step!("complete", q.complete(&worker, &claim, Outcome::Failed));
    check(written == Write::Done, || format!("save {written:?}"))?;
    expect_view(q, job, JobStatus::Failed, 1, 0).await
}

async fn release_uses_no_attempt<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!("enqueue", q.enqueue(JobSpec::default()));
    let worker = step!("worker", q.worker("w"));
    let claim = claim_one(q, &worker).await?;
    step!("release", q.release(&worker, &claim));
    expect_view(q, job, JobStatus::Queued, 0, 0).await?;
    let claim = claim_one(q, &worker).await?;
    let written = step!("complete", q.complete(&worker, &claim, Outcome::Cancelled));
    check(written == Write::Done, || format!("save {written:?}"))?;
    expect_view(q, job, JobStatus::Queued, 0, 0).await?;
    let claim = claim_one(q, &worker).await?;
    check(Q::job(&claim) == job, || "another job claimed".to_owned())
}

async fn repeated_save_idempotent<Q: DurableQueue>(q: &Q) -> Verdict {
    let job = step!("enqueue", q.enqueue(JobSpec::default()));
    let worker = step!("worker", q.worker("w"));
    let claim = claim_one(q, &worker).await?;
    for n in 0..2 {
        let written = step!("complete", q.complete(&worker, &claim, Outcome::Succeeded));
        check(written == Write::Done, || format!("save {n}: {written:?}"))?;
    }
    expect_view(q, job, JobStatus::Succeeded, 0, 0).await
}

/// The in-memory model ([`MemoryQueue`] with leases and a
/// [`FailurePolicy`]) as a [`DurableQueue`], on a clock the suite moves.
#[derive(Clone)]
pub struct ModelQueue {
    queue: MemoryQueue<u64, u64, String>,
    clock: Clock,
    ttl: Duration,
    retry_max: Duration,
}

/// How a [`ModelQueue`] lets time pass.
#[derive(Clone)]
enum Clock {
    /// A hand-moved offset from a fixed start.
    Manual(Arc<Mutex<Duration>>),
    /// A runtime's clock, moved by sleeping (instant under simulation).
    Runtime(Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>),
}

impl fmt::Debug for ModelQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelQueue")
            .field("queue", &self.queue)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// One worker of a [`ModelQueue`]: the claims it holds.
#[derive(Debug, Default)]
pub struct ModelWorker {
    held: Mutex<Vec<QueueMeta>>,
}

impl ModelWorker {
    fn held(&self) -> std::sync::MutexGuard<'_, Vec<QueueMeta>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ModelQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelQueue {
    /// A leased model queue on a clock moved by hand: 3 s leases, retries
    /// after 1 s doubling to 60 s, failures whose message starts with
    /// `permanent` end `failed`.
    pub fn new() -> Self {
        let queue = MemoryQueue::new();
        let offset = Arc::new(Mutex::new(Duration::ZERO));
        let start = Instant::now();
        let moved = Arc::clone(&offset);
        let ttl = Duration::from_secs(3);
        queue.set_lease_clock(ttl, move || {
            start + *moved.lock().unwrap_or_else(PoisonError::into_inner)
        });
        Self::finish(queue, Clock::Manual(offset), ttl)
    }

    /// The same model on `runtime`'s clock: time passes by sleeping on it,
    /// which under simulation is exact and takes no wall time.
    pub fn on_runtime<R: Runtime>(runtime: &R) -> Self {
        let queue = MemoryQueue::new();
        let ttl = Duration::from_secs(3);
        queue.set_lease(runtime, ttl);
        let sleeper = runtime.clone();
        let clock = Clock::Runtime(Arc::new(move |by| {
            let sleeper = sleeper.clone();
            Box::pin(async move { sleeper.sleep(by).await })
        }));
        Self::finish(queue, clock, ttl)
    }

    fn finish(queue: MemoryQueue<u64, u64, String>, clock: Clock, ttl: Duration) -> Self {
        let retry_max = Duration::from_secs(60);
        queue.set_failure_policy(
            FailurePolicy::new(Duration::from_secs(1), retry_max).permanent(|e: &ExecError<String>| {
                matches!(e, ExecError::Failed(message) if message.starts_with("permanent"))
            }),
        );
        Self {
            queue,
            clock,
            ttl,
            retry_max,
        }
    }

    /// The queue inside.
    pub fn queue(&self) -> &MemoryQueue<u64, u64, String> {
        &self.queue
    }
}

impl DurableQueue for ModelQueue {
    type Worker = ModelWorker;
    type Claim = QueueMeta;
    type Error = QueueError;

    fn lease_ttl(&self) -> Duration {
        self.ttl
    }

    fn retry_max(&self) -> Duration {
        self.retry_max
    }

    async fn enqueue(&self, spec: JobSpec) -> Result<JobId, QueueError> {
        let options = JobOptions::new()
            .priority(spec.priority)
            .delay(spec.delay)
            .max_attempts(spec.max_attempts)
            .max_lost_leases(spec.max_lost_leases);
        Ok(self.queue.push_with(0, options))
    }

    async fn worker(&self, _name: &str) -> Result<ModelWorker, QueueError> {
        Ok(ModelWorker::default())
    }

    async fn claim(&self, worker: &ModelWorker, max: usize) -> Result<Vec<QueueMeta>, QueueError> {
        let claims: Vec<QueueMeta> = match self.queue.picker().pick_many(max).await? {
            Picked::Some(jobs) => jobs.into_iter().map(|Job { meta, .. }| meta).collect(),
            Picked::Empty | Picked::Exhausted => Vec::new(),
        };
        worker.held().extend(claims.iter().copied());
        Ok(claims)
    }

    fn job(claim: &QueueMeta) -> JobId {
        claim.id
    }

    async fn heartbeat(&self, worker: &ModelWorker) -> Result<usize, QueueError> {
        let held = worker.held().clone();
        Ok(self.queue.heartbeat(&held))
    }

    async fn complete(
        &self,
        worker: &ModelWorker,
        claim: &QueueMeta,
        outcome: Outcome,
    ) -> Result<Write, QueueError> {
        worker.held().retain(|c| c != claim);
        let result = match outcome {
            Outcome::Succeeded => Ok(1),
            Outcome::Retry => Err(ExecError::Failed("transient".to_owned())),
            Outcome::Failed => Err(ExecError::Failed("permanent".to_owned())),
            Outcome::Cancelled => Err(ExecError::Cancelled),
        };
        let saver = self.queue.saver();
        match saver.save(&result, claim).await {
            Ok(()) => Ok(Write::Done),
            Err(error) if saver.classify(&error) == ErrorClass::LostClaim => Ok(Write::Fenced),
            Err(other) => Err(other),
        }
    }

    async fn release(&self, worker: &ModelWorker, claim: &QueueMeta) -> Result<(), QueueError> {
        worker.held().retain(|c| c != claim);
        self.queue
            .picker()
            .release(*claim, ReleaseReason::Abandon)
            .await
    }

    async fn advance(&self, by: Duration) -> Result<(), QueueError> {
        match &self.clock {
            Clock::Manual(offset) => *offset.lock().unwrap_or_else(PoisonError::into_inner) += by,
            Clock::Runtime(sleep) => sleep(by).await,
        }
        Ok(())
    }

    async fn rescue(&self) -> Result<u64, QueueError> {
        Ok(self.queue.rescue())
    }

    async fn view(&self, job: JobId) -> Result<JobView, QueueError> {
        let state = self.queue.state(job).ok_or(QueueError::UnknownJob(job))?;
        Ok(JobView {
            status: state.status,
            attempts: state.attempts,
            lost_leases: state.lost_leases,
        })
    }
}
