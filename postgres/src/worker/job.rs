//! [`PgJob`]: a claimed job's identity, carried by every write for it.

use pjp_core::{JobId, JobKind, JobMeta};

/// A claimed job's identity: its id and the fencing token of this claim.
///
/// Every write the worker makes for the job (complete, fail, release,
/// heartbeat) carries both; a write whose token no longer matches changes
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PgJob {
    /// The job's row id.
    pub id: i64,
    /// The fencing token of this claim.
    pub token: i64,
    /// Executor failures the job had used before this claim.
    pub attempts: i32,
    /// Leases the job had lost before this claim.
    pub lost_leases: i32,
    /// Its kind ([`NewJob::kind`](crate::NewJob::kind)).
    pub kind: JobKind,
    /// Its batch ([`NewJob::batch`](crate::NewJob::batch)).
    pub batch: i64,
}

impl JobMeta for PgJob {
    fn job_id(&self) -> JobId {
        JobId::new(u64::try_from(self.id).unwrap_or_default())
    }

    fn attempt(&self) -> u32 {
        u32::try_from(self.attempts).unwrap_or(0).saturating_add(1)
    }
}
