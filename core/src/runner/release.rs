//! Handing jobs back: one release with retries, a batch in one call, and
//! the accounting of each (`released` or `release_failed`).

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::context::Context;
use super::counts::Count;
use crate::guard::{describe, lock, panic_message};
use crate::{Backoff, ErrorClass, JobId, JobPicker, ReleaseReason, Runtime};

impl<P, X, S, R> Context<P, X, S, R>
where
    P: JobPicker,
    R: Runtime,
{
    /// Hands a claimed job back to the picker, retrying transient errors per
    /// the save retry policy. Returns whether it was released; either way the
    /// job is accounted for (in `released` or `release_failed`).
    pub(crate) async fn release(
        &self,
        meta: P::Metadata,
        job: JobId,
        reason: ReleaseReason,
    ) -> bool {
        let policy = self.config.save_retry;
        let mut backoff = Backoff::new(policy.backoff());
        let mut attempt = 1;
        let released = loop {
            let result = AssertUnwindSafe(self.picker.release(meta.clone(), reason))
                .catch_unwind()
                .await;
            match result {
                Ok(Ok(())) => break true,
                Ok(Err(error)) => {
                    let text = describe(&error);
                    let class = self.classify_pick_error(&error);
                    if class != ErrorClass::Transient || attempt >= policy.max_attempts() {
                        tracing::error!(stage = %self.config.stage, %job, error = %text, attempt, ?class, "release failed; giving up");
                        break false;
                    }
                    tracing::warn!(stage = %self.config.stage, %job, error = %text, attempt, "release failed; retrying");
                }
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    tracing::error!(stage = %self.config.stage, %job, %message, "the picker panicked releasing a job");
                    break false;
                }
            }
            attempt += 1;
            self.runtime
                .sleep(backoff.next_delay(self.runtime.random_u64()))
                .await;
        };
        if released {
            self.released_one(job, reason);
        } else {
            self.release_failed_one(job);
        }
        released
    }

    /// Hands a batch of jobs back with one `release_many`; a job whose release
    /// failed transiently (or got no outcome) is retried alone, as
    /// [`release`](Self::release) does. Every job ends in `released` or
    /// `release_failed`.
    pub(crate) async fn release_batch(
        &self,
        metas: Vec<P::Metadata>,
        ids: Vec<JobId>,
        reason: ReleaseReason,
    ) {
        if metas.len() == 1 {
            if let (Some(meta), Some(&id)) = (metas.into_iter().next(), ids.first()) {
                self.release(meta, id, reason).await;
            }
            return;
        }
        let retry_copies = metas.clone();
        let outcomes = AssertUnwindSafe(self.picker.release_many(metas, reason))
            .catch_unwind()
            .await
            .unwrap_or_default();
        let mut outcomes = outcomes.into_iter();
        for (meta, id) in retry_copies.into_iter().zip(ids) {
            match outcomes.next() {
                Some(Ok(())) => self.released_one(id, reason),
                Some(Err(error)) if self.classify_pick_error(&error) != ErrorClass::Transient => {
                    let error = describe(&error);
                    tracing::error!(stage = %self.config.stage, job = %id, %error, "release failed; giving up");
                    self.release_failed_one(id);
                }
                // Transient, missing, or the batch call panicked: one at a time.
                _ => {
                    self.release(meta, id, reason).await;
                }
            }
        }
    }

    fn released_one(&self, job: JobId, reason: ReleaseReason) {
        let claimed = self.stats.unclaim();
        self.meters.claimed.set(claimed as f64);
        self.count(Count::Released, 1);
        lock(&self.released).push(job);
        tracing::info!(stage = %self.config.stage, %job, %reason, "released");
    }

    fn release_failed_one(&self, job: JobId) {
        let claimed = self.stats.unclaim();
        self.meters.claimed.set(claimed as f64);
        lock(&self.release_failed).push(job);
    }
}
