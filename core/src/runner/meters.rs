//! Metric handles, registered once per run through the `metrics` facade.
//!
//! Registering up front keeps the per-job cost to a handle call (a no-op when no
//! recorder is installed).

use metrics::{Counter, Gauge, Histogram, Unit};

use super::counts::Count;

pub(crate) struct Meters {
    /// One counter per [`Count`], by its index.
    counts: Vec<Counter>,
    pub(crate) pick_seconds: Histogram,
    pub(crate) exec_seconds: Histogram,
    pub(crate) save_seconds: Histogram,
    pub(crate) job_seconds: Histogram,
    pub(crate) queue_depth: Gauge,
    pub(crate) busy_workers: Gauge,
    pub(crate) claimed: Gauge,
}

impl Meters {
    /// Adds `n` to `count`'s metric.
    pub(crate) fn add(&self, count: Count, n: u64) {
        if let Some(counter) = self.counts.get(count.index()) {
            counter.increment(n);
        }
    }

    pub(crate) fn new(stage: &str) -> Self {
        describe();
        let stage = stage.to_owned();
        Self {
            counts: Count::ALL
                .iter()
                .map(|count| metrics::counter!(count.metric().0, "stage" => stage.clone()))
                .collect(),
            pick_seconds: metrics::histogram!("pjp_pick_seconds", "stage" => stage.clone()),
            exec_seconds: metrics::histogram!("pjp_execute_seconds", "stage" => stage.clone()),
            save_seconds: metrics::histogram!("pjp_save_seconds", "stage" => stage.clone()),
            job_seconds: metrics::histogram!("pjp_job_seconds", "stage" => stage.clone()),
            queue_depth: metrics::gauge!("pjp_queue_depth", "stage" => stage.clone()),
            busy_workers: metrics::gauge!("pjp_busy_workers", "stage" => stage.clone()),
            claimed: metrics::gauge!("pjp_jobs_claimed", "stage" => stage),
        }
    }
}

fn describe() {
    for count in Count::ALL {
        let (name, what) = count.metric();
        metrics::describe_counter!(name, Unit::Count, what);
    }
    metrics::describe_histogram!("pjp_pick_seconds", Unit::Seconds, "Duration of one pick");
    metrics::describe_histogram!(
        "pjp_execute_seconds",
        Unit::Seconds,
        "Execution time of one job"
    );
    metrics::describe_histogram!(
        "pjp_save_seconds",
        Unit::Seconds,
        "Duration of one save attempt"
    );
    metrics::describe_histogram!("pjp_job_seconds", Unit::Seconds, "Time from pick to saved");
    metrics::describe_gauge!(
        "pjp_queue_depth",
        Unit::Count,
        "Jobs picked and waiting for a worker"
    );
    metrics::describe_gauge!("pjp_busy_workers", Unit::Count, "Workers executing a job");
    metrics::describe_gauge!(
        "pjp_jobs_claimed",
        Unit::Count,
        "Jobs held claimed by the runner"
    );
}
