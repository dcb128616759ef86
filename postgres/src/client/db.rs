//! [`Db`]: the queue's connection pool, straight to the server or through a
//! connection pooler in transaction mode ([`Pooler`]).
//!
//! Through a transaction pooler (PgBouncer `pool_mode = transaction`) a
//! client connection is lent a server connection for one transaction at a
//! time, so nothing may outlive a transaction: no session settings, no
//! session locks, no prepared statement reused later. sqlx runs a statement
//! with bind parameters in two protocol exchanges (parse and describe, then
//! bind and execute), each ended by a `Sync`; between them the pooler may
//! hand the client another server, which does not have the statement (or has
//! another client's unnamed one). So, in [`Pooler::Transaction`] mode, every
//! statement the queue runs on its pool runs inside a transaction of its own
//! (the server stays lent until `COMMIT`), as an unnamed statement, and the
//! connection options ask for no statement cache (see
//! [`connect_options`]). A statement then costs four round trips to the
//! pooler instead of one.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, PgPool, Postgres, Transaction};

/// How a queue's connections reach PostgreSQL
/// ([`PgQueueBuilder::pooler`](crate::PgQueueBuilder::pooler)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pooler {
    /// Straight to the server, or through a pooler in session mode: each
    /// statement is prepared once per connection and reused, and the
    /// worker's notification listener uses the same address.
    #[default]
    None,
    /// Through a pooler in transaction mode (PgBouncer
    /// `pool_mode = transaction`, any version): every statement runs in a
    /// transaction of its own, unprepared, and the queue keeps no session
    /// state. `LISTEN` cannot work through such a pooler: the worker listens
    /// on the [`direct_url`](crate::PgQueueBuilder::direct_url) when one is
    /// given, and polls every poll interval otherwise.
    /// [`PgQueue::migrate`](crate::PgQueue::migrate) needs the direct URL.
    Transaction,
}

impl Pooler {
    /// Parses `none` / `direct` or `transaction` (the command line's
    /// `--pooler`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" | "direct" => Some(Self::None),
            "transaction" => Some(Self::Transaction),
            _ => None,
        }
    }
}

impl std::fmt::Display for Pooler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Transaction => "transaction",
        })
    }
}

/// `options` adjusted for `pooler`. Through a transaction pooler: no
/// statement cache (a statement prepared in one transaction is gone, or
/// another client's, in the next), and no startup parameters a pooler does
/// not know (PgBouncer refuses a connection that sends one it does not
/// track, `extra_float_digits` or `options` among them, unless told to
/// ignore it). Straight to the server: every plan is custom, so that
/// statements can be prepared once per connection (one round trip per call,
/// not two) without PostgreSQL switching one to a generic plan after five
/// runs. Through the pooler no statement is reused, so every plan is custom
/// anyway.
pub(crate) fn connect_options(options: PgConnectOptions, pooler: Pooler) -> PgConnectOptions {
    match pooler {
        Pooler::None => options.options([("plan_cache_mode", "force_custom_plan")]),
        Pooler::Transaction => options.statement_cache_capacity(0).extra_float_digits(None),
    }
}

/// Opens a transaction on a connection of a transaction pooler, first
/// dropping statements sqlx prepared under its own names (`sqlx_s_…`) that
/// an earlier transaction left on the server it was lent: inside a
/// transaction sqlx names the statements it prepares, and a name another
/// client's connection left behind would collide with one of this
/// transaction's. Other clients' statements are left alone. One round trip,
/// as a plain `BEGIN`.
const BEGIN_POOLED: &str = "BEGIN; DO $pjp$
    DECLARE s text;
    BEGIN
        FOR s IN SELECT name FROM pg_prepared_statements WHERE name LIKE 'sqlx\\_s\\_%' LOOP
            EXECUTE format('DEALLOCATE %I', s);
        END LOOP;
    END $pjp$";

/// The queue's pool, and whether it goes through a transaction pooler.
///
/// `&Db` is an [`Executor`]: straight to the server it is the pool itself;
/// through a transaction pooler each statement runs, unprepared, in a
/// transaction of its own (see the module's documentation).
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pool: PgPool,
    pooled: bool,
}

impl Db {
    pub(crate) fn new(pool: PgPool, pooler: Pooler) -> Self {
        Self {
            pool,
            pooled: pooler == Pooler::Transaction,
        }
    }

    /// Another pool in the same mode (a worker's heartbeat connection).
    pub(crate) fn alike(&self, pool: PgPool) -> Self {
        Self {
            pool,
            pooled: self.pooled,
        }
    }

    /// The pool itself.
    pub(crate) fn raw(&self) -> &PgPool {
        &self.pool
    }

    /// Connections open now.
    pub(crate) fn size(&self) -> u32 {
        self.pool.size()
    }

    /// Whether it goes through a transaction pooler.
    pub(crate) fn pooled(&self) -> bool {
        self.pooled
    }

    /// Whether statements run on a connection of this pool (in a transaction
    /// of [`begin`](Self::begin)) may be prepared and kept: not through a
    /// transaction pooler.
    pub(crate) fn persistent(&self) -> bool {
        !self.pooled
    }

    /// Begins a transaction. Through a transaction pooler it first drops the
    /// statements sqlx left on the server it was lent (`BEGIN_POOLED`).
    ///
    /// The `BEGIN` runs on a task of its own, so that a caller dropped while
    /// it is in flight cannot leave the connection inside a transaction sqlx
    /// does not know of (sqlx 0.8 rolls back only a transaction whose
    /// `BEGIN` it saw answered): the task finishes the `BEGIN` and, with
    /// nobody to hand the transaction to, rolls it back. Otherwise the
    /// connection would go back to the pool inside that transaction, and
    /// the statements run on it next would share its stale `now()` and
    /// commit only with some later transaction (through a pooler, it would
    /// also keep a server connection lent).
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let pool = self.pool.clone();
        let pooled = self.pooled;
        tokio::spawn(async move {
            if pooled {
                pool.begin_with(BEGIN_POOLED).await
            } else {
                pool.begin().await
            }
        })
        .await
        .map_err(task_failed)?
    }

    /// Runs one statement in a transaction of its own, unprepared, and
    /// returns what it returned once the transaction committed. On a task
    /// of its own, so that a caller dropped half-way leaves no transaction
    /// open on the connection (see [`begin`](Self::begin)): the statement
    /// then commits or not, as an autocommit statement whose reply was lost.
    async fn in_transaction<'q, E>(
        &self,
        mut query: E,
    ) -> Result<Vec<Either<PgQueryResult, PgRow>>, sqlx::Error>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let sql = query.sql().to_owned();
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await?;
            let out: Vec<_> = match arguments {
                Some(arguments) => {
                    let query = sqlx::query_with(&sql, arguments).persistent(false);
                    tx.fetch_many(query).try_collect().await?
                }
                None => tx.fetch_many(sql.as_str()).try_collect().await?,
            };
            tx.commit().await?;
            Ok(out)
        })
        .await
        .map_err(task_failed)?
    }
}

/// A task running a statement panicked or was cancelled (its runtime shut
/// down): the statement's fate is unknown, like that of a lost connection.
fn task_failed(error: tokio::task::JoinError) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the task running the statement ended: {error}"
    )))
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooled {
            return self.pool.fetch_many(query);
        }
        futures_util::stream::once(self.in_transaction(query))
            .map(|done| match done {
                Ok(items) => futures_util::stream::iter(items.into_iter().map(Ok)).left_stream(),
                Err(error) => futures_util::stream::iter([Err(error)]).right_stream(),
            })
            .flatten()
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooled {
            return self.pool.fetch_optional(query);
        }
        Box::pin(async move {
            let items = self.in_transaction(query).await?;
            Ok(items.into_iter().find_map(|item| item.right()))
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.describe(sql)
    }
}

/// Why a call needs a connection that bypasses the pooler.
pub(crate) fn needs_direct(what: &str) -> String {
    format!(
        "{what} keeps session state (an advisory lock, a search_path), which a transaction pooler does not keep: give the queue a direct URL (`PgQueueBuilder::direct_url`, `--direct-url`) that reaches PostgreSQL without the pooler"
    )
}
