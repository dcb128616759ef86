//! [`PgQueue`]: a handle on one queue schema, for producers, workers and
//! operators.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::db::{Db, Pooler, connect_options};
use pjp_core::runner::LateResults;
use tokio::time::Instant;

use crate::enqueue::{Enqueued, NewJob, Tree};
use crate::error::QueueError;
use crate::redact::{redact_url, scrub};
use crate::schema::{self, check_schema_name};
use crate::sql::Statements;
use crate::sql::notify::NOTIFY;
use crate::store::PayloadStore;

/// The schema the queue lives in unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "pjp";

/// Connections in a [`PgQueue`]'s pool unless told otherwise. A worker process
/// opens two more: one for its heartbeat (so that leases are extended even
/// when every pooled connection is busy) and one that listens for
/// notifications. Neither number grows with executor workers or pickers.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// A handle on one queue schema: enqueue jobs, start a worker, run admin calls.
///
/// Cheap to clone (one pool inside). Every queue name shares the schema's one
/// table; a worker claims from the queues its pickers name.
///
/// ```no_run
/// # async fn demo() -> Result<(), pjp_postgres::QueueError> {
/// use pjp_postgres::{NewJob, PgQueue};
///
/// let queue = PgQueue::builder("postgres://127.0.0.1/app").schema("pjp").connect().await?;
/// queue.migrate().await?;
/// queue.enqueue(NewJob::new("proofs", b"input".to_vec())).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgQueue {
    pub(crate) inner: Arc<QueueInner>,
}

pub(crate) struct QueueInner {
    /// The pool: `&Db` runs statements as the [`Pooler`] mode needs.
    pub(crate) pool: Db,
    pub(crate) connect: PgConnectOptions,
    /// Options reaching PostgreSQL without a transaction pooler, when the
    /// queue goes through one and was given them
    /// ([`PgQueueBuilder::direct_url`]): for `LISTEN` and migrations.
    pub(crate) direct: Option<PgConnectOptions>,
    pub(crate) schema: String,
    pub(crate) sql: Statements,
    pub(crate) store: PayloadStore,
    pub(crate) channel: String,
    /// `{schema}/{queue identity}`: where this queue's blobs live, read from
    /// the schema once, on the first blob written.
    pub(crate) blob_root: tokio::sync::OnceCell<String>,
    /// What a stale claim's success does, per queue name.
    pub(crate) late: LatePolicy,
}

/// What a stale claim's success does, per queue name, as the completion
/// statement takes it: accepted by default or not, and the queues that do
/// the opposite.
#[derive(Debug, Clone)]
pub(crate) struct LatePolicy {
    pub(crate) accept: bool,
    pub(crate) except: Vec<String>,
}

impl LatePolicy {
    fn new(default: LateResults, queues: &HashMap<String, LateResults>) -> Self {
        let accept = default.accepts();
        let mut except: Vec<String> = queues
            .iter()
            .filter(|(_, late)| late.accepts() != accept)
            .map(|(queue, _)| queue.clone())
            .collect();
        except.sort_unstable();
        Self { accept, except }
    }

    fn of(&self, queue: &str) -> LateResults {
        if self.accept != self.except.iter().any(|q| q == queue) {
            LateResults::Accept
        } else {
            LateResults::Reject
        }
    }
}

// By hand: the connect options hold the password.
impl std::fmt::Debug for QueueInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueInner")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("database", &self.connect.get_database())
            .field("schema", &self.schema)
            .field("pooled", &self.pool.pooled())
            .field("direct", &self.direct.is_some())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Configures and connects a [`PgQueue`] ([`PgQueue::builder`]).
#[derive(Clone)]
#[must_use = "a builder does nothing until `connect`"]
pub struct PgQueueBuilder {
    url: String,
    schema: String,
    max_connections: u32,
    wait: Duration,
    store: Option<PayloadStore>,
    application_name: String,
    late_results: LateResults,
    late_results_for: HashMap<String, LateResults>,
    pooler: Pooler,
    direct_url: Option<String>,
}

// By hand: the URL may hold a password.
impl std::fmt::Debug for PgQueueBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgQueueBuilder")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("wait", &self.wait)
            .field("store", &self.store)
            .field("application_name", &self.application_name)
            .field("late_results", &self.late_results)
            .field("late_results_for", &self.late_results_for)
            .field("pooler", &self.pooler)
            .field("direct_url", &self.direct_url.as_deref().map(redact_url))
            .finish()
    }
}

impl PgQueueBuilder {
    /// What a worker's save does with a success whose claim lost the job's
    /// lease (it expired: the heartbeat could not reach the database, the
    /// process stalled), in every queue of this handle but those set with
    /// [`late_results_for`](Self::late_results_for).
    ///
    /// [`LateResults::Accept`] (the default): the success completes the job
    /// once, if the job has not finished yet (it is queued, waiting for a
    /// retry, or running under another claim). The completion moves the
    /// job's token on, so the claim holding it then is fenced: its
    /// heartbeat finds the lease lost and cancels its execution, and its
    /// save is rejected. A stale failure, release or heartbeat is rejected
    /// whatever this says, and so is every stale write once the job has
    /// finished. The runner counts such a save in
    /// `report.counts.late_accepted`, the worker in
    /// [`WorkerStats::late_accepted`](crate::WorkerStats::late_accepted).
    ///
    /// [`LateResults::Reject`]: a stale success is fenced like every other
    /// stale write ([`QueueError::Fenced`](crate::QueueError::Fenced)).
    ///
    /// The policy of the worker that saves is the one applied: give every
    /// worker of a queue the same.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), pjp_postgres::QueueError> {
    /// use pjp_core::runner::LateResults;
    /// use pjp_postgres::PgQueue;
    ///
    /// // Keep late proofs (the default), but never a late result of `webhooks`.
    /// let queue = PgQueue::builder("postgres://127.0.0.1/app")
    ///     .late_results(LateResults::Accept)
    ///     .late_results_for("webhooks", LateResults::Reject)
    ///     .connect()
    ///     .await?;
    /// assert_eq!(queue.late_results("proofs"), LateResults::Accept);
    /// assert_eq!(queue.late_results("webhooks"), LateResults::Reject);
    /// # Ok(()) }
    /// ```
    pub fn late_results(mut self, late: LateResults) -> Self {
        self.late_results = late;
        self
    }

    /// [`late_results`](Self::late_results) for the queue named `queue`,
    /// whatever the default.
    pub fn late_results_for(mut self, queue: impl Into<String>, late: LateResults) -> Self {
        self.late_results_for.insert(queue.into(), late);
        self
    }

    /// The `application_name` its connections report in `pg_stat_activity`
    /// (default `pjp-postgres`).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// The schema the tables live in (default [`DEFAULT_SCHEMA`]): 1–48
    /// characters of `a-z`, `0-9`, `_`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The size of the connection pool (default [`DEFAULT_MAX_CONNECTIONS`]).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long `connect` keeps retrying a database that is not reachable yet,
    /// with back-off (default 30 s; zero tries once).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Where payloads and results above the store's inline limit go (default:
    /// an in-process `memory://` store, so only small payloads survive the
    /// process; a fleet passes a shared `s3://` or `file://` store).
    pub fn store(mut self, store: PayloadStore) -> Self {
        self.store = Some(store);
        self
    }

    /// How the URL reaches PostgreSQL (default [`Pooler::None`]: straight,
    /// or through a pooler in session mode). [`Pooler::Transaction`] for a
    /// pooler in transaction mode (PgBouncer `pool_mode = transaction`):
    /// every statement runs in a transaction of its own, unprepared, and
    /// the queue keeps no session state; a worker listens for
    /// notifications on the [`direct_url`](Self::direct_url) if one is
    /// given and polls otherwise. See the README's "Through a connection
    /// pooler".
    pub fn pooler(mut self, pooler: Pooler) -> Self {
        self.pooler = pooler;
        self
    }

    /// A URL that reaches the same database without the transaction pooler
    /// (with [`pooler`](Self::pooler)`(Pooler::Transaction)`; unused
    /// otherwise). A worker keeps one connection on it, to `LISTEN`;
    /// [`PgQueue::migrate`] runs on it (a migration holds a session lock).
    /// Without it, workers poll and `migrate` is refused.
    pub fn direct_url(mut self, url: impl Into<String>) -> Self {
        self.direct_url = Some(url.into());
        self
    }

    /// Connects, retrying with back-off for up to the [`wait`](Self::wait).
    /// Does not check the schema: [`PgQueue::migrate`] creates it, and
    /// [`PgQueue::worker`] checks it.
    ///
    /// # Errors
    ///
    /// [`QueueError::Invalid`] for a malformed URL or schema name;
    /// [`QueueError::Database`] when the database stays unreachable past the
    /// wait.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: dropping it closes the connections opened so far; nothing is written.
    pub async fn connect(self) -> Result<PgQueue, QueueError> {
        check_schema_name(&self.schema)?;
        let connect = parse_url(&self.url)?.application_name(&self.application_name);
        // Straight to the server, every plan is custom (see
        // `connect_options`); through a transaction pooler, no statement
        // cache and no startup parameter the pooler does not know.
        let connect = connect_options(connect, self.pooler);
        let direct = match (&self.direct_url, self.pooler) {
            (Some(url), Pooler::Transaction) => Some(connect_options(
                parse_url(url)?.application_name(&self.application_name),
                Pooler::None,
            )),
            _ => None,
        };
        let pool = connect_with_retry(&connect, self.max_connections, self.wait).await?;
        let store = match self.store {
            Some(store) => store,
            None => PayloadStore::open("memory://")?,
        };
        let channel = format!("pjp_{}", self.schema);
        Ok(PgQueue {
            inner: Arc::new(QueueInner {
                sql: Statements::new(&self.schema),
                pool: Db::new(pool, self.pooler),
                connect,
                direct,
                schema: self.schema,
                store,
                channel,
                blob_root: tokio::sync::OnceCell::new(),
                late: LatePolicy::new(self.late_results, &self.late_results_for),
            }),
        })
    }
}

/// Parses a `postgres://` URL into connect options.
fn parse_url(url: &str) -> Result<PgConnectOptions, QueueError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(QueueError::invalid(
            "database URL",
            format!(
                "`{}`: expected postgres://user@host:port/database",
                redact_url(url)
            ),
        ));
    }
    PgConnectOptions::from_str(url).map_err(|e| {
        let why = scrub(&e.to_string(), url);
        QueueError::invalid("database URL", format!("`{}`: {why}", redact_url(url)))
    })
}

pub(crate) async fn connect_with_retry(
    options: &PgConnectOptions,
    connections: u32,
    wait: Duration,
) -> Result<PgPool, QueueError> {
    let started = Instant::now();
    let deadline = started + wait;
    let mut delay = Duration::from_millis(50);
    loop {
        // One plain connection first: its error says why (refused, unknown
        // host, bad password), where a pool would only say it timed out.
        match PgConnection::connect_with(options).await {
            Ok(conn) => {
                let _ = conn.close().await;
                return Ok(PgPoolOptions::new()
                    .max_connections(connections)
                    // No ping before each use: over a cross-region link it is
                    // a round trip per statement. A dead connection fails its
                    // statement instead, which the runner retries.
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_lazy_with(options.clone()));
            }
            Err(error) => {
                let error = QueueError::Database(error);
                let now = Instant::now();
                if error.class() != pjp_core::ErrorClass::Transient {
                    return Err(error);
                }
                if now >= deadline {
                    let QueueError::Database(source) = error else {
                        return Err(error);
                    };
                    return Err(QueueError::Unreachable {
                        host: options.get_host().to_owned(),
                        port: options.get_port(),
                        waited: now - started,
                        source,
                    });
                }
                tracing::info!(
                    host = options.get_host(),
                    port = options.get_port(),
                    %error,
                    "database not reachable yet; retrying"
                );
                tokio::time::sleep(delay.min(deadline - now)).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

impl PgQueue {
    /// Starts configuring a queue on the database at `url`
    /// (`postgres://user:password@host:port/database`).
    pub fn builder(url: impl Into<String>) -> PgQueueBuilder {
        PgQueueBuilder {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            wait: Duration::from_secs(30),
            store: None,
            application_name: "pjp-postgres".to_owned(),
            late_results: LateResults::default(),
            late_results_for: HashMap::new(),
            pooler: Pooler::None,
            direct_url: None,
        }
    }

    /// Connects with the defaults (schema `pjp`, an in-memory payload store).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: dropping it closes the connections opened so far; nothing is written.
    pub async fn connect(url: impl Into<String>) -> Result<Self, QueueError> {
        Self::builder(url).connect().await
    }

    /// The schema the queue lives in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The payload store.
    pub fn store(&self) -> &PayloadStore {
        &self.inner.store
    }

    /// What this handle's workers do with a late success of a job of
    /// `queue` ([`PgQueueBuilder::late_results`]).
    pub fn late_results(&self, queue: &str) -> LateResults {
        self.inner.late.of(queue)
    }

    /// The connection pool (for a caller's own transactions around
    /// [`enqueue_in`](Self::enqueue_in)). Through a transaction pooler
    /// ([`Pooler::Transaction`]), run a statement with bind parameters on it
    /// only inside a transaction, and unprepared
    /// (`sqlx::query(…).persistent(false)`): see the README's "Through a
    /// connection pooler".
    pub fn pool(&self) -> &PgPool {
        self.inner.pool.raw()
    }

    /// How the queue reaches PostgreSQL ([`PgQueueBuilder::pooler`]).
    pub fn pooler(&self) -> Pooler {
        if self.inner.pool.pooled() {
            Pooler::Transaction
        } else {
            Pooler::None
        }
    }

    /// Creates the schema and applies the migrations it lacks; returns the
    /// versions it applied (empty when it was up to date).
    ///
    /// Through a transaction pooler it runs on the
    /// [`direct_url`](PgQueueBuilder::direct_url) (a migration holds a
    /// session lock and sets the `search_path`), and without one it is
    /// refused ([`QueueError::Invalid`]).
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: each migration commits in its own transaction and the lock is a session
    /// lock on a connection that is closed when dropped, so a dropped `migrate` leaves the
    /// schema at some migration's end, and running it again finishes the job.
    pub async fn migrate(&self) -> Result<Vec<i64>, QueueError> {
        let conn = if !self.inner.pool.pooled() {
            self.inner.pool.raw().acquire().await?.detach()
        } else if let Some(direct) = &self.inner.direct {
            PgConnection::connect_with(direct).await?
        } else {
            return Err(QueueError::invalid(
                "migrate",
                crate::db::needs_direct("a migration"),
            ));
        };
        schema::migrate(conn, &self.inner.schema).await
    }

    /// Checks that the schema is migrated to the version this library needs.
    ///
    /// # Errors
    ///
    /// [`QueueError::NotMigrated`], or [`QueueError::SchemaVersion`] naming
    /// both versions.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it only reads; dropping it changes nothing.
    pub async fn check_schema(&self) -> Result<(), QueueError> {
        schema::check_version(&self.inner.pool, &self.inner.schema).await
    }

    /// Enqueues one job.
    ///
    /// # Cancellation safety
    ///
    /// Not cancel safe in one case: dropped after its commit was sent, the job may exist
    /// although the call never returned. Give the job a [`NewJob::unique_key`] and enqueue it
    /// again: a second enqueue of the same key creates nothing. A payload uploaded to the store
    /// before a dropped insert is left for [`PgQueue::collect_orphans`].
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, QueueError> {
        let mut done = self.enqueue_many(vec![job]).await?;
        done.pop()
            .ok_or_else(|| QueueError::invalid("enqueue", "the database returned no row"))
    }

    /// Enqueues a parent job and the children it waits for, in one
    /// transaction: the parent becomes claimable in the same transaction as
    /// its last child's successful, fenced completion (no poller, exactly
    /// once, even when the last two children finish at the same instant on
    /// two workers). A child that ends `dead` or `failed` settles the parent:
    /// it ends `dead`, its error naming the child.
    ///
    /// Idempotent through the parent's unique key: when a parent with the key
    /// exists, nothing is created and [`Tree::created`] is false (a producer
    /// that crashed and enqueues the same tree again creates nothing twice).
    /// A parent without children is queued at once.
    ///
    /// ```no_run
    /// # async fn demo(queue: pjp_postgres::PgQueue) -> Result<(), pjp_postgres::QueueError> {
    /// use pjp_postgres::NewJob;
    ///
    /// let children = (0..16).map(|i| NewJob::new("basic", vec![i])).collect();
    /// let tree = queue
    ///     .enqueue_tree(NewJob::new("aggregate", b"batch-7".to_vec()).unique_key("batch-7"), children)
    ///     .await?;
    /// println!("parent {} waits for {} children", tree.parent, tree.children.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancellation safety
    ///
    /// As for [`enqueue`](Self::enqueue): the tree is one transaction, so it exists whole or
    /// not at all; a unique key on the parent makes a retry a no-op.
    pub async fn enqueue_tree(
        &self,
        parent: NewJob,
        children: Vec<NewJob>,
    ) -> Result<Tree, QueueError> {
        if children
            .iter()
            .any(|c| c.parent_id.is_some() || c.waiting_on > 0)
        {
            return Err(QueueError::invalid(
                "tree",
                "a child of enqueue_tree cannot have a parent or children of its own yet",
            ));
        }
        let waiting_on = i32::try_from(children.len())
            .map_err(|_| QueueError::invalid("tree", "more than 2^31 children"))?;
        let mut tx = self.inner.pool.begin().await?;
        let parent = NewJob {
            waiting_on,
            ..parent
        };
        let mut done = self.enqueue_in(&mut tx, vec![parent]).await?;
        let parent = done
            .pop()
            .ok_or_else(|| QueueError::invalid("enqueue", "the database returned no row"))?;
        if !parent.created {
            // The tree exists already: create nothing.
            return Ok(Tree {
                parent: parent.id,
                children: Vec::new(),
                created: false,
            });
        }
        let children = children
            .into_iter()
            .map(|child| NewJob {
                parent_id: Some(parent.id),
                ..child
            })
            .collect();
        let children = self.enqueue_in(&mut tx, children).await?;
        tx.commit().await?;
        Ok(Tree {
            parent: parent.id,
            children: children.into_iter().map(|c| c.id).collect(),
            created: true,
        })
    }

    /// Enqueues a batch in one transaction and one insert (thousands of rows
    /// per round trip), waking idle workers once per queue.
    ///
    /// # Cancellation safety
    ///
    /// As for [`enqueue`](Self::enqueue): the batch is one transaction, so all of it exists or
    /// none; unique keys make a retry a no-op.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, QueueError> {
        let mut tx = self.inner.pool.begin().await?;
        let done = self.enqueue_in(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Enqueues a batch on the caller's connection, inside the caller's
    /// transaction if one is open: the jobs exist if and only if it commits,
    /// and workers are woken when it does. Large payloads are written to the
    /// store first.
    ///
    /// ```no_run
    /// # async fn demo(queue: pjp_postgres::PgQueue) -> Result<(), pjp_postgres::QueueError> {
    /// use pjp_postgres::NewJob;
    ///
    /// let mut tx = queue.pool().begin().await?;
    /// // ... the caller's own writes on `tx` ...
    /// queue.enqueue_in(&mut tx, vec![NewJob::new("proofs", vec![1, 2, 3])]).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancellation safety
    ///
    /// The caller's transaction decides: dropping this future leaves the transaction open with
    /// the rows inserted so far; roll it back (drop it) or commit it.
    pub async fn enqueue_in(
        &self,
        conn: &mut PgConnection,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, QueueError> {
        for job in &jobs {
            job.validate()?;
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let n = jobs.len();
        let mut queues = Vec::with_capacity(n);
        let mut priorities = Vec::with_capacity(n);
        let mut delays = Vec::with_capacity(n);
        let mut max_attempts = Vec::with_capacity(n);
        let mut max_lost = Vec::with_capacity(n);
        let mut payloads = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut crcs = Vec::with_capacity(n);
        let mut unique = Vec::with_capacity(n);
        let mut parents = Vec::with_capacity(n);
        let mut waiting = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut classes = Vec::with_capacity(n);
        let mut batches = Vec::with_capacity(n);
        let mut depths = Vec::with_capacity(n);
        let mut cancel_trees = Vec::with_capacity(n);
        for job in &jobs {
            let stored = if self.inner.store.keeps_inline(job.payload.len()) {
                self.inner.store.inline(&job.payload)
            } else {
                let key = crate::store::input_key(self.blob_root().await?, job);
                self.inner.store.put(key, &job.payload).await?
            };
            queues.push(job.queue.clone());
            let options = job.job_options();
            priorities.push(options.priority);
            delays.push(options.delay.as_secs_f64());
            max_attempts.push(i32::try_from(options.max_attempts).unwrap_or(i32::MAX));
            max_lost.push(i32::try_from(options.max_lost_leases).unwrap_or(i32::MAX));
            payloads.push(stored.inline);
            keys.push(stored.key);
            crcs.push(stored.crc);
            unique.push(job.unique_key.clone());
            parents.push(job.parent_id);
            waiting.push(job.waiting_on);
            kinds.push(job.kind_name().to_owned());
            classes.push(job.resource_class.clone());
            batches.push(options.batch);
            depths.push(i16::try_from(options.depth).unwrap_or(i16::MAX));
            cancel_trees.push(job.cancel_tree);
        }
        // Through a transaction pooler, unprepared: a statement kept on the
        // server would outlive the caller's transaction there.
        let persistent = self.inner.pool.persistent();
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(&self.inner.sql.insert)
            .persistent(persistent)
            .bind(&queues)
            .bind(&priorities)
            .bind(&delays)
            .bind(&max_attempts)
            .bind(&max_lost)
            .bind(&payloads)
            .bind(&keys)
            .bind(&crcs)
            .bind(&unique)
            .bind(&parents)
            .bind(&waiting)
            .bind(&kinds)
            .bind(&classes)
            .bind(&batches)
            .bind(&depths)
            .bind(&cancel_trees)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.database_error(e))?;
        let done = self.match_inserted(conn, &jobs, rows).await?;
        // One notification per queue per batch, delivered when the caller's
        // transaction commits. Never from the completion path (NOTIFY takes a
        // global lock at commit).
        let woken: BTreeSet<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        for queue in woken {
            sqlx::query(NOTIFY)
                .persistent(persistent)
                .bind(&self.inner.channel)
                .bind(queue)
                .execute(&mut *conn)
                .await?;
        }
        Ok(done)
    }

    /// Pairs inserted rows with the jobs asked for: keyed jobs by key (a
    /// duplicate gets the existing row's id), the rest in order.
    async fn match_inserted(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
        rows: Vec<(i64, String, Option<String>)>,
    ) -> Result<Vec<Enqueued>, QueueError> {
        let mut keyed: HashMap<(String, String), Enqueued> = HashMap::new();
        let mut plain = Vec::new();
        for (id, queue, key) in rows {
            match key {
                Some(key) => {
                    keyed.insert((queue, key), Enqueued { id, created: true });
                }
                None => plain.push(Enqueued { id, created: true }),
            }
        }
        let missing: Vec<(String, String)> = jobs
            .iter()
            .filter_map(|j| Some((j.queue.clone(), j.unique_key.clone()?)))
            .filter(|k| !keyed.contains_key(k))
            .collect();
        if !missing.is_empty() {
            let (queues, keys): (Vec<String>, Vec<String>) = missing.into_iter().unzip();
            let existing: Vec<(i64, String, String)> =
                sqlx::query_as(&self.inner.sql.existing_keys)
                    .persistent(self.inner.pool.persistent())
                    .bind(&queues)
                    .bind(&keys)
                    .fetch_all(&mut *conn)
                    .await?;
            for (id, queue, key) in existing {
                keyed
                    .entry((queue, key))
                    .or_insert(Enqueued { id, created: false });
            }
        }
        let mut plain = plain.into_iter();
        let mut seen = BTreeSet::new();
        jobs.iter()
            .map(|job| {
                let found = match &job.unique_key {
                    Some(key) => {
                        let slot = (job.queue.clone(), key.clone());
                        // The same key twice in one batch: the second is a duplicate.
                        let first = seen.insert(slot.clone());
                        keyed.get(&slot).map(|e| Enqueued {
                            id: e.id,
                            created: e.created && first,
                        })
                    }
                    None => plain.next(),
                };
                found.ok_or_else(|| {
                    QueueError::invalid("enqueue", "the database returned fewer rows than jobs")
                })
            })
            .collect()
    }

    /// Maps "the table does not exist" to [`QueueError::NotMigrated`].
    /// This queue's identity: a random id made when its schema was created
    /// and kept in it. Every blob it writes lives under
    /// `{schema}/{identity}/`, so queues of two databases sharing one object
    /// store (and one schema name) never touch each other's blobs.
    ///
    /// # Errors
    ///
    /// [`QueueError::NotMigrated`] before [`migrate`](Self::migrate), or the
    /// database's error.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: it reads the identity once and caches it; dropping it changes nothing.
    pub async fn identity(&self) -> Result<&str, QueueError> {
        let root = self.blob_root().await?;
        Ok(root
            .strip_prefix(self.inner.schema.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(root))
    }

    /// `{schema}/{identity}`: the prefix of every blob this queue writes.
    pub(crate) async fn blob_root(&self) -> Result<&str, QueueError> {
        let schema = &self.inner.schema;
        self.inner
            .blob_root
            .get_or_try_init(|| async {
                let id: String = sqlx::query_scalar(&self.inner.sql.identity)
                    .fetch_one(&self.inner.pool)
                    .await
                    .map_err(|e| self.database_error(e))?;
                Ok::<_, QueueError>(format!("{schema}/{id}"))
            })
            .await
            .map(String::as_str)
    }

    pub(crate) fn database_error(&self, error: sqlx::Error) -> QueueError {
        if let sqlx::Error::Database(db) = &error
            && matches!(db.code().as_deref(), Some("42P01" | "42704" | "3F000"))
        {
            return QueueError::NotMigrated {
                schema: self.inner.schema.clone(),
            };
        }
        QueueError::Database(error)
    }
}

/// Whether `error` proves that the statement never ran, or was rolled back:
/// the server had terminated the connection's backend (an administrator, a
/// restart, a failover: SQLSTATE class 57P), or the request could not even be
/// written. Retrying it once on another connection is then safe.
///
/// The pool does not ping a connection before handing it out (over a
/// cross-region link that would be a round trip per statement), so a
/// connection cut while idle is found out by the next statement that uses it.
pub(crate) fn connection_was_gone(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
        }
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::BrokenPipe,
        _ => false,
    }
}

/// Runs a statement on `pool`, again while the connection it got had already
/// been closed by the server ([`connection_was_gone`]): each such connection
/// is dropped by the pool, so after a server restart the statement runs at
/// most once per stale connection before it gets a live one.
pub(crate) async fn once_more_if_gone<T, F, Fut>(pool: &Db, mut run: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = pool.size() + 1;
    loop {
        match run().await {
            Err(error) if connection_was_gone(&error) && tries > 1 => {
                tries -= 1;
                tracing::debug!(%error, "the connection was closed by the server; running the statement again");
            }
            done => return done,
        }
    }
}
