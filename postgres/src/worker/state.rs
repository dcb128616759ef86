//! What a worker's parts share: the leases it holds, its wake-ups, its
//! counters, and the handle they reach them through ([`WorkerShared`]).
//! The heartbeat, the listener, the pickers and the savers import this
//! module; it imports none of them, only the queue handle and the
//! configuration.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use bytes::Bytes;
use hdrhistogram::Histogram;
use pjp_core::{Job, LatencySummary};

use crate::config::WorkerConfig;
use crate::gate::ClaimGate;
use crate::job::PgJob;
use crate::queue::PgQueue;
use crate::worker::coalesce::Lines;

/// How long the worker's claim statements took, from asking the pool for a
/// connection to the answer (a wait at the [`ClaimGate`] not included), in
/// microseconds.
pub(crate) struct ClaimLatency(Mutex<Histogram<u64>>);

impl ClaimLatency {
    pub(crate) fn new() -> Self {
        // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 *
        // low, sigfig <= 5): this cannot fail at run time.
        #[allow(clippy::expect_used)]
        let histogram =
            Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds");
        Self(Mutex::new(histogram))
    }

    pub(crate) fn record(&self, took: std::time::Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros);
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if h.is_empty() {
            return LatencySummary::default();
        }
        let at = |q| std::time::Duration::from_micros(h.value_at_quantile(q));
        LatencySummary {
            count: h.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: std::time::Duration::from_micros(h.max()),
        }
    }
}

/// What a worker counted since it started ([`PgWorker::stats`](crate::PgWorker::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs claimed.
    pub claimed: u64,
    /// Jobs completed successfully.
    pub succeeded: u64,
    /// Executor failures saved (retried later, failed, or dead).
    pub failed: u64,
    /// Jobs handed back (shutdown, a cancelled execution, a save that gave up).
    pub released: u64,
    /// Writes rejected because another claim superseded this one.
    pub fenced: u64,
    /// Of `succeeded`: successes accepted although their claim had lost the
    /// job's lease ([`PgQueueBuilder::late_results`](crate::PgQueueBuilder::late_results)).
    pub late_accepted: u64,
    /// Leases the heartbeat found lost (the running jobs were cancelled).
    pub lost_leases: u64,
    /// Expired leases of other (dead) workers this worker returned to the queue.
    pub rescued: u64,
    /// Jobs dead-lettered by this worker (a missing payload, spent budgets).
    pub dead: u64,
    /// Heartbeat statements run: one per heartbeat interval, whatever the
    /// worker holds.
    pub heartbeats: u64,
    /// Rescue statements run: one per rescue interval while the worker holds
    /// the schema's rescuer role, none otherwise (and one per
    /// [`rescue_now`](crate::PgWorker::rescue_now)).
    pub rescues: u64,
    /// Heartbeat or rescue statements that failed (retried next interval).
    pub heartbeat_errors: u64,
    /// Notifications received.
    pub notifications: u64,
    /// Picks that found nothing and waited for a notification.
    pub idle_waits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) claimed: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) fenced: AtomicU64,
    pub(crate) late_accepted: AtomicU64,
    pub(crate) lost_leases: AtomicU64,
    pub(crate) rescued: AtomicU64,
    pub(crate) dead: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) rescues: AtomicU64,
    pub(crate) heartbeat_errors: AtomicU64,
    pub(crate) notifications: AtomicU64,
    pub(crate) idle_waits: AtomicU64,
    /// Jobs handed back to the queue (released, or put back after an
    /// infrastructure failure) and not finished by this worker since.
    handed_back: Mutex<BTreeSet<i64>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records jobs the database confirmed back in the queue.
    pub(crate) fn handed_back(&self, ids: impl IntoIterator<Item = i64>) {
        self.handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(ids);
    }

    /// Records a job this worker finished (it is no longer handed back).
    pub(crate) fn finished(&self, id: i64) {
        self.handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// The jobs handed back and not finished since, in id order.
    pub(crate) fn handed_back_ids(&self) -> Vec<i64> {
        self.handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }

    pub(crate) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            claimed: get(&self.claimed),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            released: get(&self.released),
            fenced: get(&self.fenced),
            late_accepted: get(&self.late_accepted),
            lost_leases: get(&self.lost_leases),
            rescued: get(&self.rescued),
            dead: get(&self.dead),
            heartbeats: get(&self.heartbeats),
            rescues: get(&self.rescues),
            heartbeat_errors: get(&self.heartbeat_errors),
            notifications: get(&self.notifications),
            idle_waits: get(&self.idle_waits),
        }
    }
}

/// The leases this worker holds: every job claimed and not yet completed or
/// released, wherever it is (prefetched, executing, waiting to be saved);
/// and the executions that go on past a lost lease because their success
/// may still be accepted late (see [`Leases::run_late`]).
#[derive(Debug, Default)]
pub(crate) struct Leases(Mutex<LeaseMaps>);

#[derive(Debug, Default)]
struct LeaseMaps {
    held: HashMap<i64, i64>,
    late: HashMap<i64, i64>,
}

impl Leases {
    fn maps(&self) -> MutexGuard<'_, LeaseMaps> {
        // The maps stay consistent whatever panicked while holding them.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn hold(&self, jobs: impl IntoIterator<Item = (i64, i64)>) {
        self.maps().held.extend(jobs);
    }

    /// Forgets a lease (held or running late) if it is still the one with
    /// `token`; returns whether it was.
    pub(crate) fn drop_lease(&self, id: i64, token: i64) -> bool {
        let mut maps = self.maps();
        let late = maps.late.get(&id) == Some(&token) && maps.late.remove(&id).is_some();
        let held = maps.held.get(&id) == Some(&token) && maps.held.remove(&id).is_some();
        late || held
    }

    pub(crate) fn holds(&self, id: i64, token: i64) -> bool {
        self.maps().held.get(&id) == Some(&token)
    }

    /// A held lease was lost but its execution goes on: its success may
    /// still complete the job late. No longer extended; watched instead
    /// until the job finishes under another claim.
    pub(crate) fn run_late(&self, id: i64, token: i64) {
        let mut maps = self.maps();
        if maps.held.get(&id) == Some(&token) {
            maps.held.remove(&id);
            maps.late.insert(id, token);
        }
    }

    /// Forgets an execution running late if it still is (`token`); returns
    /// whether it was.
    pub(crate) fn drop_late(&self, id: i64, token: i64) -> bool {
        let mut maps = self.maps();
        if maps.late.get(&id) == Some(&token) {
            maps.late.remove(&id);
            true
        } else {
            false
        }
    }

    /// The held leases, by id.
    pub(crate) fn snapshot(&self) -> (Vec<i64>, Vec<i64>) {
        sorted(&self.maps().held)
    }

    /// The executions running late, by id.
    pub(crate) fn late(&self) -> (Vec<i64>, Vec<i64>) {
        sorted(&self.maps().late)
    }

    pub(crate) fn len(&self) -> usize {
        self.maps().held.len()
    }
}

fn sorted(map: &HashMap<i64, i64>) -> (Vec<i64>, Vec<i64>) {
    let mut pairs: Vec<(i64, i64)> = map.iter().map(|(i, t)| (*i, *t)).collect();
    pairs.sort_unstable();
    pairs.into_iter().unzip()
}

/// Wake-ups per queue name: bumped by the listener on a notification.
#[derive(Debug, Default)]
pub(crate) struct Wakeups(Mutex<HashMap<String, watch::Sender<u64>>>);

impl Wakeups {
    pub(crate) fn subscribe(&self, queue: &str) -> watch::Receiver<u64> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(queue.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub(crate) fn wake(&self, queue: &str) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = map.get(queue) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    pub(crate) fn wake_all(&self) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for sender in map.values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// What a worker's pickers and savers hold: its queue and configuration,
/// and what they share with its heartbeat and listener.
pub(crate) struct WorkerShared {
    pub(crate) queue: PgQueue,
    pub(crate) config: WorkerConfig,
    pub(crate) leases: Arc<Leases>,
    pub(crate) wakeups: Arc<Wakeups>,
    pub(crate) counters: Arc<Counters>,
    /// Limits the claims in flight, with
    /// [`WorkerConfig::adaptive_claims`](crate::WorkerConfig::adaptive_claims).
    pub(crate) claim_gate: Option<ClaimGate>,
    /// Pickers waiting at the gate, by claim: the one let in claims for
    /// its line too.
    pub(crate) claim_lines: Lines<Job<Bytes, PgJob>>,
    pub(crate) claim_latency: ClaimLatency,
    pub(crate) claim_server_latency: ClaimLatency,
    /// The listener and the maintenance task: aborted when the worker and
    /// every picker and saver made from it are gone. Held as handles only,
    /// so this module needs neither task's type.
    pub(crate) _tasks: Vec<AbortOnDropHandle<()>>,
    /// Stops the heartbeat's thread when the worker is gone.
    pub(crate) _heartbeat: tokio_util::sync::DropGuard,
}

impl WorkerShared {
    /// Forgets a lease once its job is written. When the worker then holds
    /// none, idle picks are woken: a picker told to exit when the queue is
    /// empty was waiting only for this worker's own jobs to finish.
    pub(crate) fn drop_lease(&self, id: i64, token: i64) {
        if self.leases.drop_lease(id, token) && self.leases.len() == 0 {
            self.wakeups.wake_all();
        }
    }
}
