//! A database of its own on the local PostgreSQL server for one test, dropped afterwards.

use sqlx::Connection as _;

/// Where the test databases are created: a URL whose user may create databases.
pub const ADMIN_URL_ENV: &str = "CERTHUB_TEST_POSTGRES";
/// The default: the local server's superuser over TCP (trust authentication on loopback).
pub const ADMIN_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, empty database; dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Creates the database, or fails the test naming the install step.
    pub async fn create() -> TestDatabase {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let admin = std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| ADMIN_URL_DEFAULT.into());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Digits and underscores only: safe to splice into the statements below.
        let name = format!("certhub_test_{}_{n}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}): apt-get install postgresql and \
                 start it (scripts/test does both), or point {ADMIN_URL_ENV} at a server where \
                 this user may create databases"
            )
        });
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("set up a database");
        }
        let mut url: reqwest::Url = admin.parse().expect("the admin URL parses");
        url.set_path(&name);
        TestDatabase { url: url.to_string(), admin, name }
    }
}

impl TestDatabase {
    /// What a server restart does to this database's clients, without touching the other
    /// tests' databases: every connection to it is ended, and new ones are refused for
    /// `lasting`.
    pub async fn outage(&self, lasting: std::time::Duration) {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.expect("the admin URL");
        let name = &self.name;
        let refuse = format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false");
        sqlx::query(sqlx::AssertSqlSafe(refuse)).execute(&mut conn).await.expect("refuse");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut conn)
            .await
            .expect("end the connections");
        tokio::time::sleep(lasting).await;
        let allow = format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true");
        sqlx::query(sqlx::AssertSqlSafe(allow)).execute(&mut conn).await.expect("allow");
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop cannot wait on the test's runtime; a thread with its own does the cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}
