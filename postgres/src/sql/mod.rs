//! Every SQL statement the crate runs lives here, one module per concept;
//! the rest of the crate only binds parameters and executes them. One place
//! shows each query next to the others that touch the same rows, so its
//! index (the partial indexes of `migrations/`) and its locking can be
//! reviewed together. The migrations themselves stay in `migrations/`.
//!
//! The schema name is validated
//! ([`check_schema_name`](crate::schema::check_schema_name)) before it is
//! spliced in, unquoted: a plain lowercase identifier needs no quoting.
//! Every value goes through a bind parameter. Statements that lock several
//! rows lock them in id order (the `locked` and `parents` CTEs of
//! [`fragments`]), like the claim does, so a batched completion and a
//! heartbeat of the same worker cannot deadlock against each other.
//!
//! Statements of a queue's schema are written once, when the queue connects
//! ([`Statements`]); those of a migration, which runs before the schema
//! exists, are built on the spot by [`schema`].

mod admin;
mod claim;
mod complete;
mod enqueue;
mod fanout;
mod fragments;
mod gc;
mod lease;
pub(crate) mod maintain;
pub(crate) mod notify;
pub(crate) mod schema;

pub(crate) use complete::Completion;

/// The statements of one schema, written when its queue connects.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) claim: String,
    pub(crate) claim_fifo: String,
    pub(crate) claim_kinds: String,
    pub(crate) claim_classes: String,
    pub(crate) claim_except: String,
    pub(crate) complete: String,
    pub(crate) release: String,
    pub(crate) heartbeat: String,
    pub(crate) rescue: String,
    pub(crate) current_tokens: String,
    pub(crate) fenced_claims: String,
    pub(crate) has_work: String,
    pub(crate) has_work_kinds: String,
    pub(crate) has_work_except: String,
    pub(crate) insert: String,
    pub(crate) existing_keys: String,
    pub(crate) counts: String,
    pub(crate) oldest_queued: String,
    pub(crate) lease_owners: String,
    pub(crate) finished_recently: String,
    pub(crate) load: String,
    pub(crate) dead: String,
    pub(crate) requeue_targets: String,
    pub(crate) requeue: String,
    pub(crate) cancel: String,
    pub(crate) purge: String,
    pub(crate) job: String,
    pub(crate) ids: String,
    pub(crate) children: String,
    pub(crate) grow_group: String,
    pub(crate) blob_keys: String,
    pub(crate) running_claims: String,
    pub(crate) identity: String,
    pub(crate) analyze: String,
    pub(crate) vacuum: String,
    pub(crate) hot_set: String,
    pub(crate) revive_chunks: String,
    pub(crate) console: admin::ConsoleStatements,
}

impl Statements {
    /// The statements of schema `s`, a name [checked](crate::schema::check_schema_name)
    /// to be safe to splice in.
    pub(crate) fn new(s: &str) -> Self {
        Self {
            claim: claim::claim(s),
            claim_fifo: claim::claim_fifo(s),
            claim_kinds: claim::claim_kinds(s),
            claim_classes: claim::claim_classes(s),
            claim_except: claim::claim_except(s),
            complete: complete::complete(s),
            release: complete::release(s),
            heartbeat: lease::heartbeat(s),
            rescue: lease::rescue(s),
            current_tokens: complete::current_tokens(s),
            fenced_claims: complete::fenced_claims(s),
            has_work: claim::has_work(s),
            has_work_kinds: claim::has_work_kinds(s),
            has_work_except: claim::has_work_except(s),
            insert: enqueue::insert(s),
            existing_keys: enqueue::existing_keys(s),
            counts: admin::counts(s),
            oldest_queued: admin::oldest_queued(s),
            lease_owners: admin::lease_owners(s),
            finished_recently: admin::finished_recently(s),
            load: admin::load(s),
            dead: admin::dead(s),
            requeue_targets: admin::requeue_targets(s),
            requeue: admin::requeue(s),
            cancel: admin::cancel(s),
            purge: admin::purge(s),
            job: admin::job(s),
            ids: admin::ids(s),
            children: admin::children(s),
            grow_group: fanout::grow_group(s),
            blob_keys: gc::blob_keys(s),
            running_claims: gc::running_claims(s),
            identity: schema::identity(s),
            analyze: maintain::analyze(s),
            vacuum: maintain::vacuum(s),
            hot_set: maintain::hot_set(s),
            revive_chunks: admin::revive_chunks(s),
            console: admin::ConsoleStatements::new(s),
        }
    }
}
