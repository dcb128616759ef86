//! The executor workers: take a queued job, execute it, pass the result on.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tracing::{Instrument, Span};

use super::context::Context;
use super::counts::Count;
use super::latency::{latency_histogram, merge, record};
use super::pick::Queued;
use crate::observe::{Activity, Lane, Role};
use crate::{Execution, JobContext, JobId, JobMeta, JobPicker, JobResult, Runtime};

/// An executed job on its way to a saver.
pub(crate) struct Done<O, F, M> {
    pub(crate) meta: M,
    pub(crate) id: JobId,
    pub(crate) result: JobResult<O, F>,
    pub(crate) picked_at: Instant,
    pub(crate) span: Span,
}

/// One executor worker, number `index`.
pub(crate) async fn work_loop<P, X, S, R>(
    ctx: Arc<Context<P, X, S, R>>,
    queue: async_channel::Receiver<Queued<X::Input, P::Metadata>>,
    results: async_channel::Sender<Done<X::Output, X::Failure, P::Metadata>>,
    index: usize,
) where
    P: JobPicker<Input = X::Input>,
    X: Execution,
    S: Send + Sync + 'static,
    R: Runtime,
{
    let mut exec_time = latency_histogram();
    let timeout = ctx.config.job_timeout;
    let lane = Lane::new(Role::Worker, index);
    while let Ok(queued) = queue.recv().await {
        let Queued {
            job,
            id,
            permit,
            picked_at,
            span,
        } = queued;
        // The job leaves the prefetch buffer: a picker may fetch the next one.
        drop(permit);
        ctx.meters.queue_depth.set(queue.len() as f64);
        if ctx.abandon.is_cancelled() {
            ctx.release(job.meta, id, ctx.abandon_reason())
                .instrument(span)
                .await;
            continue;
        }
        let busy = ctx.stats.busy.fetch_add(1, Relaxed) + 1;
        ctx.meters.busy_workers.set(busy as f64);
        let started = ctx.runtime.now();
        let exec_time = &mut exec_time;
        // When the result was ready: the execution span ends there, not once
        // a saver had room for it.
        let mut delivered_at = None;
        let delivered = &mut delivered_at;
        let deliver = |result: JobResult<X::Output, X::Failure>, meta| {
            let now = ctx.runtime.now();
            *delivered = Some(now);
            let took = now.saturating_duration_since(started);
            ctx.meters.exec_seconds.record(took);
            record(exec_time, took);
            if let Err(error) = &result {
                tracing::debug!(parent: &span, %error, "job failed");
            }
            let done = Done {
                meta,
                id,
                result,
                picked_at,
                span: span.clone(),
            };
            let (ctx, results) = (&ctx, &results);
            async move {
                // Savers only go away if they died; the job is then handed back.
                if let Err(refused) = results.send(done).await {
                    let done = refused.into_inner();
                    ctx.release(done.meta, done.id, ctx.abandon_reason())
                        .instrument(done.span)
                        .await;
                }
            }
        };
        // Tracked only when the user asked for a handle: no cost otherwise.
        // The attempt is the user's callback: a panic in it means attempt 1.
        let attempt = crate::guard::guard(|| job.meta.attempt()).unwrap_or(1);
        let (context, _running) = match &ctx.config.job_cancels {
            Some(cancels) => {
                let (context, running) = cancels.start(id, attempt);
                (context, Some(running))
            }
            None => (JobContext::new(id, attempt), None),
        };
        let straggled = ctx
            .execution
            .execute_job(&ctx.runtime, job.input, job.meta, context, timeout, deliver)
            .instrument(span.clone())
            .await;
        if straggled {
            ctx.count(Count::Stragglers, 1);
            tracing::warn!(parent: &span, "a timed-out job held its worker until it returned");
        }
        // Busy until the result was ready, not while it waited for a saver
        // (back-pressure is idle time); a straggler kept its worker until
        // it really stopped.
        let stopped = ctx.runtime.now();
        let end = match delivered_at {
            Some(delivered) if !straggled => delivered,
            _ => stopped,
        };
        let took = end.saturating_duration_since(started);
        ctx.observe_span(lane, Activity::Execute, started, end, || 1);
        let busy = ctx.stats.busy.fetch_sub(1, Relaxed).saturating_sub(1);
        ctx.meters.busy_workers.set(busy as f64);
        ctx.stats
            .busy_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
    merge(&ctx.exec_time, &exec_time);
}
