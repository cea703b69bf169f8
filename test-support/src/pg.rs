//! A Postgres database of its own for one test.
//!
//! The server is `postgres://postgres@127.0.0.1:5432` (trust auth) unless
//! `FIELDSYNC_TEST_POSTGRES` names another one (a URL without a database name).

use sqlx::Connection;
use uuid::Uuid;

/// The Postgres server the tests use, as a URL without a database name.
pub fn postgres_server() -> String {
    std::env::var("FIELDSYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A fresh, empty database, dropped (`WITH (FORCE)`, ending any connection still on it) when the
/// value is dropped, whether the test passed or panicked. Migrations are up to the store.
pub struct PgDb {
    /// `postgres://…/<name>`.
    pub url: String,
    pub name: String,
    server: String,
}

impl PgDb {
    /// Create a database named `fs_test_<uuid v7>`.
    pub async fn create() -> PgDb {
        let server = postgres_server();
        let name = format!("fs_test_{}", Uuid::now_v7().simple());
        admin(&server, format!("CREATE DATABASE {name}")).await;
        PgDb {
            url: format!("{server}/{name}"),
            name,
            server,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, which cannot be blocked on, so the cleanup gets
        // a thread and a runtime of its own.
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let server = self.server.clone();
        let cleanup = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime")
                .block_on(admin(&server, statement));
        });
        // A failed cleanup only leaves a database behind; it must not hide the test's own result.
        let _ = cleanup.join();
    }
}

/// Run `statement` in the server's maintenance database (CREATE/DROP DATABASE cannot run in the
/// database they act on).
async fn admin(server: &str, statement: String) {
    let mut conn = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap_or_else(|err| panic!("connect to Postgres at {server} for the tests: {err}"));
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
        .expect("admin statement");
    let _ = conn.close().await;
}
