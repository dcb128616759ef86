//! How the fleet's nodes keep their leases, and what it costs the queue:
//! statements by kind and how late each heartbeat reaches the queue.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Where a node's heartbeat runs and what one beat sends
/// ([`Fleet::liveness`](super::Fleet::liveness)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Liveness {
    /// One statement per node per interval, covering every lease the node
    /// holds, from a thread of its own that jobs cannot block (how
    /// `pjp-postgres`'s worker beats).
    #[default]
    PerProcess,
    /// One statement per lease held, per interval: the queue's load grows
    /// with the jobs in flight, not with the workers.
    PerJob,
    /// One statement per node per interval, but the beat needs one of the
    /// node's cores (a heartbeat on the runtime its executors block): with
    /// [`Fleet::cpu_bound`](super::Fleet::cpu_bound) jobs it waits behind
    /// them.
    SharedCores,
}

/// Statements that reached the queue over the whole run, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueCalls {
    /// Claims (one per `pick` or `pick_many`).
    pub picks: u64,
    /// Saves of a result.
    pub saves: u64,
    /// Releases of a claim.
    pub releases: u64,
    /// Heartbeat statements (one per beat, or one per lease held with
    /// [`Liveness::PerJob`]).
    pub heartbeats: u64,
}

impl QueueCalls {
    /// Every statement.
    pub fn total(&self) -> u64 {
        self.picks + self.saves + self.releases + self.heartbeats
    }
}

/// How late heartbeats reached the queue: from the beat's due time to its
/// statement's arrival (waiting for a core, if it needs one, plus half the
/// round trip).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatDelay {
    /// Beats that reached the queue.
    pub beats: u64,
    /// Median delay.
    pub p50: Duration,
    /// 99th-percentile delay.
    pub p99: Duration,
    /// The longest delay.
    pub max: Duration,
}

/// What a call is, for the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    Pick,
    Save,
    Release,
    /// A beat that stands for this many statements.
    Heartbeat(u64),
}

/// The fleet-wide statement counters and heartbeat delays.
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    picks: AtomicU64,
    saves: AtomicU64,
    releases: AtomicU64,
    heartbeats: AtomicU64,
    delays: Mutex<Vec<Duration>>,
}

impl CallStats {
    pub(crate) fn count(&self, call: Call) {
        let (counter, n) = match call {
            Call::Pick => (&self.picks, 1),
            Call::Save => (&self.saves, 1),
            Call::Release => (&self.releases, 1),
            Call::Heartbeat(n) => (&self.heartbeats, n),
        };
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn heartbeat_arrived(&self, late: Duration) {
        self.delays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(late);
    }

    pub(crate) fn calls(&self) -> QueueCalls {
        QueueCalls {
            picks: self.picks.load(Relaxed),
            saves: self.saves.load(Relaxed),
            releases: self.releases.load(Relaxed),
            heartbeats: self.heartbeats.load(Relaxed),
        }
    }

    pub(crate) fn heartbeat_delay(&self) -> HeartbeatDelay {
        let mut delays = self
            .delays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        delays.sort_unstable();
        let at = |q: f64| {
            delays
                .len()
                .checked_sub(1)
                .and_then(|last| delays.get((last as f64 * q).round() as usize))
                .copied()
                .unwrap_or_default()
        };
        HeartbeatDelay {
            beats: delays.len() as u64,
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}
