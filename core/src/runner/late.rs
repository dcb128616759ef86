//! Late results: a leased queue may accept the success of a claim whose lease
//! expired ([`LateResults`]), and its saver tells the runner so
//! ([`accepted_late`]), which counts it in
//! [`Counts::late_accepted`](crate::Counts::late_accepted).
//!
//! The saver reports from inside its `save`/`save_many` call: the runner
//! collects what is reported while it polls that call, so the report needs
//! no new return type and reaches exactly the runner that made the call. A
//! saver that hands the write to another task must report from the task
//! that polls its `save`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;

use crate::JobId;

/// What a leased queue does with the result of a claim that no longer holds
/// its job (its lease expired, and the job went back to the queue or to
/// another worker).
///
/// Proofs run for minutes to hours; a worker whose heartbeat could not reach
/// the queue for a while (a partition, a starved process) may still finish
/// first. Throwing that proof away and running the job again is what
/// scroll-tech/scroll#1764 and succinctlabs/sp1-cluster#169 complain of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LateResults {
    /// The default. A stale claim's *success* is accepted, exactly once,
    /// while the job has not finished (it is queued, waiting for a retry, or
    /// running under another claim): the job ends succeeded with that
    /// output, and the claim holding it then (if any) loses it (its
    /// heartbeat finds the lease lost and cancels the execution; its writes
    /// are fenced). A stale *downgrade* (a failure, a cancellation, a
    /// release, a heartbeat) is still rejected, and so is any stale write
    /// once the job has finished.
    #[default]
    Accept,
    /// Every write of a stale claim is rejected (fenced), successes too.
    Reject,
}

impl LateResults {
    /// Whether a stale claim's success may be accepted.
    pub fn accepts(self) -> bool {
        self == Self::Accept
    }
}

thread_local! {
    /// The jobs reported late while the runner polls a save, if it does.
    static NOTED: RefCell<Option<Vec<JobId>>> = const { RefCell::new(None) };
}

/// Tells the runner whose save is running that `job`'s result was accepted
/// late: its claim had lost the job's lease, and the queue took the result
/// anyway ([`LateResults::Accept`]). Call it from inside
/// [`JobSaver::save`](crate::JobSaver::save) or
/// [`save_many`](crate::JobSaver::save_many), for a save that then returns
/// `Ok`; the runner counts the job in
/// [`Counts::late_accepted`](crate::Counts::late_accepted) (as well as in
/// `succeeded`). Outside a runner's save it does nothing.
///
/// ```
/// use pjp_core::JobId;
///
/// // Outside a runner: a no-op.
/// pjp_core::runner::accepted_late(JobId::new(7));
/// ```
pub fn accepted_late(job: JobId) {
    NOTED.with(|noted| {
        if let Some(jobs) = noted.borrow_mut().as_mut() {
            jobs.push(job);
        }
    });
}

/// Puts the jobs noted so far back where they were when dropped, also when
/// the poll panics.
struct Restore<'a> {
    outer: Option<Vec<JobId>>,
    noted: &'a mut Vec<JobId>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let outer = self.outer.take();
        let inner = NOTED.with(|noted| noted.replace(outer));
        *self.noted = inner.unwrap_or_default();
    }
}

/// Runs `save`, collecting the jobs its saver reports with
/// [`accepted_late`] while it is polled.
pub(crate) async fn noting<F: Future>(save: F) -> (F::Output, Vec<JobId>) {
    let mut save = pin!(save);
    let mut noted = Vec::new();
    let output = std::future::poll_fn(|cx| {
        let outer = NOTED.with(|cell| cell.replace(Some(std::mem::take(&mut noted))));
        let _restore = Restore {
            outer,
            noted: &mut noted,
        };
        save.as_mut().poll(cx)
    })
    .await;
    (output, noted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_report_reaches_the_save_being_polled_only() {
        accepted_late(JobId::new(1)); // outside: dropped
        let ((), noted) = noting(async {
            accepted_late(JobId::new(2));
            let ((), inner) = noting(async { accepted_late(JobId::new(3)) }).await;
            assert_eq!(inner, vec![JobId::new(3)]);
            tokio::task::yield_now().await;
            accepted_late(JobId::new(4));
        })
        .await;
        assert_eq!(noted, vec![JobId::new(2), JobId::new(4)]);
        assert_eq!(NOTED.with(|n| n.borrow().clone()), None);
    }

    #[test]
    fn accept_is_the_default() {
        assert!(LateResults::default().accepts());
        assert!(!LateResults::Reject.accepts());
    }
}
