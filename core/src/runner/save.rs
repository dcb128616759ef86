//! The saver tasks: save results, alone or in batches, retrying what failed
//! transiently with back-off. A job whose save gives up is released and
//! reported, and the run goes on; only a run of such jobs in a row ("the sink
//! is gone") drains the runner.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use futures_util::FutureExt;
use hdrhistogram::Histogram;
use tracing::Instrument;

use super::RunErrorKind;
use super::context::Context;
use super::counts::Count;
use super::late::noting;
use super::latency::{latency_histogram, merge, record};
use super::work::Done;
use crate::guard::{describe, lock, panic_message};
use crate::observe::{Activity, Lane, Role};
use crate::{
    Backoff, ErrorClass, ExecError, JobPicker, JobResult, JobSaver, ReleaseReason, Runtime,
};

type DoneOf<S> = Done<<S as JobSaver>::Output, <S as JobSaver>::Failure, <S as JobSaver>::Metadata>;

/// One saver task, number `index`. Several run at once when `savers > 1`.
pub(crate) async fn save_loop<P, X, S, R>(
    ctx: Arc<Context<P, X, S, R>>,
    results: async_channel::Receiver<DoneOf<S>>,
    index: usize,
) where
    P: JobPicker<Metadata = S::Metadata>,
    S: JobSaver,
    R: Runtime,
{
    let mut latency = latency_histogram();
    let lane = Lane::new(Role::Saver, index);
    while let Ok(first) = results.recv().await {
        let mut batch = vec![first];
        fill(&ctx, &results, &mut batch).await;
        let span = if batch.len() == 1 {
            batch[0].span.clone()
        } else {
            tracing::info_span!("save_batch", stage = %ctx.config.stage, jobs = batch.len())
        };
        save_batch(&ctx, batch, &mut latency, lane)
            .instrument(span)
            .await;
    }
    merge(&ctx.job_latency, &latency);
}

/// Tops a batch up to `save_batch` results: what is queued already, then what
/// arrives within `save_batch_wait` of the first.
async fn fill<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    results: &async_channel::Receiver<DoneOf<S>>,
    batch: &mut Vec<DoneOf<S>>,
) where
    S: JobSaver,
    R: Runtime,
{
    let max = ctx.config.save_batch;
    let wait = ctx.config.save_batch_wait;
    let deadline = ctx.runtime.now() + wait;
    while batch.len() < max {
        if let Ok(done) = results.try_recv() {
            batch.push(done);
            continue;
        }
        let left = deadline.saturating_duration_since(ctx.runtime.now());
        if left.is_zero() {
            break;
        }
        let next = tokio::select! {
            biased;
            done = results.recv() => done.ok(),
            () = ctx.runtime.sleep(left) => None,
        };
        match next {
            Some(done) => batch.push(done),
            None => break,
        }
    }
}

/// What became of one job's save attempt.
enum Attempt {
    /// Saved; `late`: the queue accepted it although the claim had lost the
    /// job's lease ([`accepted_late`](super::late::accepted_late)).
    Saved {
        late: bool,
    },
    Failed {
        class: ErrorClass,
        error: String,
    },
}

/// Saves a batch with retries. Every path accounts for each job: saved,
/// fenced, or released (or failed to release) after giving up. Each save call
/// and each back-off is reported on `lane`.
pub(crate) async fn save_batch<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    mut pending: Vec<DoneOf<S>>,
    latency: &mut Histogram<u64>,
    lane: Lane,
) where
    P: JobPicker<Metadata = S::Metadata>,
    S: JobSaver,
    R: Runtime,
{
    let policy = ctx.config.save_retry;
    let mut backoff = Backoff::new(policy.backoff());
    let mut attempt = 1;
    while !pending.is_empty() {
        let started = ctx.runtime.now();
        let outcomes = attempt_saves(ctx, &pending).await;
        let now = ctx.runtime.now();
        ctx.meters
            .save_seconds
            .record(now.saturating_duration_since(started));
        ctx.observe_span(lane, Activity::Save, started, now, || {
            u32::try_from(pending.len()).unwrap_or(u32::MAX)
        });
        let mut retry = Vec::new();
        for (done, outcome) in pending.into_iter().zip(outcomes) {
            match outcome {
                Attempt::Saved { late } => {
                    if late {
                        ctx.count(Count::LateAccepted, 1);
                        tracing::info!(parent: &done.span, job = %done.id, "saved late: the claim had lost its lease, and the queue accepted the result");
                    }
                    saved(ctx, &done.result, done.picked_at, now, latency);
                }
                Attempt::Failed {
                    class: ErrorClass::Transient,
                    error,
                } if attempt < policy.max_attempts() => {
                    tracing::warn!(parent: &done.span, job = %done.id, %error, attempt, "save failed; retrying");
                    retry.push(done);
                }
                Attempt::Failed {
                    class: ErrorClass::LostClaim,
                    error,
                } => fenced(ctx, &done, &error),
                Attempt::Failed {
                    class: ErrorClass::DownstreamGone,
                    ..
                } => downstream_gone(ctx, done).await,
                Attempt::Failed { error, .. } => give_up(ctx, done, attempt, error).await,
            }
        }
        if !retry.is_empty() {
            ctx.count(Count::SaveRetries, retry.len() as u64);
            let start = ctx.span_start();
            ctx.runtime
                .sleep(backoff.next_delay(ctx.runtime.random_u64()))
                .await;
            ctx.observe(lane, Activity::Backoff, start, 0);
            attempt += 1;
        }
        pending = retry;
    }
}

/// One call to the saver for the whole batch, its panics and errors turned
/// into one [`Attempt`] per job.
async fn attempt_saves<P, X, S, R>(ctx: &Context<P, X, S, R>, batch: &[DoneOf<S>]) -> Vec<Attempt>
where
    S: JobSaver,
{
    let (called, late) = if let [done] = batch {
        let (called, late) =
            noting(AssertUnwindSafe(ctx.saver.save(&done.result, &done.meta)).catch_unwind()).await;
        (called.map(|outcome| vec![outcome]), late)
    } else {
        let items: Vec<_> = batch.iter().map(|d| (&d.result, &d.meta)).collect();
        noting(AssertUnwindSafe(ctx.saver.save_many(&items)).catch_unwind()).await
    };
    let outcomes = match called {
        Ok(outcomes) => outcomes,
        Err(payload) => {
            // A save that panics will not do better next time.
            let error = format!("the saver panicked: {}", panic_message(payload.as_ref()));
            return batch
                .iter()
                .map(|_| Attempt::Failed {
                    class: ErrorClass::Permanent,
                    error: error.clone(),
                })
                .collect();
        }
    };
    if outcomes.len() != batch.len() {
        tracing::error!(
            stage = %ctx.config.stage,
            jobs = batch.len(),
            outcomes = outcomes.len(),
            "save_many returned the wrong number of outcomes; retrying the jobs without one"
        );
    }
    let mut outcomes = outcomes.into_iter();
    batch
        .iter()
        .map(|done| match outcomes.next() {
            Some(Ok(())) => Attempt::Saved {
                late: done.result.is_ok() && late.contains(&done.id),
            },
            Some(Err(error)) => match ctx.classify_save_error(&error) {
                Ok(class) => Attempt::Failed {
                    class,
                    error: describe(&error),
                },
                // Reported as what it is: the user's callback broke, not the save.
                Err(message) => Attempt::Failed {
                    class: ErrorClass::Permanent,
                    error: format!(
                        "`JobSaver::classify` panicked: {message} (classifying the save error: {})",
                        describe(&error)
                    ),
                },
            },
            None => Attempt::Failed {
                class: ErrorClass::Transient,
                error: "save_many returned no outcome for this job".to_owned(),
            },
        })
        .collect()
}

fn saved<P, X, S, R, O, F>(
    ctx: &Context<P, X, S, R>,
    result: &JobResult<O, F>,
    picked_at: Instant,
    now: Instant,
    latency: &mut Histogram<u64>,
) {
    match result {
        Ok(_) => ctx.count(Count::Succeeded, 1),
        Err(error) => {
            ctx.count(Count::Failed, 1);
            if error.is_panic() {
                ctx.count(Count::Panicked, 1);
            } else if matches!(error, ExecError::TimedOut { .. }) {
                ctx.count(Count::TimedOut, 1);
            } else if matches!(error, ExecError::Cancelled) {
                ctx.count(Count::Cancelled, 1);
            }
        }
    }
    ctx.consecutive_give_ups.store(0, Relaxed);
    let claimed = ctx.stats.unclaim();
    ctx.meters.claimed.set(claimed as f64);
    let took = now.saturating_duration_since(picked_at);
    ctx.meters.job_seconds.record(took);
    record(latency, took);
}

/// The job belongs to another worker now: its result is dropped, not retried.
fn fenced<P, X, S, R>(ctx: &Context<P, X, S, R>, done: &DoneOf<S>, error: &str)
where
    S: JobSaver,
{
    ctx.count(Count::Fenced, 1);
    let claimed = ctx.stats.unclaim();
    ctx.meters.claimed.set(claimed as f64);
    tracing::warn!(parent: &done.span, job = %done.id, %error, "save fenced: the claim was superseded; result dropped");
}

/// The next stage is gone: hand the job back and stop the run.
async fn downstream_gone<P, X, S, R>(ctx: &Context<P, X, S, R>, done: DoneOf<S>)
where
    P: JobPicker<Metadata = S::Metadata>,
    S: JobSaver,
    R: Runtime,
{
    if !ctx.downstream_gone.swap(true, Relaxed) {
        tracing::warn!(stage = %ctx.config.stage, "the downstream stage is gone; releasing what it cannot take and stopping");
    }
    ctx.abandon_now();
    ctx.release(done.meta, done.id, ReleaseReason::DownstreamGone)
        .instrument(done.span)
        .await;
}

/// Gives up on one job: release it, report it, and go on, unless too many
/// jobs in a row have given up.
async fn give_up<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    done: DoneOf<S>,
    attempts: u32,
    error: String,
) where
    P: JobPicker<Metadata = S::Metadata>,
    S: JobSaver,
    R: Runtime,
{
    let job = done.id;
    tracing::error!(parent: &done.span, %job, %error, attempts, "save gave up; releasing the job");
    lock(&ctx.save_gave_up).push(job);
    ctx.release(done.meta, job, ReleaseReason::SaveGaveUp)
        .instrument(done.span)
        .await;
    let in_a_row = ctx.consecutive_give_ups.fetch_add(1, Relaxed) + 1;
    if in_a_row >= ctx.config.sink_gone_after {
        ctx.fail(RunErrorKind::SinkGone {
            jobs: in_a_row,
            last_job: job,
            last_error: error,
        });
        ctx.stop_picking.cancel();
    }
}
