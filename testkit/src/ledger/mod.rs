//! [`Ledger`]: records every pick, execution, save and release of every job,
//! and checks the runner's contract against what really happened.

mod wrap;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pjp_core::{JobId, JobMeta, Runtime};

pub use wrap::Recorded;

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The picker handed the job out.
    Picked,
    /// The executor started on it.
    Executed,
    /// The saver stored its result (`ok`: with an output).
    Saved {
        /// Whether the result was an output rather than a failure.
        ok: bool,
    },
    /// The runner handed it back to the picker.
    Released,
    /// A release failed: the claim is still held.
    ReleaseFailed,
}

impl EventKind {
    fn code(self) -> u8 {
        match self {
            Self::Picked => 1,
            Self::Executed => 2,
            Self::Saved { ok: true } => 3,
            Self::Saved { ok: false } => 4,
            Self::Released => 5,
            Self::ReleaseFailed => 6,
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// Position in the ledger, from 0.
    pub seq: u64,
    /// Time since the ledger was created (zero for an untimed ledger).
    pub at: Duration,
    /// The job.
    pub job: JobId,
    /// The attempt ([`JobMeta::attempt`]).
    pub attempt: u32,
    /// What happened.
    pub kind: EventKind,
}

/// A broken promise, found by the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Violation {
    /// The job is still claimed: picked, but neither saved nor released.
    Lost {
        /// The job.
        job: JobId,
        /// The attempt that holds it.
        attempt: u32,
    },
    /// The job was saved more than once.
    SavedTwice {
        /// The job.
        job: JobId,
        /// Saves recorded.
        saves: u32,
    },
    /// A result was saved for a job that was not claimed: never picked, or
    /// released before the save.
    SavedUnclaimed {
        /// The job.
        job: JobId,
        /// The attempt the save came from.
        attempt: u32,
    },
    /// A save came from an attempt whose claim had been superseded (a lease
    /// that expired and was handed to someone else): fencing failed.
    StaleSave {
        /// The job.
        job: JobId,
        /// The stale attempt.
        attempt: u32,
        /// The attempt holding the job.
        holder: u32,
    },
    /// The picker handed the job out again while it was still claimed, under
    /// the same or an older attempt.
    PickedWhileClaimed {
        /// The job.
        job: JobId,
        /// The attempt of the second pick.
        attempt: u32,
    },
    /// The picker handed out a job that was already saved.
    PickedAfterSave {
        /// The job.
        job: JobId,
        /// The attempt of the pick.
        attempt: u32,
    },
    /// The job was executed after it was released (and before any new pick).
    ExecutedAfterRelease {
        /// The job.
        job: JobId,
        /// The attempt that executed it.
        attempt: u32,
    },
    /// The job was executed without ever being picked.
    ExecutedUnpicked {
        /// The job.
        job: JobId,
    },
    /// A release named a job the releasing attempt did not hold.
    ReleasedUnclaimed {
        /// The job.
        job: JobId,
        /// The attempt that released it.
        attempt: u32,
    },
    /// A drain ended with the job released rather than saved.
    NotDrained {
        /// The job.
        job: JobId,
    },
    /// The job was expected to be saved and never was.
    NeverSaved {
        /// The job.
        job: JobId,
    },
}

impl Violation {
    /// The job the violation is about.
    pub fn job(&self) -> JobId {
        match self {
            Self::Lost { job, .. }
            | Self::SavedTwice { job, .. }
            | Self::SavedUnclaimed { job, .. }
            | Self::StaleSave { job, .. }
            | Self::PickedWhileClaimed { job, .. }
            | Self::PickedAfterSave { job, .. }
            | Self::ExecutedAfterRelease { job, .. }
            | Self::ExecutedUnpicked { job }
            | Self::ReleasedUnclaimed { job, .. }
            | Self::NotDrained { job }
            | Self::NeverSaved { job } => *job,
        }
    }

    fn order(&self) -> (JobId, u8) {
        let rank = match self {
            Self::Lost { .. } => 0,
            Self::SavedTwice { .. } => 1,
            Self::SavedUnclaimed { .. } => 2,
            Self::StaleSave { .. } => 3,
            Self::PickedWhileClaimed { .. } => 4,
            Self::PickedAfterSave { .. } => 5,
            Self::ExecutedAfterRelease { .. } => 6,
            Self::ExecutedUnpicked { .. } => 7,
            Self::ReleasedUnclaimed { .. } => 8,
            Self::NotDrained { .. } => 9,
            Self::NeverSaved { .. } => 10,
        };
        (self.job(), rank)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lost { job, attempt } => write!(
                f,
                "job {job} lost: attempt {attempt} picked it, nobody saved or released it"
            ),
            Self::SavedTwice { job, saves } => write!(f, "job {job} saved {saves} times"),
            Self::SavedUnclaimed { job, attempt } => write!(
                f,
                "job {job} saved by attempt {attempt} while not claimed (never picked, or released)"
            ),
            Self::StaleSave {
                job,
                attempt,
                holder,
            } => write!(
                f,
                "job {job} saved by stale attempt {attempt} while attempt {holder} held it"
            ),
            Self::PickedWhileClaimed { job, attempt } => write!(
                f,
                "job {job} handed out again (attempt {attempt}) while still claimed"
            ),
            Self::PickedAfterSave { job, attempt } => write!(
                f,
                "job {job} handed out again (attempt {attempt}) after it was saved"
            ),
            Self::ExecutedAfterRelease { job, attempt } => {
                write!(
                    f,
                    "job {job} executed by attempt {attempt} after its release"
                )
            }
            Self::ExecutedUnpicked { job } => write!(f, "job {job} executed but never picked"),
            Self::ReleasedUnclaimed { job, attempt } => write!(
                f,
                "job {job} released by attempt {attempt}, which did not hold it"
            ),
            Self::NotDrained { job } => {
                write!(f, "job {job} was released during a drain instead of saved")
            }
            Self::NeverSaved { job } => write!(f, "job {job} was never saved"),
        }
    }
}

/// The ledger found broken promises.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} ledger violation(s): {}", violations.len(), list(violations))]
#[non_exhaustive]
pub struct LedgerError {
    /// Every violation, sorted by job.
    pub violations: Vec<Violation>,
    /// The counts at the time of the check.
    pub summary: LedgerSummary,
}

fn list(violations: &[Violation]) -> String {
    const SHOWN: usize = 8;
    let mut text = violations
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if violations.len() > SHOWN {
        text.push_str(&format!("; and {} more", violations.len() - SHOWN));
    }
    text
}

/// What the ledger counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LedgerSummary {
    /// Distinct jobs seen.
    pub jobs: u64,
    /// Picks (a job picked twice counts twice).
    pub picks: u64,
    /// Executions started.
    pub executions: u64,
    /// Distinct jobs saved.
    pub saved: u64,
    /// Of `saved`: saved with an output (by their first save).
    pub succeeded: u64,
    /// Of `saved`: saved with a failure (by their first save).
    pub failed: u64,
    /// Releases.
    pub released: u64,
    /// Picks that superseded an expired claim (a lease handed out again).
    pub reclaimed: u64,
    /// Saves beyond the first of a job.
    pub duplicated: u64,
    /// Jobs claimed right now: picked, neither saved nor released.
    pub lost: u64,
    /// A digest of every event in order (kind, job, attempt, time): the same
    /// run gives the same digest.
    pub digest: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Track {
    holder: Option<u32>,
    picks: u32,
    saves: u32,
    /// Released and not picked since.
    released: bool,
    /// When the current claim was picked.
    picked_at: Duration,
    /// From the pick of the saving attempt to the first save.
    latency: Option<Duration>,
    first_ok: Option<bool>,
}

#[derive(Debug)]
struct State {
    jobs: HashMap<JobId, Track>,
    events: Vec<Event>,
    keep_events: bool,
    seq: u64,
    digest: u64,
    violations: Vec<Violation>,
    picks: u64,
    executions: u64,
    saved: u64,
    succeeded: u64,
    failed: u64,
    released: u64,
    reclaimed: u64,
    duplicated: u64,
    claimed: u64,
}

/// FNV-1a's offset basis: the digest of an empty trace.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Extends an FNV-1a digest with `bytes` (the `fnv` crate's hasher, resumed).
fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::with_key(hash);
    hasher.write(bytes);
    hasher.finish()
}

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Records what happened to every job and checks the runner's contract.
///
/// Wrap the *real* picker and saver (closest to the source, under any fault
/// or latency wrapper) and the executor with `with_ledger`
/// ([`PickerExt`](crate::PickerExt), [`SaverExt`](crate::SaverExt),
/// [`ExecutorExt`](crate::ExecutorExt)), run, then [`check`](Self::check):
///
///  ```
///  use pjp_core::{JobRunner, Shutdown};
///  use pjp_testkit::{ExecutorExt, Ledger, MemoryQueue, PickerExt, SaverExt, Workload};
///
///  # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
///  # async fn main() -> anyhow::Result<()> {
///  let runtime = pjp_runtime_tokio::TokioRuntime::current();
///  let ledger = Ledger::timed(&runtime);
///  let queue: MemoryQueue<u64, u64, String> = MemoryQueue::closed_with(0..100);
///  let runner = JobRunner::builder(
///      queue.picker().with_ledger(&ledger),
///      Workload::noop().with_ledger(&ledger),
///      queue.saver().with_ledger(&ledger),
///  )
///  .workers(2)
///  .build()?;
///  runner.run(&runtime, Shutdown::new()).await?;
///  let summary = ledger.check()?; // nothing lost, nothing saved twice, …
///  assert_eq!((summary.picks, summary.saved, summary.lost), (100, 100, 0));
///  # Ok(())
///  # }
///  ```
///
/// Cheap to clone (clones share the record). The checks:
///
/// * **nothing lost**: at the end no job is still claimed ([`Violation::Lost`]);
/// * **nothing saved twice** ([`Violation::SavedTwice`]);
/// * **nothing saved that was not picked** ([`Violation::SavedUnclaimed`],
///   [`Violation::StaleSave`]);
/// * **no job handed out twice** ([`Violation::PickedWhileClaimed`],
///   [`Violation::PickedAfterSave`]); a pick under a *higher* attempt takes
///   over an expired lease and is counted as reclaimed, not as a violation;
/// * **released jobs are never executed after the release**
///   ([`Violation::ExecutedAfterRelease`]);
/// * **a drain completes**: [`check_drained`](Self::check_drained) also
///   requires that nothing was released.
///
/// Metadata without attempt numbers (attempt always 1) works, but then the
/// ledger cannot tell an expired lease from a double hand-out.
#[derive(Clone)]
pub struct Ledger {
    state: Arc<Mutex<State>>,
    clock: Option<(Clock, Instant)>,
    enabled: bool,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("summary", &self.summary())
            .field("timed", &self.clock.is_some())
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    /// A ledger without a clock: events are ordered but carry no time, and
    /// [`job_latencies`](Self::job_latencies) are zero.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                jobs: HashMap::new(),
                events: Vec::new(),
                keep_events: true,
                seq: 0,
                digest: FNV_OFFSET,
                violations: Vec::new(),
                picks: 0,
                executions: 0,
                saved: 0,
                succeeded: 0,
                failed: 0,
                released: 0,
                reclaimed: 0,
                duplicated: 0,
                claimed: 0,
            })),
            clock: None,
            enabled: true,
        }
    }

    /// A ledger that records nothing (every check passes, every count is
    /// zero): lets one wiring serve both checked runs and throughput
    /// measurements, where the bookkeeping would be measured too.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::new()
        }
    }

    /// Whether this ledger records (false for [`disabled`](Self::disabled)).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// A ledger that timestamps events with `runtime`'s clock (virtual under
    /// simulation, so the digest covers timing too).
    pub fn timed<R: Runtime>(runtime: &R) -> Self {
        let runtime = runtime.clone();
        let epoch = runtime.now();
        Self {
            clock: Some((Arc::new(move || runtime.now()), epoch)),
            ..Self::new()
        }
    }

    /// Stops keeping the event list (counts, checks and the digest go on):
    /// for long runs where memory matters.
    pub fn without_event_log(self) -> Self {
        self.lock().keep_events = false;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        match &self.clock {
            Some((clock, epoch)) => clock().saturating_duration_since(*epoch),
            None => Duration::ZERO,
        }
    }

    fn record(&self, meta: &impl JobMeta, kind: EventKind) {
        if !self.enabled {
            return;
        }
        let at = self.now();
        let (job, attempt) = (meta.job_id(), meta.attempt());
        let mut state = self.lock();
        state.apply(job, attempt, kind, at);
    }

    /// Records that the picker handed out `meta`'s job.
    pub fn record_pick(&self, meta: &impl JobMeta) {
        self.record(meta, EventKind::Picked);
    }

    /// Records that execution of `meta`'s job started.
    pub fn record_execution(&self, meta: &impl JobMeta) {
        self.record(meta, EventKind::Executed);
    }

    /// Records that `meta`'s job was saved (`ok`: with an output).
    pub fn record_save(&self, meta: &impl JobMeta, ok: bool) {
        self.record(meta, EventKind::Saved { ok });
    }

    /// Records that `meta`'s job is being released. Call it *before* the
    /// release reaches the source (so that a re-pick cannot be recorded
    /// first), and [`record_release_failed`](Self::record_release_failed) if it
    /// then fails.
    pub fn record_release(&self, meta: &impl JobMeta) {
        self.record(meta, EventKind::Released);
    }

    /// Records that a release recorded with [`record_release`](Self::record_release)
    /// failed: the claim is still held.
    pub fn record_release_failed(&self, meta: &impl JobMeta) {
        self.record(meta, EventKind::ReleaseFailed);
    }

    /// The counts so far.
    pub fn summary(&self) -> LedgerSummary {
        self.lock().summary()
    }

    /// Every event so far, in order (empty after
    /// [`without_event_log`](Self::without_event_log)).
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// The digest of every event so far; see [`LedgerSummary::digest`].
    pub fn digest(&self) -> u64 {
        self.lock().digest
    }

    /// For each saved job, the time from the pick of the attempt that saved it
    /// to its first save, sorted by job id.
    pub fn job_latencies(&self) -> Vec<(JobId, Duration)> {
        let state = self.lock();
        let mut latencies: Vec<_> = state
            .jobs
            .iter()
            .filter_map(|(&job, track)| track.latency.map(|l| (job, l)))
            .collect();
        latencies.sort_unstable();
        latencies
    }

    /// The jobs claimed right now (picked, neither saved nor released), sorted.
    pub fn claimed(&self) -> Vec<JobId> {
        let state = self.lock();
        let mut jobs: Vec<_> = state
            .jobs
            .iter()
            .filter(|(_, t)| t.holder.is_some())
            .map(|(&job, _)| job)
            .collect();
        jobs.sort_unstable();
        jobs
    }

    /// The jobs saved at least once, sorted.
    pub fn saved_jobs(&self) -> Vec<JobId> {
        let state = self.lock();
        let mut jobs: Vec<_> = state
            .jobs
            .iter()
            .filter(|(_, t)| t.saves > 0)
            .map(|(&job, _)| job)
            .collect();
        jobs.sort_unstable();
        jobs
    }

    /// Checks every invariant, treating the run as over: a job still claimed
    /// is lost. Returns the counts if all hold.
    pub fn check(&self) -> Result<LedgerSummary, LedgerError> {
        self.check_with(|_, _| {})
    }

    /// [`check`](Self::check), and also that a drain completed: no job was
    /// released (a drain saves every picked job; only abandon releases).
    pub fn check_drained(&self) -> Result<LedgerSummary, LedgerError> {
        self.check_drained_except(&[])
    }

    /// [`check_drained`](Self::check_drained), allowing the release of the
    /// jobs in `gave_up`: a runner releases a job whose save gave up and goes
    /// on (the report's `save_gave_up`).
    pub fn check_drained_except(&self, gave_up: &[JobId]) -> Result<LedgerSummary, LedgerError> {
        let gave_up: std::collections::HashSet<JobId> = gave_up.iter().copied().collect();
        self.check_with(move |state, found| {
            let mut released: Vec<JobId> = state
                .jobs
                .iter()
                .filter(|(job, t)| t.released && t.saves == 0 && !gave_up.contains(job))
                .map(|(&job, _)| job)
                .collect();
            released.sort_unstable();
            found.extend(
                released
                    .into_iter()
                    .map(|job| Violation::NotDrained { job }),
            );
        })
    }

    /// [`check`](Self::check), and also that every job in `jobs` was saved.
    pub fn check_all_saved(
        &self,
        jobs: impl IntoIterator<Item = JobId>,
    ) -> Result<LedgerSummary, LedgerError> {
        let jobs: Vec<JobId> = jobs.into_iter().collect();
        self.check_with(move |state, found| {
            for &job in &jobs {
                if state.jobs.get(&job).is_none_or(|t| t.saves == 0) {
                    found.push(Violation::NeverSaved { job });
                }
            }
        })
    }

    fn check_with(
        &self,
        extra: impl FnOnce(&State, &mut Vec<Violation>),
    ) -> Result<LedgerSummary, LedgerError> {
        let state = self.lock();
        let mut found = state.violations.clone();
        found.extend(
            state
                .jobs
                .iter()
                .filter_map(|(&job, t)| t.holder.map(|attempt| Violation::Lost { job, attempt })),
        );
        extra(&state, &mut found);
        let summary = state.summary();
        drop(state);
        if found.is_empty() {
            return Ok(summary);
        }
        found.sort_by_key(Violation::order);
        found.dedup();
        Err(LedgerError {
            violations: found,
            summary,
        })
    }
}

impl State {
    fn summary(&self) -> LedgerSummary {
        LedgerSummary {
            jobs: self.jobs.len() as u64,
            picks: self.picks,
            executions: self.executions,
            saved: self.saved,
            succeeded: self.succeeded,
            failed: self.failed,
            released: self.released,
            reclaimed: self.reclaimed,
            duplicated: self.duplicated,
            lost: self.claimed,
            digest: self.digest,
        }
    }

    fn apply(&mut self, job: JobId, attempt: u32, kind: EventKind, at: Duration) {
        let seq = self.seq;
        self.seq += 1;
        let mut bytes = [0u8; 21];
        bytes[0] = kind.code();
        bytes[1..9].copy_from_slice(&job.get().to_le_bytes());
        bytes[9..13].copy_from_slice(&attempt.to_le_bytes());
        bytes[13..21].copy_from_slice(
            &u64::try_from(at.as_nanos())
                .unwrap_or(u64::MAX)
                .to_le_bytes(),
        );
        self.digest = fnv(self.digest, &bytes);
        if self.keep_events {
            self.events.push(Event {
                seq,
                at,
                job,
                attempt,
                kind,
            });
        }
        let track = self.jobs.entry(job).or_default();
        let mut violation = None;
        match kind {
            EventKind::Picked => {
                self.picks += 1;
                track.picks += 1;
                match track.holder {
                    None => {
                        if track.saves > 0 {
                            violation = Some(Violation::PickedAfterSave { job, attempt });
                        }
                        self.claimed += 1;
                        track.holder = Some(attempt);
                    }
                    Some(held) if attempt > held => {
                        // The earlier claim expired and the source handed the
                        // job out again: a lease, not a bug.
                        self.reclaimed += 1;
                        track.holder = Some(attempt);
                    }
                    Some(_) => {
                        violation = Some(Violation::PickedWhileClaimed { job, attempt });
                    }
                }
                track.released = false;
                track.picked_at = at;
            }
            EventKind::Executed => {
                self.executions += 1;
                if track.holder.is_none() && track.saves == 0 {
                    violation = Some(if track.released {
                        Violation::ExecutedAfterRelease { job, attempt }
                    } else {
                        Violation::ExecutedUnpicked { job }
                    });
                }
                // An execution by a superseded attempt (a slow worker whose
                // lease expired) is not a violation: only its save would be.
            }
            EventKind::Saved { ok } => {
                match track.holder {
                    Some(held) if held == attempt => {
                        track.holder = None;
                        self.claimed = self.claimed.saturating_sub(1);
                    }
                    Some(held) if track.saves == 0 => {
                        violation = Some(Violation::StaleSave {
                            job,
                            attempt,
                            holder: held,
                        });
                    }
                    None if track.saves == 0 => {
                        violation = Some(Violation::SavedUnclaimed { job, attempt });
                    }
                    _ => {}
                }
                track.saves += 1;
                if track.saves == 1 {
                    self.saved += 1;
                    if ok {
                        self.succeeded += 1;
                    } else {
                        self.failed += 1;
                    }
                    track.first_ok = Some(ok);
                    track.latency = Some(at.saturating_sub(track.picked_at));
                } else {
                    self.duplicated += 1;
                    violation = Some(Violation::SavedTwice {
                        job,
                        saves: track.saves,
                    });
                }
            }
            EventKind::Released => {
                if track.holder == Some(attempt) {
                    track.holder = None;
                    track.released = true;
                    self.released += 1;
                    self.claimed = self.claimed.saturating_sub(1);
                } else {
                    violation = Some(Violation::ReleasedUnclaimed { job, attempt });
                }
            }
            EventKind::ReleaseFailed => {
                if track.holder.is_none() && track.released {
                    track.holder = Some(attempt);
                    track.released = false;
                    self.released = self.released.saturating_sub(1);
                    self.claimed += 1;
                }
            }
        }
        if let Some(v) = violation {
            // SavedTwice is reported once per job, with the final count.
            if let Violation::SavedTwice { job, .. } = v {
                self.violations.retain(
                    |old| !matches!(old, Violation::SavedTwice { job: j, .. } if *j == job),
                );
            }
            self.violations.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueueMeta;

    fn meta(id: u64, attempt: u32) -> QueueMeta {
        QueueMeta {
            id: JobId::new(id),
            attempt,
        }
    }

    #[test]
    fn clean_history_passes() {
        let ledger = Ledger::new();
        ledger.record_pick(&meta(1, 1));
        ledger.record_execution(&meta(1, 1));
        ledger.record_save(&meta(1, 1), true);
        ledger.record_pick(&meta(2, 1));
        ledger.record_release(&meta(2, 1));
        ledger.record_pick(&meta(2, 2));
        ledger.record_execution(&meta(2, 2));
        ledger.record_save(&meta(2, 2), false);
        let summary = ledger
            .check_all_saved([JobId::new(1), JobId::new(2)])
            .unwrap();
        assert_eq!(
            (
                summary.picks,
                summary.saved,
                summary.failed,
                summary.released
            ),
            (3, 2, 1, 1)
        );
        // Job 2 was released, but picked again and saved: the drain completed.
        assert!(ledger.check_drained().is_ok());
    }

    #[test]
    fn each_broken_promise_is_reported() {
        let ledger = Ledger::new();
        ledger.record_pick(&meta(1, 1)); // never finished: lost
        ledger.record_pick(&meta(2, 1));
        ledger.record_save(&meta(2, 1), true);
        ledger.record_save(&meta(2, 1), true); // twice
        ledger.record_save(&meta(3, 1), true); // never picked
        ledger.record_pick(&meta(4, 1));
        ledger.record_pick(&meta(4, 1)); // handed out twice
        ledger.record_save(&meta(4, 1), true);
        ledger.record_pick(&meta(5, 1));
        ledger.record_release(&meta(5, 1));
        ledger.record_execution(&meta(5, 1)); // after release
        let err = ledger.check().unwrap_err();
        assert_eq!(
            err.violations,
            vec![
                Violation::Lost {
                    job: JobId::new(1),
                    attempt: 1
                },
                Violation::SavedTwice {
                    job: JobId::new(2),
                    saves: 2
                },
                Violation::SavedUnclaimed {
                    job: JobId::new(3),
                    attempt: 1
                },
                Violation::PickedWhileClaimed {
                    job: JobId::new(4),
                    attempt: 1
                },
                Violation::ExecutedAfterRelease {
                    job: JobId::new(5),
                    attempt: 1
                },
            ]
        );
        assert!(
            err.to_string()
                .starts_with("5 ledger violation(s): job 1 lost")
        );
    }

    #[test]
    fn expired_lease_is_reclaimed_and_stale_save_is_caught() {
        let ledger = Ledger::new();
        ledger.record_pick(&meta(7, 1));
        ledger.record_pick(&meta(7, 2)); // lease expired, handed out again
        ledger.record_save(&meta(7, 1), true); // the old holder saves: fencing failed
        ledger.record_save(&meta(7, 2), true);
        let err = ledger.check().unwrap_err();
        assert_eq!(err.summary.reclaimed, 1);
        assert_eq!(
            err.violations,
            vec![
                Violation::SavedTwice {
                    job: JobId::new(7),
                    saves: 2
                },
                Violation::StaleSave {
                    job: JobId::new(7),
                    attempt: 1,
                    holder: 2
                },
            ]
        );
    }

    #[test]
    fn drain_check_reports_releases_and_failed_release_restores_claim() {
        let ledger = Ledger::new();
        ledger.record_pick(&meta(1, 1));
        ledger.record_release(&meta(1, 1));
        assert_eq!(
            ledger.check_drained().unwrap_err().violations,
            vec![Violation::NotDrained { job: JobId::new(1) }]
        );
        ledger.record_pick(&meta(2, 1));
        ledger.record_release(&meta(2, 1));
        ledger.record_release_failed(&meta(2, 1));
        assert_eq!(ledger.claimed(), vec![JobId::new(2)]);
    }

    #[test]
    fn digest_depends_on_order() {
        let a = Ledger::new();
        a.record_pick(&meta(1, 1));
        a.record_pick(&meta(2, 1));
        let b = Ledger::new();
        b.record_pick(&meta(2, 1));
        b.record_pick(&meta(1, 1));
        assert_ne!(a.digest(), b.digest());
        let c = Ledger::new().without_event_log();
        c.record_pick(&meta(1, 1));
        c.record_pick(&meta(2, 1));
        assert_eq!(a.digest(), c.digest());
        assert!(c.events().is_empty());
    }
}
