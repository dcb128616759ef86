//! Claims: queued jobs become this worker's leases, a batch per statement,
//! in the order a picker asks for (each shape reads its own partial index;
//! see `migrations/`), and the picker's check for any work left.

/// Every claim ends the same way: the picked rows become this worker's
/// leases, with a new fencing token. They are found by primary key: joined
/// to `picked` instead, the update would hash the whole table once the
/// statistics know it is large (a set-returning function is estimated at
/// 1,000 rows, whatever its `LIMIT`), a sequential scan per claim. The
/// last column is how long the server had been on the statement when it
/// returned the row, in microseconds (since the statement reached it: a
/// wait at a pooler before it is not included).
const CLAIM_SET: &str = "SET status = 'running', lease_owner = $3,
             lease_expires_at = now() + make_interval(secs => $4),
             token = j.token + 1, started_at = now()
         WHERE j.id = ANY (ARRAY (SELECT id FROM picked))
         RETURNING j.id, j.token, j.priority, j.attempts, j.lost_leases,
                   j.payload, j.payload_key, j.payload_crc, j.kind, j.batch, j.depth,
                   (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1e6)::int8";

/// Priority, then the oldest batch, then the round closest to the
/// final proof, then age (`jobs_claimable_proof`). The rows are chosen
/// and locked by a function of the schema that keeps the index-order
/// plan without statistics (migration `claim_plans`).
pub(super) fn claim(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT c AS id FROM {s}.claimable_proof($1, ($2::bigint)::int) c)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// Priority, then age: the FIFO order (`jobs_claimable`).
pub(super) fn claim_fifo(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT c AS id FROM {s}.claimable_fifo($1, ($2::bigint)::int) c)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// Kinds in the worker's order of preference ($5), each read from
/// its own range of `jobs_claimable_kind` and locked there (SKIP
/// LOCKED, so concurrent workers pass each other by; the function
/// `claimable_kind` keeps that plan without statistics), then the
/// batch taken in preference order: a heavy job first, a light one
/// when no heavy one is queued. Classes ($6) filter within a kind.
/// The rows a kind over-locks are unlocked when the statement ends.
pub(super) fn claim_kinds(s: &str) -> String {
    format!(
        "WITH wanted AS (
             SELECT k, n FROM unnest($5::text[]) WITH ORDINALITY AS w(k, n)),
         candidates AS MATERIALIZED (
             SELECT c.id, c.priority, c.batch, c.depth, w.n FROM wanted w CROSS JOIN LATERAL
                 {s}.claimable_kind($1, w.k, ($2::bigint)::int, $6::text[]) c),
         picked AS MATERIALIZED (
             SELECT id FROM candidates ORDER BY n, priority DESC, batch, depth, id LIMIT $2)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// Any kind, only the classes in $5.
pub(super) fn claim_classes(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT c AS id
             FROM {s}.claimable_except($1, ($2::bigint)::int, '{{}}'::text[], $5::text[]) c)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// Every kind but those in $5 (and only the classes in $6, when
/// set): the proof-first scan of `jobs_claimable_proof`, with the
/// few excluded rows (aggregations, say) filtered as it reads, so
/// it costs what the kind-agnostic claim costs.
pub(super) fn claim_except(s: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (
             SELECT c AS id
             FROM {s}.claimable_except($1, ($2::bigint)::int, $5::text[], $6::text[]) c)
         UPDATE {s}.jobs j
         {CLAIM_SET}"
    )
}

/// For a picker of any kind: work is a job of the queue queued or
/// running (it may come back), read per hot chunk (migration
/// `hot_chunks`), so the check costs the same whatever the history.
pub(super) fn has_work(s: &str) -> String {
    format!("SELECT {s}.has_live_work($1, NULL, false, false)")
}

/// For a picker of some kinds: work is one of its kinds queued,
/// running, or waiting for children (it will be claimable).
pub(super) fn has_work_kinds(s: &str) -> String {
    format!("SELECT {s}.has_live_work($1, $2, false, true)")
}

/// For a picker of every kind but some: any other kind queued,
/// running or waiting.
pub(super) fn has_work_except(s: &str) -> String {
    format!("SELECT {s}.has_live_work($1, $2, true, true)")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use pjp_testkit::postgres::TestSchema;

    use crate::sql::Statements;
    use crate::{NewJob, PgQueue};

    /// Once the statistics know the table is large (here 40,000 rows,
    /// analyzed), every claim still reads the partial index for its rows and
    /// the primary key for their update: no plan reads the whole table; and
    /// the writes of running jobs find them by primary key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_claim_updates_its_rows_by_key_in_a_large_analyzed_table() {
        let schema = TestSchema::prefixed("t_claim_plan");
        let queue = PgQueue::builder(schema.url())
            .schema(schema.name())
            .connect()
            .await
            .expect("connect");
        queue.migrate().await.expect("migrate");
        for chunk in 0..8 {
            let jobs = (0..5_000)
                .map(|i| NewJob::new("q", vec![(chunk * 5_000 + i) as u8]).kind("basic"))
                .collect();
            queue.enqueue_many(jobs).await.expect("enqueue");
        }
        let s = schema.name();
        sqlx::query(&format!("ANALYZE {s}.jobs"))
            .execute(queue.pool())
            .await
            .expect("analyze");
        let sql = Statements::new(s);
        let kinds = vec!["basic".to_owned()];
        let none: Option<Vec<String>> = None;
        for (name, statement) in [
            ("claim", &sql.claim),
            ("claim_fifo", &sql.claim_fifo),
            ("claim_classes", &sql.claim_classes),
            ("claim_except", &sql.claim_except),
            ("claim_kinds", &sql.claim_kinds),
        ] {
            // Planned, not run: EXPLAIN takes the claim's parameters.
            let explain = format!("EXPLAIN {statement}");
            let query = sqlx::query_scalar::<_, String>(&explain)
                .bind("q")
                .bind(8_i64)
                .bind("w")
                .bind(3.0_f64);
            let query = match name {
                "claim" | "claim_fifo" => query,
                "claim_classes" => query.bind(vec![String::new()]),
                _ => query.bind(&kinds).bind(&none),
            };
            let plan = query.fetch_all(queue.pool()).await.expect(name).join("\n");
            assert!(!plan.contains("Seq Scan"), "{name}:\n{plan}");
            assert!(plan.contains("jobs_pkey"), "{name}:\n{plan}");
        }

        // The writes that lock a batch of running jobs (a heartbeat, a
        // completion) find them by primary key too. The statistics saw no
        // running job, so the planner would otherwise read the whole
        // `jobs_lease_expiry` index, dead entries and all, and hash it.
        let ids = vec![1_i64, 2, 3];
        let tokens = vec![1_i64; 3];
        let (explain_heartbeat, explain_complete) = (
            format!("EXPLAIN {}", sql.heartbeat),
            format!("EXPLAIN {}", sql.complete),
        );
        let heartbeat = sqlx::query_scalar::<_, String>(&explain_heartbeat)
            .bind(&ids)
            .bind(&tokens)
            .bind(3.0_f64)
            .bind("w")
            .bind(6.0_f64)
            .bind(Vec::<i64>::new());
        let complete = sqlx::query_scalar::<_, String>(&explain_complete)
            .bind(&ids)
            .bind(&tokens)
            .bind(vec![0_i16; 3])
            .bind(vec![Vec::<u8>::new(); 3])
            .bind(vec![None::<String>; 3])
            .bind(vec![None::<i64>; 3])
            .bind(vec![None::<String>; 3])
            .bind(1.0_f64)
            .bind(300.0_f64)
            .bind(false)
            .bind(Vec::<String>::new());
        for (name, query) in [("heartbeat", heartbeat), ("complete", complete)] {
            let plan = query.fetch_all(queue.pool()).await.expect(name).join("\n");
            assert!(!plan.contains("jobs_lease_expiry"), "{name}:\n{plan}");
            assert!(plan.contains("jobs_pkey"), "{name}:\n{plan}");
        }
    }
}
