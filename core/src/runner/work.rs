//! The executor workers: take a queued job, execute it, pass the result on.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tracing::{Instrument, Span};

use super::context::{Context, latency_histogram, merge};
use super::pick::Queued;
use crate::{Execution, JobPicker, JobResult, Runtime};

/// An executed job on its way to a saver.
pub(crate) struct Done<O, F, M> {
    pub(crate) meta: M,
    pub(crate) result: JobResult<O, F>,
    pub(crate) picked_at: Instant,
    pub(crate) span: Span,
}

/// One executor worker.
pub(crate) async fn work_loop<P, X, S, R>(
    ctx: Arc<Context<P, X, S, R>>,
    queue: async_channel::Receiver<Queued<X::Input, X::Metadata>>,
    results: async_channel::Sender<Done<X::Output, X::Failure, X::Metadata>>,
) where
    P: JobPicker<Input = X::Input, Metadata = X::Metadata>,
    X: Execution,
    R: Runtime,
{
    let mut exec_time = latency_histogram();
    let timeout = ctx.config.job_timeout;
    while let Ok(queued) = queue.recv().await {
        let Queued {
            job,
            permit,
            picked_at,
            span,
        } = queued;
        // The job leaves the prefetch buffer: a picker may fetch the next one.
        drop(permit);
        ctx.meters.queue_depth.set(queue.len() as f64);
        if ctx.abandon.is_cancelled() {
            ctx.release(job.meta).instrument(span).await;
            continue;
        }
        let busy = ctx.stats.busy.fetch_add(1, Relaxed) + 1;
        ctx.meters.busy_workers.set(busy as f64);
        let started = ctx.runtime.now();
        let result = ctx
            .execution
            .execute_job(&ctx.runtime, job.input, &job.meta, timeout)
            .instrument(span.clone())
            .await;
        let took = ctx.runtime.now().saturating_duration_since(started);
        let busy = ctx.stats.busy.fetch_sub(1, Relaxed).saturating_sub(1);
        ctx.meters.busy_workers.set(busy as f64);
        ctx.meters.exec_seconds.record(took);
        ctx.stats
            .busy_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        exec_time.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        if let Err(error) = &result {
            tracing::debug!(parent: &span, %error, "job failed");
        }
        let done = Done {
            meta: job.meta,
            result,
            picked_at,
            span,
        };
        // Savers only go away if they died; the job is then handed back.
        if let Err(refused) = results.send(done).await {
            let done = refused.into_inner();
            ctx.release(done.meta).instrument(done.span).await;
        }
    }
    merge(&ctx.exec_time, &exec_time);
}
