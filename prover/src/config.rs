//! What a run of the component is told: the size of its jobs, its workers,
//! its injected faults and, for a fleet worker, where the PostgreSQL queue
//! is. Plain typed values with the defaults the command line shows; the
//! binary's flags are one way to fill them in.

use std::fmt;
use std::time::Duration;

use pjp_core::latency::LatencyProfile;
use pjp_gpu::BackendChoice;

use crate::circuit::FaultRates;
use crate::job::{SizeError, check_size};

/// A run of the reference prover.
///
/// Start from [`RunConfig::default`] and change what differs:
///
/// ```
/// use pjp_prover::RunConfig;
///
/// let mut config = RunConfig::default();
/// config.jobs = 20;
/// config.log_n = 10;
/// config.validate()?;
/// # Ok::<(), pjp_prover::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunConfig {
    /// Synthetic jobs seeded into the embedded queue (ignored by a fleet
    /// worker, whose jobs come from the PostgreSQL queue).
    pub jobs: u64,
    /// The embedded run as proof trees: every this many jobs are one
    /// batch's basic proofs under one aggregation. 0: flat jobs.
    pub circuits: u64,
    /// log2 of each polynomial's size.
    pub log_n: u32,
    /// Polynomials per job.
    pub batch: u64,
    /// Seed of the synthetic witnesses (and, through [`RunConfig::faults`],
    /// of the injected faults).
    pub seed: u64,
    /// Witness-generator workers (CPU).
    pub witness_workers: usize,
    /// Circuit-prover workers, each running one NTT job at a time.
    pub prover_workers: usize,
    /// The NTT backend.
    pub backend: BackendChoice,
    /// Injected failures and panics of the proving stage.
    pub faults: FaultRates,
    /// The embedded queue's modelled pick round trip.
    pub pick_latency: LatencyProfile,
    /// The embedded sink's modelled save round trip.
    pub save_latency: LatencyProfile,
    /// Picks in flight at once.
    pub pickers: usize,
    /// Jobs claimed per pick.
    pub pick_batch: usize,
    /// Jobs claimed ahead of the witness workers (at least `pick_batch`).
    pub prefetch: usize,
    /// Saves in flight at once, per stage.
    pub savers: usize,
    /// Results saved per call.
    pub save_batch: usize,
    /// Verify every k-th result with the inverse NTT (0: never).
    pub verify_every: u64,
    /// After the first signal, abandon once this much time has passed.
    pub grace_period: Option<Duration>,
    /// Record every task's spans, for a timeline of the run.
    pub record_timeline: bool,
    /// Serve this PostgreSQL queue instead of the embedded one.
    pub fleet: Option<FleetConfig>,
}

impl Default for RunConfig {
    fn default() -> Self {
        let no_latency = LatencyProfile::uniform(Duration::ZERO, Duration::ZERO);
        Self {
            jobs: 1000,
            circuits: 25,
            log_n: 18,
            batch: 8,
            seed: 1,
            witness_workers: 2,
            prover_workers: 1,
            backend: BackendChoice::Auto,
            faults: FaultRates::none(1),
            pick_latency: no_latency.clone(),
            save_latency: no_latency,
            pickers: 4,
            pick_batch: 8,
            prefetch: 32,
            savers: 4,
            save_batch: 16,
            verify_every: 10,
            grace_period: None,
            record_timeline: false,
            fleet: None,
        }
    }
}

/// A fleet worker's queue: the PostgreSQL database, its object store and
/// the worker's lease timings. Its `Debug` hides the URLs' passwords.
#[derive(Clone)]
#[non_exhaustive]
pub struct FleetConfig {
    /// The queue's database, e.g. `postgres://user@host:5432/db`.
    pub database_url: String,
    /// The schema the queue's tables live in.
    pub schema: String,
    /// The queue name within the schema.
    pub queue: String,
    /// How long to keep retrying a database that is not reachable yet.
    pub db_wait: Duration,
    /// Object store for results larger than `inline_limit`; without one
    /// every result stays in the table.
    pub store_url: Option<String>,
    /// Results up to this many bytes stay in the table.
    pub inline_limit: usize,
    /// Connections for claims and saves.
    pub connections: u32,
    /// The lease owner's name in the table (default: host-pid-random).
    pub worker_id: Option<String>,
    /// Stop once no job is queued or leased.
    pub exit_when_empty: bool,
    /// Whether this worker also closes batches (runs the aggregations).
    pub aggregates: bool,
    /// How often the worker extends its leases.
    pub heartbeat: Duration,
    /// How long a lease lasts past its latest heartbeat (must exceed
    /// `heartbeat`).
    pub lease_ttl: Duration,
    /// How often the worker returns dead workers' expired leases.
    pub rescue_interval: Duration,
    /// How long an idle pick waits for a notification before it polls
    /// (the worker's default when `None`).
    pub poll_interval: Option<Duration>,
    /// How `database_url` reaches PostgreSQL: straight (the default), or
    /// through a pooler in transaction mode (PgBouncer
    /// `pool_mode = transaction`).
    pub pooler: pjp_postgres::Pooler,
    /// Through a transaction pooler: a URL reaching the database without
    /// it, for the worker's `LISTEN` (without one the worker polls).
    pub direct_url: Option<String>,
    /// Keeps each claim within this latency by narrowing the worker's
    /// claims in flight when they slow down
    /// ([`WorkerConfig::adaptive_claims`](pjp_postgres::WorkerConfig::adaptive_claims));
    /// `None` (the default): every free picker claims.
    pub adaptive_claims: Option<Duration>,
}

impl FleetConfig {
    /// A worker on the queue at `database_url`, with the defaults the
    /// command line shows.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            schema: pjp_postgres::DEFAULT_SCHEMA.to_owned(),
            queue: "proofs".to_owned(),
            db_wait: Duration::from_secs(10),
            store_url: None,
            inline_limit: pjp_postgres::DEFAULT_INLINE_LIMIT,
            connections: 8,
            worker_id: None,
            exit_when_empty: false,
            aggregates: true,
            heartbeat: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(3),
            rescue_interval: Duration::from_millis(500),
            poll_interval: None,
            pooler: pjp_postgres::Pooler::None,
            direct_url: None,
            adaptive_claims: None,
        }
    }
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use pjp_postgres::redact_url;
        f.debug_struct("FleetConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("schema", &self.schema)
            .field("queue", &self.queue)
            .field("db_wait", &self.db_wait)
            .field("store_url", &self.store_url.as_deref().map(redact_url))
            .field("inline_limit", &self.inline_limit)
            .field("connections", &self.connections)
            .field("worker_id", &self.worker_id)
            .field("exit_when_empty", &self.exit_when_empty)
            .field("aggregates", &self.aggregates)
            .field("heartbeat", &self.heartbeat)
            .field("lease_ttl", &self.lease_ttl)
            .field("pooler", &self.pooler)
            .field("direct_url", &self.direct_url.as_deref().map(redact_url))
            .field("rescue_interval", &self.rescue_interval)
            .field("poll_interval", &self.poll_interval)
            .field("adaptive_claims", &self.adaptive_claims)
            .finish()
    }
}

/// A [`RunConfig`] whose values cannot run together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A job would be too large.
    #[error(transparent)]
    Size(#[from] SizeError),
    /// A count that must be at least one is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The lease would lapse between two heartbeats of a live worker.
    #[error(
        "the lease TTL ({lease_ttl:?}) must exceed the heartbeat interval ({heartbeat:?}), or live workers lose their jobs"
    )]
    LeaseWithinHeartbeat {
        /// The lease TTL asked for.
        lease_ttl: Duration,
        /// The heartbeat interval asked for.
        heartbeat: Duration,
    },
    /// A claimed batch would not fit in the prefetch buffer.
    #[error(
        "the pick batch ({pick_batch}) exceeds the prefetch ({prefetch}): a claimed batch must fit in the prefetch buffer"
    )]
    PickBatchOverPrefetch {
        /// Jobs per pick.
        pick_batch: usize,
        /// Jobs claimed ahead.
        prefetch: usize,
    },
    /// A fault rate is not a fraction between 0 and 1.
    #[error("the {name} ({value}) is not a fraction between 0 and 1")]
    NotAFraction {
        /// Which rate.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The fault rates add up to more than every job.
    #[error("the fail rate ({fail}) plus the panic rate ({panic}) exceeds 1")]
    FaultRatesOverOne {
        /// The fail rate.
        fail: f64,
        /// The panic rate.
        panic: f64,
    },
}

impl RunConfig {
    /// Checks the combinations a run cannot serve. [`crate::Component::new`]
    /// checks too, so a bad config fails before any work starts.
    ///
    /// # Errors
    ///
    /// The first value that cannot run, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, count) in [
            ("witness_workers", self.witness_workers),
            ("prover_workers", self.prover_workers),
            ("pickers", self.pickers),
            ("pick_batch", self.pick_batch),
            ("prefetch", self.prefetch),
            ("savers", self.savers),
            ("save_batch", self.save_batch),
        ] {
            if count == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.pick_batch > self.prefetch {
            return Err(ConfigError::PickBatchOverPrefetch {
                pick_batch: self.pick_batch,
                prefetch: self.prefetch,
            });
        }
        let FaultRates { fail, panic, .. } = self.faults;
        for (name, value) in [("fail rate", fail), ("panic rate", panic)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::NotAFraction { name, value });
            }
        }
        if fail + panic > 1.0 {
            return Err(ConfigError::FaultRatesOverOne { fail, panic });
        }
        if let Some(fleet) = &self.fleet {
            if fleet.lease_ttl <= fleet.heartbeat {
                return Err(ConfigError::LeaseWithinHeartbeat {
                    lease_ttl: fleet.lease_ttl,
                    heartbeat: fleet.heartbeat,
                });
            }
            if fleet.connections == 0 {
                return Err(ConfigError::Zero("connections"));
            }
        }
        Ok(check_size(self.batch, self.log_n)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        assert_eq!(RunConfig::default().validate(), Ok(()));
    }

    #[test]
    fn bad_combinations_are_refused() {
        let config = RunConfig {
            pick_batch: 64,
            ..RunConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PickBatchOverPrefetch { .. })
        ));

        let mut config = RunConfig::default();
        config.faults.fail = 0.7;
        config.faults.panic = 0.4;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::FaultRatesOverOne { .. })
        ));
        config.faults.fail = f64::NAN;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::NotAFraction { .. })
        ));

        let config = RunConfig {
            prover_workers: 0,
            ..RunConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::Zero("prover_workers")));

        let mut fleet = FleetConfig::new("postgres://u@h/db");
        fleet.lease_ttl = fleet.heartbeat;
        let config = RunConfig {
            fleet: Some(fleet),
            ..RunConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::LeaseWithinHeartbeat { .. })
        ));

        let config = RunConfig {
            log_n: 24,
            batch: 1024,
            ..RunConfig::default()
        };
        assert!(matches!(config.validate(), Err(ConfigError::Size(_))));
    }

    #[test]
    fn debug_hides_the_password() {
        let mut fleet = FleetConfig::new("postgres://u:hunter2@h/db");
        fleet.store_url = Some("http://u:hunter2@store:9000/b".to_owned());
        assert!(!format!("{fleet:?}").contains("hunter2"), "{fleet:?}");
    }
}
