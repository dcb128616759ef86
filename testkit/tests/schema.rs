//! `TestSchema` against the real test server: the schema is gone after the
//! value is dropped, after a panic too, and a server out of reach only
//! warns.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pjp_testkit::postgres::TestSchema;
use sqlx::PgPool;

async fn exists(pool: &PgPool, schema: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn create(pool: &PgPool, schema: &TestSchema) {
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE TABLE {schema}.jobs (id int8 PRIMARY KEY)"))
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_schema_is_gone_with_everything_in_it() {
    let schema = TestSchema::new();
    let pool = PgPool::connect(schema.url()).await.unwrap();
    create(&pool, &schema).await;
    let name = schema.name().to_owned();
    assert!(exists(&pool, &name).await);
    drop(schema);
    assert!(!exists(&pool, &name).await, "{name} left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_that_panics_leaves_nothing_behind() {
    let schema = TestSchema::prefixed("t_panics");
    let pool = PgPool::connect(schema.url()).await.unwrap();
    create(&pool, &schema).await;
    let name = schema.name().to_owned();
    // Dropped while unwinding, on a runtime's worker thread.
    let failed = tokio::spawn(async move {
        let _schema = schema;
        panic!("the test fails");
    })
    .await;
    assert!(failed.is_err_and(|e| e.is_panic()));
    assert!(!exists(&pool, &name).await, "{name} left behind");
}

#[test]
fn a_server_out_of_reach_only_warns() {
    // Port 1: nothing listens there; the drop warns on stderr and returns.
    let schema = TestSchema::named("t_unreachable").with_url("postgres://root@127.0.0.1:1/test");
    drop(schema);
}
