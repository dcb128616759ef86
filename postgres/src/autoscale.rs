//! How many workers each kind of work needs: the planner of
//! [`pjp_core::autoscale`] over the queue's load report
//! ([`PgQueue::load`](crate::PgQueue::load)), for an autoscaler to apply.
//!
//! [`plan`] gives, per queue, kind and resource class, the workers
//! [`desired_workers`] asks for: the jobs queued and running, each taking
//! the p95 of how long the jobs that succeeded in the load's window ran
//! (the policy's fallback when none did). `pjp-prover status --plan` prints
//! it; a fleet worker with metrics publishes it as
//! `pjp_queue_desired_workers`.

use std::time::Duration;

pub use pjp_core::autoscale::{ScalePolicy, desired_workers};

use crate::admin::KindLoad;

/// The workers one queue, kind and class needs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScalePlan {
    /// The queue.
    pub queue: String,
    /// The kind (`""` for none).
    pub kind: String,
    /// The resource class (`""` for none).
    pub resource_class: String,
    /// Jobs queued and running.
    pub work: u64,
    /// The job duration the plan used: the p95 measured, or the fallback.
    pub duration: Duration,
    /// Whether `duration` was measured (false: the policy's fallback).
    pub measured: bool,
    /// Workers wanted.
    pub desired: u32,
}

/// The plan for every queue, kind and class of a load report.
pub fn plan(load: &[KindLoad], policy: &ScalePolicy) -> Vec<ScalePlan> {
    load.iter()
        .map(|l| {
            let work = u64::try_from(l.queued.saturating_add(l.running)).unwrap_or(0);
            ScalePlan {
                queue: l.queue.clone(),
                kind: l.kind.clone(),
                resource_class: l.resource_class.clone(),
                work,
                duration: l.p95_duration.unwrap_or(policy.fallback_duration),
                measured: l.p95_duration.is_some(),
                desired: desired_workers(work, l.p95_duration, policy),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScalePolicy {
        ScalePolicy::new(Duration::from_secs(100)).min(1).max(40)
    }

    #[test]
    fn no_measure_uses_the_fallback() {
        let policy = policy().fallback_duration(Duration::from_secs(20));
        // 10 × 20 s in 100 s.
        assert_eq!(desired_workers(10, None, &policy), 2);
        let load = KindLoad {
            queue: "proofs".to_owned(),
            kind: "basic".to_owned(),
            resource_class: "gpu".to_owned(),
            queued: 8,
            running: 2,
            oldest_queued: None,
            finished_last_minute: 0,
            p95_duration: None,
        };
        let plans = plan(std::slice::from_ref(&load), &policy);
        assert_eq!(plans.len(), 1);
        assert_eq!(
            (plans[0].work, plans[0].desired, plans[0].measured),
            (10, 2, false)
        );
        let measured = KindLoad {
            p95_duration: Some(Duration::from_secs(40)),
            ..load
        };
        let plans = plan(&[measured], &policy);
        assert_eq!((plans[0].desired, plans[0].measured), (4, true));
        assert_eq!(plans[0].duration, Duration::from_secs(40));
    }
}
