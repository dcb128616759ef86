//! [`Counts`]: every count a runner keeps of its jobs, in one list. The run
//! report, the live progress and the metrics all read it, so a count added
//! here shows up in each of them.

/// Counts of what a runner did with its jobs.
///
/// A [`RunReport`](crate::RunReport) holds the counts of one run; a
/// [`ProgressSnapshot`](crate::ProgressSnapshot) those of every run so far;
/// each count is also the metric `pjp_<name>_total` (labelled `stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Counts {
    /// Jobs picked.
    pub picked: u64,
    /// Jobs saved with an output.
    pub succeeded: u64,
    /// Jobs saved with a failure (executor error, panic, timeout or
    /// cancellation).
    pub failed: u64,
    /// Of `failed`: executor panics.
    pub panicked: u64,
    /// Of `failed`: per-job timeouts.
    pub timed_out: u64,
    /// Of `failed`: jobs cancelled while they ran
    /// ([`JobCancels`](crate::JobCancels)).
    pub cancelled: u64,
    /// Jobs handed back to the picker.
    pub released: u64,
    /// Results dropped because the job's claim was superseded (the saver
    /// classified the error as [`LostClaim`](crate::ErrorClass::LostClaim)).
    pub fenced: u64,
    /// Of `succeeded`: outputs a leased queue accepted although the job's
    /// claim had lost its lease
    /// ([`LateResults::Accept`](crate::runner::LateResults::Accept); the
    /// saver reports them with [`accepted_late`](crate::runner::accepted_late)).
    pub late_accepted: u64,
    /// Blocking jobs that ran past their timeout: saved as timed out, they
    /// held their worker until their closure returned.
    pub stragglers: u64,
    /// Save attempts that failed and were retried.
    pub save_retries: u64,
    /// Picker errors (each followed by a back-off).
    pub pick_errors: u64,
}

impl Counts {
    /// Jobs saved, successful or not.
    pub fn saved(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// What was counted after `before`: each count minus its value then.
    pub fn since(&self, before: &Self) -> Self {
        let mut out = Self::default();
        for count in Count::ALL {
            *out.get_mut(count) = self.get(count).saturating_sub(before.get(count));
        }
        out
    }

    pub(crate) fn get(&self, count: Count) -> u64 {
        let mut copy = *self;
        *copy.get_mut(count)
    }

    fn get_mut(&mut self, count: Count) -> &mut u64 {
        match count {
            Count::Picked => &mut self.picked,
            Count::Succeeded => &mut self.succeeded,
            Count::Failed => &mut self.failed,
            Count::Panicked => &mut self.panicked,
            Count::TimedOut => &mut self.timed_out,
            Count::Cancelled => &mut self.cancelled,
            Count::Released => &mut self.released,
            Count::Fenced => &mut self.fenced,
            Count::LateAccepted => &mut self.late_accepted,
            Count::Stragglers => &mut self.stragglers,
            Count::SaveRetries => &mut self.save_retries,
            Count::PickErrors => &mut self.pick_errors,
        }
    }

    /// Sets `count` (for building from live counters).
    pub(crate) fn set(&mut self, count: Count, value: u64) {
        *self.get_mut(count) = value;
    }
}

/// One of the [`Counts`]: what the runner's tasks bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Picked,
    Succeeded,
    Failed,
    Panicked,
    TimedOut,
    Cancelled,
    Released,
    Fenced,
    LateAccepted,
    Stragglers,
    SaveRetries,
    PickErrors,
}

impl Count {
    /// Every count, in the order of [`Counts`]' fields.
    pub(crate) const ALL: [Count; 12] = [
        Count::Picked,
        Count::Succeeded,
        Count::Failed,
        Count::Panicked,
        Count::TimedOut,
        Count::Cancelled,
        Count::Released,
        Count::Fenced,
        Count::LateAccepted,
        Count::Stragglers,
        Count::SaveRetries,
        Count::PickErrors,
    ];

    /// Its position in [`Count::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// Its metric: a name and what it counts.
    pub(crate) const fn metric(self) -> (&'static str, &'static str) {
        match self {
            Count::Picked => ("pjp_jobs_picked_total", "Jobs picked"),
            Count::Succeeded => ("pjp_jobs_succeeded_total", "Jobs saved with an output"),
            Count::Failed => (
                "pjp_jobs_failed_total",
                "Jobs saved with a failure (error, panic, timeout or cancellation)",
            ),
            Count::Panicked => ("pjp_jobs_panicked_total", "Of the failed: panics"),
            Count::TimedOut => ("pjp_jobs_timed_out_total", "Of the failed: timeouts"),
            Count::Cancelled => (
                "pjp_jobs_cancelled_total",
                "Of the failed: cancelled while running",
            ),
            Count::Released => (
                "pjp_jobs_released_total",
                "Jobs released back to the picker",
            ),
            Count::Fenced => (
                "pjp_jobs_fenced_total",
                "Results dropped: the job's claim was superseded",
            ),
            Count::LateAccepted => (
                "pjp_jobs_late_accepted_total",
                "Of the succeeded: outputs accepted after the job's lease was lost",
            ),
            Count::Stragglers => (
                "pjp_jobs_stragglers_total",
                "Blocking jobs that ran past their timeout",
            ),
            Count::SaveRetries => (
                "pjp_save_retries_total",
                "Failed save attempts that were retried",
            ),
            Count::PickErrors => ("pjp_pick_errors_total", "Picker errors"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_count_has_its_own_field_and_metric() {
        let mut counts = Counts::default();
        for (n, count) in Count::ALL.into_iter().enumerate() {
            assert_eq!(count.index(), n);
            counts.set(count, n as u64 + 1);
        }
        // Each count landed in a field of its own.
        for (n, count) in Count::ALL.into_iter().enumerate() {
            assert_eq!(counts.get(count), n as u64 + 1, "{count:?}");
        }
        let names: std::collections::HashSet<_> = Count::ALL.iter().map(|c| c.metric().0).collect();
        assert_eq!(names.len(), Count::ALL.len());
    }

    #[test]
    fn since_subtracts_each_count() {
        let before = Counts {
            picked: 3,
            failed: 1,
            ..Counts::default()
        };
        let now = Counts {
            picked: 10,
            failed: 1,
            succeeded: 6,
            ..Counts::default()
        };
        let run = now.since(&before);
        assert_eq!((run.picked, run.failed, run.succeeded), (7, 0, 6));
        assert_eq!(run.saved(), 6);
    }
}
