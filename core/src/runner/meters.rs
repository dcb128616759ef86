//! Metric handles, registered once per run through the `metrics` facade.
//!
//! Registering up front keeps the per-job cost to a handle call (a no-op when no
//! recorder is installed).

use metrics::{Counter, Gauge, Histogram, Unit};

pub(crate) struct Meters {
    pub(crate) picked: Counter,
    pub(crate) succeeded: Counter,
    pub(crate) failed: Counter,
    pub(crate) released: Counter,
    pub(crate) save_retries: Counter,
    pub(crate) pick_errors: Counter,
    pub(crate) pick_seconds: Histogram,
    pub(crate) exec_seconds: Histogram,
    pub(crate) save_seconds: Histogram,
    pub(crate) job_seconds: Histogram,
    pub(crate) queue_depth: Gauge,
    pub(crate) busy_workers: Gauge,
    pub(crate) claimed: Gauge,
}

impl Meters {
    pub(crate) fn new(stage: &str) -> Self {
        describe();
        let stage = stage.to_owned();
        Self {
            picked: metrics::counter!("pjp_jobs_picked_total", "stage" => stage.clone()),
            succeeded: metrics::counter!("pjp_jobs_succeeded_total", "stage" => stage.clone()),
            failed: metrics::counter!("pjp_jobs_failed_total", "stage" => stage.clone()),
            released: metrics::counter!("pjp_jobs_released_total", "stage" => stage.clone()),
            save_retries: metrics::counter!("pjp_save_retries_total", "stage" => stage.clone()),
            pick_errors: metrics::counter!("pjp_pick_errors_total", "stage" => stage.clone()),
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
    metrics::describe_counter!("pjp_jobs_picked_total", Unit::Count, "Jobs picked");
    metrics::describe_counter!(
        "pjp_jobs_succeeded_total",
        Unit::Count,
        "Jobs saved with an output"
    );
    metrics::describe_counter!(
        "pjp_jobs_failed_total",
        Unit::Count,
        "Jobs saved with a failure (error, panic or timeout)"
    );
    metrics::describe_counter!(
        "pjp_jobs_released_total",
        Unit::Count,
        "Jobs released back to the picker"
    );
    metrics::describe_counter!(
        "pjp_save_retries_total",
        Unit::Count,
        "Failed save attempts that were retried"
    );
    metrics::describe_counter!("pjp_pick_errors_total", Unit::Count, "Picker errors");
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
