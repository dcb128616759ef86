//! [`PgQueue::collect_orphans`]: removes the object-store blobs no row
//! names, left by uploads whose commit never happened.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::TryStreamExt;

use crate::{PgQueue, QueueError};

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
    /// Orphans deleted (or, on a dry run, that would be).
    pub deleted: u64,
    /// Orphans whose delete failed (logged; the next run tries again).
    pub failed: u64,
}

impl PgQueue {
    /// Deletes the blobs under this schema's prefix in the object store that
    /// no job row names and that are older than `grace`.
    ///
    /// Every blob is written before the row that names it commits; an upload
    /// whose commit failed (a crash, a fenced save) leaves an orphan, which
    /// this finds. Nothing a live job needs is removed: a blob a row names is
    /// kept, and so is a result under the key of the claim that holds a
    /// running job (its save is between upload and commit), and any blob
    /// younger than `grace` (choose it above the longest save: minutes). With
    /// `dry_run` it only counts.
    ///
    /// The key layout (the schema's name first, so one store can serve many
    /// queues; `-` stands for no kind): `{schema}/inputs/{queue}/{kind}/{batch}/{random}`
    /// for payloads written at enqueue, `{schema}/results/{kind}/{batch}/{job id}-{claim token}`
    /// for results.
    ///
    /// It reads every key the table names once (one scan), then lists the
    /// store: run it from a maintenance job (`pjp-prover gc`), not per job.
    pub async fn collect_orphans(
        &self,
        grace: Duration,
        dry_run: bool,
    ) -> Result<Collected, QueueError> {
        let schema = &self.inner.schema;
        let named: HashSet<String> = sqlx::query_scalar::<_, String>(&format!(
            "SELECT payload_key FROM {schema}.jobs WHERE payload_key IS NOT NULL
             UNION
             SELECT result_key FROM {schema}.jobs WHERE result_key IS NOT NULL"
        ))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.database_error(e))?
        .into_iter()
        .collect();
        let running: HashSet<(i64, i64)> = sqlx::query_as::<_, (i64, i64)>(&format!(
            "SELECT id, token FROM {schema}.jobs WHERE status = 'running'"
        ))
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
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let results = format!("{schema}/results/");
        let mut done = Collected {
            listed: listed.len() as u64,
            ..Collected::default()
        };
        let mut orphans = Vec::new();
        for object in listed {
            let key = object.location.to_string();
            if named.contains(&key) {
                done.referenced += 1;
                continue;
            }
            // `…/results/{kind}/{batch}/{id}-{token}`: the claim is the last part.
            let claim = key
                .strip_prefix(&results)
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
        done.deleted = orphans.len() as u64;
        if !dry_run && !orphans.is_empty() {
            let failed = self.inner.store.delete(orphans).await as u64;
            done.failed = failed;
            done.deleted -= failed;
        }
        Ok(done)
    }
}
