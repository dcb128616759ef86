//! The picker tasks: reserve room, pick, hand jobs to the workers.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Span;

use super::RunErrorKind;
use super::context::Context;
use crate::outcome::panic_message;
use crate::{Backoff, Job, JobMeta, JobPicker, Picked, Runtime};

/// A picked job on its way to a worker. The permit keeps its place in the
/// prefetch bound until a worker takes it.
pub(crate) struct Queued<I, M> {
    pub(crate) job: Job<I, M>,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    pub(crate) picked_at: Instant,
    pub(crate) span: Span,
}

enum Batch<J> {
    One(J),
    Many(Vec<J>),
}

/// One picker task. Several run at once when `pickers > 1`.
pub(crate) async fn pick_loop<P, X, S, R>(
    ctx: Arc<Context<P, X, S, R>>,
    queue: async_channel::Sender<Queued<P::Input, P::Metadata>>,
    room: Arc<Semaphore>,
) where
    P: JobPicker,
    R: Runtime,
{
    let batch = ctx.config.pick_batch;
    // `validate` checked that the batch fits in a u32.
    let batch_permits = u32::try_from(batch).unwrap_or(u32::MAX);
    let mut empty = Backoff::new(ctx.config.empty_backoff);
    let mut errors = Backoff::new(ctx.config.pick_error_backoff);
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
        // A completed pick wins over a stop that arrives at the same time, so
        // that no claimed job is dropped.
        let picked = tokio::select! {
            biased;
            picked = picking => picked,
            () = ctx.stop_picking.cancelled() => break,
        };
        ctx.meters
            .pick_seconds
            .record(ctx.runtime.now().saturating_duration_since(started));
        match picked {
            Ok(Ok(Picked::Some(jobs))) => {
                empty.reset();
                errors.reset();
                match jobs {
                    Batch::One(job) => enqueue(&ctx, &queue, job, Some(permit)).await,
                    Batch::Many(jobs) => {
                        let mut permit = Some(permit);
                        for job in jobs {
                            let one = permit.as_mut().and_then(|p| p.split(1));
                            enqueue(&ctx, &queue, job, one).await;
                        }
                    }
                }
            }
            Ok(Ok(Picked::Empty)) => {
                drop(permit);
                errors.reset();
                let delay = empty.next_delay(ctx.runtime.random_u64());
                if !ctx.sleep_unless_stopped(delay).await {
                    break;
                }
            }
            Ok(Ok(Picked::Exhausted)) => {
                ctx.mark_exhausted();
                break;
            }
            Ok(Err(error)) => {
                drop(permit);
                ctx.stats.pick_errors.fetch_add(1, Relaxed);
                ctx.meters.pick_errors.increment(1);
                if !ctx.picker.is_retryable(&error) {
                    ctx.fail(RunErrorKind::PickFailed {
                        source: Box::new(error),
                    });
                    ctx.stop_picking.cancel();
                    break;
                }
                let delay = errors.next_delay(ctx.runtime.random_u64());
                tracing::warn!(stage = %ctx.config.stage, %error, ?delay, "pick failed; backing off");
                if !ctx.sleep_unless_stopped(delay).await {
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

async fn enqueue<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    queue: &async_channel::Sender<Queued<P::Input, P::Metadata>>,
    job: Job<P::Input, P::Metadata>,
    permit: Option<OwnedSemaphorePermit>,
) where
    P: JobPicker,
    R: Runtime,
{
    let claimed = ctx.stats.claim();
    ctx.meters.picked.increment(1);
    ctx.meters.claimed.set(claimed as f64);
    let span = tracing::info_span!(
        "job",
        stage = %ctx.config.stage,
        job_id = job.meta.job_id().get(),
        attempt = job.meta.attempt(),
    );
    let queued = Queued {
        job,
        permit,
        picked_at: ctx.runtime.now(),
        span,
    };
    // The prefetch permits bound the queue, so it is unbounded and a send only
    // fails if every worker is gone; then the job goes back to the picker.
    if let Err(refused) = queue.try_send(queued) {
        let meta = refused.into_inner().job.meta;
        ctx.release(meta).await;
    }
}
