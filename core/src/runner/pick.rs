//! The picker tasks: reserve room, pick, hand jobs to the workers.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Span;

use super::RunErrorKind;
use super::context::Context;
use super::counts::Count;
use crate::guard::{guard, panic_message};
use crate::observe::{Activity, Lane, Role};
use crate::{Backoff, ErrorClass, Job, JobId, JobMeta, JobPicker, Picked, Runtime};

/// A picked job on its way to a worker. The permit keeps its place in the
/// prefetch bound until a worker takes it.
pub(crate) struct Queued<I, M> {
    pub(crate) job: Job<I, M>,
    /// The job's id, read once at pick time (user code, guarded there).
    pub(crate) id: JobId,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    pub(crate) picked_at: Instant,
    pub(crate) span: Span,
}

enum Batch<J> {
    One(J),
    Many(Vec<J>),
}

/// One picker task, number `index`. Several run at once when `pickers > 1`.
pub(crate) async fn pick_loop<P, X, S, R>(
    ctx: Arc<Context<P, X, S, R>>,
    queue: async_channel::Sender<Queued<P::Input, P::Metadata>>,
    room: Arc<Semaphore>,
    index: usize,
) where
    P: JobPicker,
    R: Runtime,
{
    let batch = ctx.config.pick_batch;
    // `validate` checked that the batch fits in a u32.
    let batch_permits = u32::try_from(batch).unwrap_or(u32::MAX);
    let cancel_safe = guard(|| ctx.picker.pick_is_cancel_safe()).unwrap_or(false);
    let mut empty = Backoff::new(ctx.config.empty_backoff);
    let mut errors = Backoff::new(ctx.config.pick_error_backoff);
    let lane = Lane::new(Role::Picker, index);
    loop {
        // Reserve room before picking, so a picked job always has a place.
        let permit = tokio::select! {
            biased;
            () = ctx.stop_picking.cancelled() => break,
            permit = Arc::clone(&room).acquire_many_owned(batch_permits) => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let started = ctx.runtime.now();
        let picking = AssertUnwindSafe(async {
            if batch == 1 {
                ctx.picker.pick().await.map(|p| p.map(Batch::One))
            } else {
                ctx.picker
                    .pick_many(batch)
                    .await
                    .map(|p| p.map(Batch::Many))
            }
        })
        .catch_unwind();
        // A pick in flight when picking stops may already hold a claim (a
        // committed database claim whose reply is on its way): let it finish
        // and run its jobs. Only a picker that says dropping is harmless has
        // its pick dropped.
        let picked = if cancel_safe {
            tokio::select! {
                biased;
                picked = picking => picked,
                () = ctx.stop_picking.cancelled() => {
                    ctx.observe(lane, Activity::Pick, Some(started), 0);
                    break;
                }
            }
        } else {
            picking.await
        };
        let ended = ctx.runtime.now();
        ctx.meters
            .pick_seconds
            .record(ended.saturating_duration_since(started));
        ctx.observe_span(lane, Activity::Pick, started, ended, || match &picked {
            Ok(Ok(Picked::Some(Batch::One(_)))) => 1,
            Ok(Ok(Picked::Some(Batch::Many(jobs)))) => {
                u32::try_from(jobs.len()).unwrap_or(u32::MAX)
            }
            _ => 0,
        });
        match picked {
            Ok(Ok(Picked::Some(Batch::One(job)))) => {
                empty.reset();
                errors.reset();
                enqueue(&ctx, &queue, job, Some(permit)).await;
            }
            Ok(Ok(Picked::Some(Batch::Many(jobs)))) if !jobs.is_empty() => {
                empty.reset();
                errors.reset();
                enqueue_batch(&ctx, &queue, &room, jobs, permit).await;
            }
            Ok(Ok(Picked::Empty | Picked::Some(Batch::Many(_)))) => {
                drop(permit);
                errors.reset();
                let delay = empty.next_delay(ctx.runtime.random_u64());
                if !backoff(&ctx, lane, delay).await {
                    break;
                }
            }
            Ok(Ok(Picked::Exhausted)) => {
                ctx.mark_exhausted();
                break;
            }
            Ok(Err(error)) => {
                drop(permit);
                ctx.count(Count::PickErrors, 1);
                match ctx.try_classify_pick_error(&error) {
                    Ok(ErrorClass::Transient) => {}
                    Ok(_) => {
                        ctx.fail(RunErrorKind::PickFailed {
                            source: Box::new(error),
                        });
                        ctx.stop_picking.cancel();
                        break;
                    }
                    // Reported as what it is: the user's callback broke, not the pick.
                    Err(message) => {
                        let error = crate::guard::describe(&error);
                        ctx.fail(RunErrorKind::CallbackPanicked {
                            callback: "JobPicker::classify",
                            message: format!("{message} (classifying the pick error: {error})"),
                        });
                        ctx.stop_picking.cancel();
                        break;
                    }
                }
                let delay = errors.next_delay(ctx.runtime.random_u64());
                let error = crate::guard::describe(&error);
                tracing::warn!(stage = %ctx.config.stage, %error, ?delay, "pick failed; backing off");
                if !backoff(&ctx, lane, delay).await {
                    break;
                }
            }
            Err(payload) => {
                ctx.fail(RunErrorKind::PickerPanicked {
                    message: panic_message(payload.as_ref()),
                });
                ctx.stop_picking.cancel();
                break;
            }
        }
    }
}

/// Sleeps a back-off on `lane`, waking early when picking stops. Returns
/// false if it did.
async fn backoff<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    lane: Lane,
    delay: std::time::Duration,
) -> bool
where
    P: JobPicker,
    R: Runtime,
{
    let start = ctx.span_start();
    let slept = ctx.sleep_unless_stopped(delay).await;
    ctx.observe(lane, Activity::Backoff, start, 0);
    slept
}

/// Queues a batch: the first jobs take their share of the reserved room; jobs
/// beyond the batch size the picker was asked for wait here for room of their
/// own, so the prefetch bound holds whatever the picker returns.
async fn enqueue_batch<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    queue: &async_channel::Sender<Queued<P::Input, P::Metadata>>,
    room: &Arc<Semaphore>,
    jobs: Vec<Job<P::Input, P::Metadata>>,
    permit: OwnedSemaphorePermit,
) where
    P: JobPicker,
    R: Runtime,
{
    let mut reserved = Some(permit);
    for job in jobs {
        let mut one = reserved.as_mut().and_then(|p| p.split(1));
        if one.is_none() {
            one = tokio::select! {
                biased;
                () = ctx.abandon.cancelled() => None,
                permit = Arc::clone(room).acquire_owned() => permit.ok(),
            };
        }
        if one.is_none() {
            // Abandoned while waiting for room: claim and release at once.
            ctx.claim();
            let id = identify(ctx, &job.meta).unwrap_or(UNKNOWN_JOB);
            ctx.release(job.meta, id, ctx.abandon_reason()).await;
            continue;
        }
        enqueue(ctx, queue, job, one).await;
    }
}

/// The id reported for a job whose `JobMeta::job_id` panicked.
const UNKNOWN_JOB: JobId = JobId::new(u64::MAX);

/// Reads a job's id, guarding the user's `job_id`. A metadata type whose
/// `job_id` panics cannot be tracked: the run fails, and the job is released
/// under a placeholder id so that it still goes back.
fn identify<P, X, S, R>(ctx: &Context<P, X, S, R>, meta: &P::Metadata) -> Option<JobId>
where
    P: JobPicker,
    R: Runtime,
{
    match guard(|| meta.job_id()) {
        Ok(id) => Some(id),
        Err(message) => {
            ctx.fail(RunErrorKind::CallbackPanicked {
                callback: "JobMeta::job_id",
                message,
            });
            ctx.abandon_now();
            None
        }
    }
}

async fn enqueue<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    queue: &async_channel::Sender<Queued<P::Input, P::Metadata>>,
    job: Job<P::Input, P::Metadata>,
    permit: Option<OwnedSemaphorePermit>,
) where
    P: JobPicker,
    R: Runtime,
{
    ctx.claim();
    let Some(id) = identify(ctx, &job.meta) else {
        ctx.release(job.meta, UNKNOWN_JOB, ctx.abandon_reason())
            .await;
        return;
    };
    let attempt = guard(|| job.meta.attempt()).unwrap_or(0);
    let span = tracing::info_span!(
        "job",
        stage = %ctx.config.stage,
        job_id = id.get(),
        attempt,
    );
    let queued = Queued {
        job,
        id,
        permit,
        picked_at: ctx.runtime.now(),
        span,
    };
    // The prefetch permits bound the queue, so it is unbounded and a send only
    // fails if every worker is gone; then the job goes back to the picker.
    if let Err(refused) = queue.try_send(queued) {
        let queued = refused.into_inner();
        ctx.release(queued.job.meta, queued.id, ctx.abandon_reason())
            .await;
    }
}
