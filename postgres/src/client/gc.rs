//! [`PgQueue::collect_orphans`]: removes the object-store blobs no row
//! names, left by uploads whose commit never happened.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::TryStreamExt;

use crate::error::QueueError;
use crate::queue::PgQueue;

/// How a collection runs ([`PgQueue::collect_orphans`]).
///
/// ```
/// use std::time::Duration;
/// use pjp_postgres::CollectOptions;
///
/// let options = CollectOptions::new(Duration::from_secs(3600)).dry_run(true);
/// assert!(options.is_dry_run());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectOptions {
    grace: Duration,
    dry_run: bool,
    ignore_unowned: bool,
}

impl CollectOptions {
    /// Deletes orphans older than `grace` (choose it above the longest save:
    /// minutes), refusing to run beside blobs of an unknown owner.
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            dry_run: false,
            ignore_unowned: false,
        }
    }

    /// Only counts: deletes nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Runs even when the schema's prefix holds blobs of an unknown owner
    /// (they are counted in [`Collected::unowned`] and left alone). Without
    /// it, such blobs make the collection fail with
    /// [`QueueError::UnownedBlobs`] before it deletes anything.
    pub fn ignore_unowned(mut self, ignore: bool) -> Self {
        self.ignore_unowned = ignore;
        self
    }

    /// Whether it only counts.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }
}

/// What a collection found and did ([`PgQueue::collect_orphans`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Collected {
    /// Objects listed under the schema's prefix.
    pub listed: u64,
    /// Named by a row: kept.
    pub referenced: u64,
    /// The result being saved by the claim that holds a running job: kept,
    /// however old (its row commits next).
    pub in_flight: u64,
    /// Unreferenced, but younger than the grace period: kept this time.
    pub young: u64,
    /// Under another queue's identity (another database using the same
    /// schema name and store): never touched.
    pub foreign: u64,
    /// Of no queue identity at all (written by hand, or by a version of this
    /// library before identities): never touched, and only counted when the
    /// collection was told to [ignore](CollectOptions::ignore_unowned) them.
    pub unowned: u64,
    /// Orphans deleted (or, on a dry run, that would be).
    pub deleted: u64,
    /// Orphans whose delete failed (logged; the next run tries again).
    pub failed: u64,
}

/// Whose a listed key is.
enum Owner<'k> {
    /// This queue's: the rest of the key below its root.
    Ours(&'k str),
    /// Another queue identity's.
    Foreign,
    /// No queue identity's.
    Unknown,
}

/// A queue identity, as the schema's `queue_identity` makes it: 32 hex digits.
fn is_identity(part: &str) -> bool {
    part.len() == 32 && part.bytes().all(|b| b.is_ascii_hexdigit())
}

fn owner<'k>(key: &'k str, schema: &str, root: &str) -> Owner<'k> {
    if let Some(rest) = key.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
        return Owner::Ours(rest);
    }
    let identity = key
        .strip_prefix(schema)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.split('/').next());
    match identity {
        Some(id) if is_identity(id) => Owner::Foreign,
        _ => Owner::Unknown,
    }
}

impl PgQueue {
    /// Deletes the blobs this queue wrote that no job row names and that are
    /// older than the grace period.
    ///
    /// Every blob is written before the row that names it commits; an upload
    /// whose commit failed (a crash, a fenced save) leaves an orphan, which
    /// this finds. It only ever deletes below this queue's own root,
    /// `{schema}/{identity}/` ([`identity`](Self::identity)): blobs of other
    /// queues sharing the store, even with the same schema name in another
    /// database, are never touched. Nothing a live job needs is removed: a
    /// blob a row names is kept, and so is a result under the key of the
    /// claim that holds a running job (its save is between upload and
    /// commit), and any blob younger than the grace period.
    ///
    /// The key layout (`-` stands for no kind):
    /// `{schema}/{identity}/inputs/{queue}/{kind}/{batch}/{random}` for
    /// payloads written at enqueue,
    /// `{schema}/{identity}/results/{kind}/{batch}/{job id}-{claim token}`
    /// for results.
    ///
    /// It reads every key the table names once (one scan), then lists the
    /// store: run it from a maintenance job (`pjp-prover gc`), not per job.
    ///
    /// # Errors
    ///
    /// [`QueueError::UnownedBlobs`] when the schema's prefix holds blobs of
    /// no queue identity that no row names, unless
    /// [`ignore_unowned`](CollectOptions::ignore_unowned) is set: nothing
    /// is deleted then. A database or store error otherwise.
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: blobs are deleted one by one; dropped part-way, what was deleted stays
    /// deleted and a second run carries on. It never deletes a blob a row names.
    pub async fn collect_orphans(&self, options: CollectOptions) -> Result<Collected, QueueError> {
        let schema = self.inner.schema.clone();
        let root = self.blob_root().await?.to_owned();
        let named: HashSet<String> = sqlx::query_scalar::<_, String>(&self.inner.sql.blob_keys)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.database_error(e))?
            .into_iter()
            .collect();
        let running: HashSet<(i64, i64)> =
            sqlx::query_as::<_, (i64, i64)>(&self.inner.sql.running_claims)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| self.database_error(e))?
                .into_iter()
                .collect();
        let store = self.inner.store.object_store();
        let prefix = object_store::path::Path::from(schema.as_str());
        let listed: Vec<object_store::ObjectMeta> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|source| QueueError::Store {
            key: prefix.to_string(),
            source,
        })?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
        let mut done = Collected {
            listed: listed.len() as u64,
            ..Collected::default()
        };
        let mut orphans = Vec::new();
        let mut unowned_example = None;
        for object in listed {
            let key = object.location.to_string();
            if named.contains(&key) {
                done.referenced += 1;
                continue;
            }
            let rest = match owner(&key, &schema, &root) {
                Owner::Ours(rest) => rest,
                Owner::Foreign => {
                    done.foreign += 1;
                    continue;
                }
                Owner::Unknown => {
                    done.unowned += 1;
                    unowned_example.get_or_insert_with(|| key.clone());
                    continue;
                }
            };
            // `results/{kind}/{batch}/{id}-{token}`: the claim is the last part.
            let claim = rest
                .strip_prefix("results/")
                .and_then(|rest| rest.rsplit('/').next())
                .and_then(|name| name.split_once('-'))
                .and_then(|(id, token)| Some((id.parse().ok()?, token.parse().ok()?)));
            if claim.is_some_and(|claim| running.contains(&claim)) {
                done.in_flight += 1;
                continue;
            }
            if now_ms.saturating_sub(object.last_modified.timestamp_millis()) < grace_ms {
                done.young += 1;
                continue;
            }
            orphans.push(key);
        }
        if let Some(example) = unowned_example
            && !options.ignore_unowned
        {
            return Err(QueueError::UnownedBlobs {
                prefix: schema,
                count: done.unowned,
                example,
            });
        }
        done.deleted = orphans.len() as u64;
        if !options.dry_run && !orphans.is_empty() {
            let failed = self.inner.store.delete(orphans).await as u64;
            done.failed = failed;
            done.deleted -= failed;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_ours_another_queues_or_nobodys() {
        let (id, other) = ("0123456789abcdef0123456789abcdef", "f".repeat(32));
        let root = format!("pjp/{id}");
        let mine = format!("pjp/{id}/results/-/0/1-1");
        assert!(matches!(
            owner(&mine, "pjp", &root),
            Owner::Ours("results/-/0/1-1")
        ));
        let theirs = format!("pjp/{other}/results/-/0/1-1");
        assert!(matches!(owner(&theirs, "pjp", &root), Owner::Foreign));
        for nobody in ["pjp/results/-/0/1-1", "pjp/probes/w", "pjp/0123/x"] {
            assert!(
                matches!(owner(nobody, "pjp", &root), Owner::Unknown),
                "{nobody}"
            );
        }
    }
}
