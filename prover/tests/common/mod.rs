//! What the PostgreSQL tests of `pjp-prover` share: the server's address and
//! the clean-up of a test's schema.
#![allow(dead_code, unreachable_pub)]

/// The test server (`PJP_TEST_DATABASE_URL`, default the local one).
pub fn database_url() -> String {
    std::env::var("PJP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

/// Drops `schema` and everything in it. Callable from `Drop` (it runs on a
/// thread of its own, with its own runtime); says so when it cannot.
pub fn drop_schema(schema: &str) {
    let name = schema.to_owned();
    let dropped = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async move {
            let pool = sqlx::PgPool::connect(&database_url()).await.ok()?;
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&pool)
                .await
                .ok()
        })
    })
    .join();
    if !matches!(dropped, Ok(Some(_))) {
        eprintln!("warning: could not drop test schema {schema}");
    }
}
