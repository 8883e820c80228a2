//! The store against real SQLite files in temporary directories and a real PostgreSQL
//! server (a database per test), the same tests on both.

/// Runs each test against SQLite and against PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Db::postgres().await).await
            }
        }
    )*};
}

mod accounts_and_certs;
mod audit;
mod common;
mod database;
mod hub;
mod listing;
mod orders;
mod renewal;
mod secrets;
