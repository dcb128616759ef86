//! The saver tasks: save each result, retrying with back-off; give up on a job
//! only after the retry policy is spent, then release it and abandon the run.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use futures_util::FutureExt;
use hdrhistogram::Histogram;
use tracing::Instrument;

use super::RunErrorKind;
use super::context::{Context, latency_histogram, merge};
use super::work::Done;
use crate::outcome::panic_message;
use crate::{Backoff, ExecError, JobMeta, JobPicker, JobSaver, Runtime};

/// One saver task. Several run at once when `savers > 1`.
pub(crate) async fn save_loop<P, X, S, R>(
    ctx: Arc<Context<P, X, S, R>>,
    results: async_channel::Receiver<Done<S::Output, S::Failure, S::Metadata>>,
) where
    P: JobPicker<Metadata = S::Metadata>,
    S: JobSaver,
    R: Runtime,
{
    let mut latency = latency_histogram();
    while let Ok(done) = results.recv().await {
        let span = done.span.clone();
        save_one(&ctx, done, &mut latency).instrument(span).await;
    }
    merge(&ctx.job_latency, &latency);
}

/// Saves one result with retries. Every path accounts for the job: saved, or
/// released (or failed to release) after giving up.
pub(crate) async fn save_one<P, X, S, R>(
    ctx: &Context<P, X, S, R>,
    done: Done<S::Output, S::Failure, S::Metadata>,
    latency: &mut Histogram<u64>,
) where
    P: JobPicker<Metadata = S::Metadata>,
    S: JobSaver,
    R: Runtime,
{
    let policy = ctx.config.save_retry;
    let mut backoff = Backoff::new(policy.backoff());
    let mut attempt = 1;
    let job = done.meta.job_id();
    loop {
        let started = ctx.runtime.now();
        let saved = AssertUnwindSafe(ctx.saver.save(&done.result, &done.meta))
            .catch_unwind()
            .await;
        let now = ctx.runtime.now();
        ctx.meters
            .save_seconds
            .record(now.saturating_duration_since(started));
        let error = match saved {
            Ok(Ok(())) => {
                record_saved(ctx, &done.result);
                let took = now.saturating_duration_since(done.picked_at);
                ctx.meters.job_seconds.record(took);
                latency.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                return;
            }
            Ok(Err(error)) => error,
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                let released = ctx.release(done.meta).await;
                ctx.fail(RunErrorKind::SaverPanicked {
                    job,
                    message,
                    released,
                });
                ctx.abandon_now();
                return;
            }
        };
        if attempt < policy.max_attempts() && ctx.saver.is_retryable(&error) {
            ctx.stats.save_retries.fetch_add(1, Relaxed);
            ctx.meters.save_retries.increment(1);
            let delay = backoff.next_delay(ctx.runtime.random_u64());
            tracing::warn!(%job, %error, attempt, ?delay, "save failed; retrying");
            ctx.runtime.sleep(delay).await;
            attempt += 1;
            continue;
        }
        let released = ctx.release(done.meta).await;
        ctx.fail(RunErrorKind::SaveFailed {
            job,
            attempts: attempt,
            released,
            source: Box::new(error),
        });
        ctx.abandon_now();
        return;
    }
}

fn record_saved<P, X, S, R, O, F>(ctx: &Context<P, X, S, R>, result: &Result<O, ExecError<F>>) {
    let stats = &ctx.stats;
    match result {
        Ok(_) => {
            stats.succeeded.fetch_add(1, Relaxed);
            ctx.meters.succeeded.increment(1);
        }
        Err(error) => {
            stats.failed.fetch_add(1, Relaxed);
            ctx.meters.failed.increment(1);
            if error.is_panic() {
                stats.panicked.fetch_add(1, Relaxed);
            } else if error.is_timeout() {
                stats.timed_out.fetch_add(1, Relaxed);
            }
        }
    }
    let claimed = stats.unclaim();
    ctx.meters.claimed.set(claimed as f64);
}
