//! [`QueueError`]: everything that can go wrong talking to the queue.

use pjp_core::ErrorClass;

/// Why a queue call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The database refused or dropped the call.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database could not be reached within the connect wait.
    #[error("cannot reach the database at {host}:{port} (waited {waited:?}): {source}")]
    Unreachable {
        /// The host connected to.
        host: String,
        /// The port connected to.
        port: u16,
        /// How long `connect` kept retrying.
        waited: std::time::Duration,
        /// The last attempt's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The schema holds no queue tables yet.
    #[error(
        "schema `{schema}` has no pjp-postgres tables: run `PgQueue::migrate` (or `pjp-prover migrate`) first"
    )]
    NotMigrated {
        /// The schema that was looked in.
        schema: String,
    },
    /// The schema was migrated by a different version of this library.
    #[error(
        "schema `{schema}` is at version {found}, this library needs version {expected}: {hint}"
    )]
    SchemaVersion {
        /// The schema that was looked in.
        schema: String,
        /// The newest migration applied to it.
        found: i64,
        /// The newest migration this library ships.
        expected: i64,
        /// What to do about it.
        hint: &'static str,
    },
    /// A name, priority or limit that the queue cannot take.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// What was invalid (`queue name`, `priority`, …).
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The object store failed.
    #[error("object store error for `{key}`: {source}")]
    Store {
        /// The key that was read or written.
        key: String,
        /// What the store said.
        #[source]
        source: object_store::Error,
    },
    /// The object store URL could not be opened.
    #[error("cannot open object store `{url}`: {why}")]
    StoreUrl {
        /// The URL as given.
        url: String,
        /// Why.
        why: String,
    },
    /// A collection of orphan blobs found blobs of no queue identity under
    /// its schema's prefix, and deleted nothing
    /// ([`CollectOptions::ignore_unowned`](crate::CollectOptions::ignore_unowned)).
    #[error(
        "the store holds {count} blob(s) under `{prefix}/` that belong to no queue identity (e.g. `{example}`): nothing was deleted; move them away, or run with ignore_unowned (`--ignore-unowned`) to leave them alone"
    )]
    UnownedBlobs {
        /// The prefix listed (the schema's name).
        prefix: String,
        /// How many such blobs.
        count: u64,
        /// One of their keys.
        example: String,
    },
    /// A batch statement failed; every job of the batch gets a copy.
    #[error("{message}")]
    Batch {
        /// The statement's error.
        message: String,
        /// Its class.
        class: ErrorClass,
    },
    /// The job's claim was superseded: its lease expired and it was rescued
    /// or claimed again, or it was cancelled. The write was not applied.
    #[error(
        "job {id}: lease lost (held token {held}, the job is now at token {current} and {status})"
    )]
    Fenced {
        /// The job.
        id: i64,
        /// The token this worker claimed.
        held: i64,
        /// The job's token now (-1 if the row is gone).
        current: i64,
        /// The job's status now.
        status: String,
    },
}

impl QueueError {
    pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            why: why.into(),
        }
    }

    /// What this error means for the runner: a fenced write is a lost claim,
    /// a dropped connection, a deadlock or a serialization failure is worth
    /// retrying, the rest is permanent.
    ///
    /// ```
    /// use pjp_core::ErrorClass;
    /// use pjp_postgres::QueueError;
    ///
    /// let fenced = QueueError::Fenced { id: 1, held: 2, current: 3, status: "running".into() };
    /// assert_eq!(fenced.class(), ErrorClass::LostClaim);
    /// ```
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Fenced { .. } => ErrorClass::LostClaim,
            Self::Batch { class, .. } => *class,
            Self::Database(error) => database_class(error),
            Self::Unreachable { .. } => ErrorClass::Transient,
            Self::Store { source, .. } => match source {
                object_store::Error::NotFound { .. }
                | object_store::Error::InvalidPath { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => ErrorClass::Permanent,
                _ => ErrorClass::Transient,
            },
            Self::Migrate(_)
            | Self::NotMigrated { .. }
            | Self::SchemaVersion { .. }
            | Self::Invalid { .. }
            | Self::StoreUrl { .. }
            | Self::UnownedBlobs { .. } => ErrorClass::Permanent,
        }
    }
}

/// SQLSTATE classes that a retry can fix: connection exceptions (08), a
/// transaction rollback such as a deadlock or serialization failure (40),
/// insufficient resources (53), operator intervention such as
/// `pg_terminate_backend` or a restart (57), system errors (58).
fn database_class(error: &sqlx::Error) -> ErrorClass {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let class = code.as_deref().map(|c| c.get(..2).unwrap_or(c));
            match class {
                Some("08" | "40" | "53" | "57" | "58") => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}
